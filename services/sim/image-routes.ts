import type { UploadedForm } from "./form-upload.js";
import { sendError } from "./http-replies.js";
import type { LlamaError } from "./llama-errors.js";
import type { MediaContext, MediaPacing } from "./media-replies.js";
import { formPacing, isError, JSON_CONTENT_TYPE, MEDIA_SSE_HEADERS, mediaPacing, pickModel, wholeAnswer } from "./media-replies.js";
import { invalidValue, missingParameter } from "./openai-errors.js";
import type { PngSize } from "./png-encoder.js";
import { isPng, PNG_MAX_SIDE } from "./png-encoder.js";
import type { ImagePaint } from "./simulated-images.js";
import { editPaint, generationPaint, renderPng } from "./simulated-images.js";
import { promptTokenCount } from "./simulated-text.js";
import { sseEvent } from "./sse.js";

/** MAX_IMAGES bounds `n`, as OpenAI does. */
const MAX_IMAGES = 10;
/** MAX_PARTIAL_IMAGES bounds `partial_images`, as OpenAI does. */
const MAX_PARTIAL_IMAGES = 3;
/** MAX_EDIT_INPUTS bounds the input images of an edit, as OpenAI does. */
const MAX_EDIT_INPUTS = 16;
/** MAX_PROMPT_CHARACTERS bounds a prompt, as OpenAI does for its GPT image models. */
const MAX_PROMPT_CHARACTERS = 32_000;
/** AUTO_SIZE is what `size: "auto"` (and no size) means to the simulator. */
const AUTO_SIZE: PngSize = Object.freeze({ width: 1024, height: 1024 });
/** PIXELS_PER_OUTPUT_TOKEN turns output pixels into the output tokens usage reports (about OpenAI's high quality). */
const PIXELS_PER_OUTPUT_TOKEN = 256;
/** INPUT_IMAGE_TOKENS is the input tokens usage reports per image an edit receives. */
const INPUT_IMAGE_TOKENS = 85;

/** ImageRequest is the validated part of an image request that both endpoints share. */
interface ImageRequest {
  readonly prompt: string;
  readonly n: number;
  readonly size: PngSize;
  readonly responseFormat: "b64_json" | "url";
  readonly stream: boolean;
  readonly partialImages: number;
  readonly pacing: MediaPacing;
}

/** answerImageGeneration answers POST /v1/images/generations (JSON) with PNGs of the requested size. */
export function answerImageGeneration(context: MediaContext, body: unknown): void {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    sendError(context.res, invalidValue("body", "The request body must be a JSON object."));
    return;
  }
  const fields = body as Readonly<Record<string, unknown>>;
  context.note(typeof fields["model"] === "string" ? fields["model"] : undefined, fields["stream"] === true);
  if (pickModel(context, fields["model"], "image") === undefined) return;
  const request = readImageRequest(
    (name) => fields[name],
    () => mediaPacing(fields["sim"], context.config),
    context,
  );
  if (request === undefined) return;
  playImages(context, request, "image_generation", (index) => generationPaint(request.prompt, index), 0);
}

/** answerImageEdit answers POST /v1/images/edits (multipart) with PNGs that depend on the input images and mask. */
export function answerImageEdit(context: MediaContext, form: UploadedForm): void {
  const field = (name: string): string | undefined => form.fields.get(name)?.at(-1);
  context.note(field("model"), field("stream") === "true");
  if (pickModel(context, field("model"), "image") === undefined) return;
  const images = form.files.filter((file) => file.field === "image" || file.field === "image[]");
  if (images.length === 0) {
    sendError(context.res, missingParameter("image"));
    return;
  }
  if (images.length > MAX_EDIT_INPUTS) {
    sendError(context.res, invalidValue("image", `At most ${MAX_EDIT_INPUTS} images can be edited at once; got ${images.length}.`));
    return;
  }
  const mask = form.files.find((file) => file.field === "mask");
  if (mask !== undefined && !isPng(mask.head)) {
    sendError(context.res, invalidValue("mask", "'mask' must be a PNG image."));
    return;
  }
  const request = readImageRequest(field, () => formPacing(form.fields, context.config), context);
  if (request === undefined) return;
  const sources = { prompt: request.prompt, imageDigests: images.map((image) => image.digest), maskDigest: mask?.digest };
  playImages(context, request, "image_edit", (index) => editPaint(sources, index), images.length * INPUT_IMAGE_TOKENS);
}

/**
 * readImageRequest validates the shared fields, from JSON values or form text alike; undefined once an error has
 * been answered.
 */
function readImageRequest(
  get: (name: string) => unknown,
  pacing: () => MediaPacing | LlamaError,
  context: MediaContext,
): ImageRequest | undefined {
  const request = parseImageRequest(get, pacing);
  if (isError(request)) {
    sendError(context.res, request);
    return undefined;
  }
  return request;
}

function parseImageRequest(get: (name: string) => unknown, readPacing: () => MediaPacing | LlamaError): ImageRequest | LlamaError {
  const prompt = get("prompt");
  if (prompt === undefined || prompt === null || prompt === "") return missingParameter("prompt");
  if (typeof prompt !== "string") return invalidValue("prompt", "'prompt' must be a string.");
  if (prompt.length > MAX_PROMPT_CHARACTERS) return invalidValue("prompt", `'prompt' is longer than ${MAX_PROMPT_CHARACTERS} characters.`);
  const n = integerOf(get("n") ?? 1);
  if (n === undefined || n < 1 || n > MAX_IMAGES) return invalidValue("n", `'n' must be an integer between 1 and ${MAX_IMAGES}.`);
  const size = sizeOf(get("size") ?? "auto");
  if (size === undefined) {
    return invalidValue("size", `'size' must be 'auto' or 'WIDTHxHEIGHT' with sides from 1 to ${PNG_MAX_SIDE}, e.g. '1024x1024'.`);
  }
  const responseFormat = get("response_format") ?? "b64_json";
  if (responseFormat !== "b64_json" && responseFormat !== "url")
    return invalidValue("response_format", "'response_format' must be 'b64_json' or 'url'.");
  const outputFormat = get("output_format");
  if (outputFormat !== undefined && outputFormat !== null && outputFormat !== "png") {
    return invalidValue("output_format", "The simulator only produces PNG images; 'output_format' must be 'png'.");
  }
  const stream = booleanOf(get("stream") ?? false);
  if (stream === undefined) return invalidValue("stream", "'stream' must be a boolean.");
  const partialImages = integerOf(get("partial_images") ?? 0);
  if (partialImages === undefined || partialImages < 0 || partialImages > MAX_PARTIAL_IMAGES) {
    return invalidValue("partial_images", `'partial_images' must be an integer between 0 and ${MAX_PARTIAL_IMAGES}.`);
  }
  const pacing = readPacing();
  if (isError(pacing)) return pacing;
  return { prompt, n, size, responseFormat, stream, partialImages, pacing };
}

/** playImages answers the images, whole or as an event stream (partial images, then each completed image). */
function playImages(
  context: MediaContext,
  request: ImageRequest,
  eventPrefix: "image_generation" | "image_edit",
  paint: (index: number) => ImagePaint,
  inputImageTokens: number,
): void {
  const { size, n } = request;
  const sizeLabel = `${size.width}x${size.height}`;
  const textTokens = promptTokenCount(request.prompt);
  const imageOutputTokens = Math.ceil((size.width * size.height) / PIXELS_PER_OUTPUT_TOKEN);
  const usageFor = (images: number): Record<string, unknown> => ({
    input_tokens: textTokens + inputImageTokens,
    input_tokens_details: { text_tokens: textTokens, image_tokens: inputImageTokens },
    output_tokens: images * imageOutputTokens,
    total_tokens: textTokens + inputImageTokens + images * imageOutputTokens,
  });
  const created = Math.floor(context.config.now() / 1000);
  if (!request.stream) {
    context.play(
      wholeAnswer(request.pacing, JSON_CONTENT_TYPE, () => {
        const data: Record<string, string>[] = [];
        for (let index = 0; index < n; index++) {
          const base64 = renderPng(paint(index), size).toString("base64");
          data.push(request.responseFormat === "url" ? { url: `data:image/png;base64,${base64}` } : { b64_json: base64 });
        }
        return JSON.stringify({
          created,
          data,
          background: "opaque",
          output_format: "png",
          quality: "auto",
          size: sizeLabel,
          usage: usageFor(n),
        });
      }),
    );
    return;
  }
  const perImage = request.partialImages + 1;
  const common = { created_at: created, size: sizeLabel, quality: "auto", background: "opaque", output_format: "png" };
  context.play({
    headers: MEDIA_SSE_HEADERS,
    sized: false,
    units: n * perImage,
    unit: (unit) => {
      const index = Math.floor(unit / perImage);
      const step = unit % perImage;
      if (step < request.partialImages) {
        const b64_json = renderPng(paint(index), size, (step + 1) / perImage).toString("base64");
        const type = `${eventPrefix}.partial_image`;
        return sseEvent(type, JSON.stringify({ type, b64_json, ...common, partial_image_index: step }));
      }
      const type = `${eventPrefix}.completed`;
      const b64_json = renderPng(paint(index), size).toString("base64");
      return sseEvent(type, JSON.stringify({ type, b64_json, ...common, usage: usageFor(1) }));
    },
    closing: undefined,
    firstDelayMs: request.pacing.firstDelayMs,
    intervalMs: request.pacing.chunkIntervalMs,
    failure: request.pacing.failure,
    framing: "sse",
  });
}

/** integerOf reads an integer from a JSON number or form text. */
function integerOf(value: unknown): number | undefined {
  const number = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  return typeof number === "number" && Number.isInteger(number) ? number : undefined;
}

/** booleanOf reads a boolean from JSON or form text ("true" / "false"). */
function booleanOf(value: unknown): boolean | undefined {
  if (typeof value === "boolean") return value;
  if (value === "true" || value === "false") return value === "true";
  return undefined;
}

/** sizeOf reads `auto` or `WIDTHxHEIGHT`. */
function sizeOf(value: unknown): PngSize | undefined {
  if (value === "auto") return AUTO_SIZE;
  const match = typeof value === "string" ? /^(\d{1,5})x(\d{1,5})$/.exec(value) : null;
  const width = Number(match?.[1]);
  const height = Number(match?.[2]);
  if (!(width >= 1 && width <= PNG_MAX_SIDE && height >= 1 && height <= PNG_MAX_SIDE)) return undefined;
  return { width, height };
}
