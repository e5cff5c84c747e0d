import { type MediaFile, Operation } from "../../gen/infermesh/v1/inference_pb.js";
import type { FormFields } from "../shared/form-fields.js";
import { isObject } from "../shared/json-object.js";
import { base64MediaType, pngHeader } from "./image-format.js";
import { fieldValue, mediaFor, withoutFields } from "./multipart-form.js";
import { failedAnswer, invalidRequestAnswer, jsonAnswer, jsonEvent, type TranslatedAnswer, type Translation } from "./translated-answer.js";
import { mediaType } from "./upstream-client.js";
import type { ModelListing } from "./upstream-models.js";

/*
 * The AUTOMATIC1111 Stable Diffusion WebUI API (and Forge's, which keeps it), served with `--api`:
 * `POST /sdapi/v1/txt2img` and `POST /sdapi/v1/img2img` take JSON (prompt, negative_prompt, width, height,
 * batch_size, n_iter, steps, cfg_scale, seed, sampler_name, override_settings, ...; img2img adds init_images and mask
 * as base64, denoising_strength, inpainting_fill, inpainting_mask_invert, ...) and answer
 * `{"images": ["<base64>", ...], "parameters": {...}, "info": "<JSON text>"}`; `GET /sdapi/v1/sd-models` lists the
 * checkpoints as `[{"title", "model_name", "hash", "sha256", "filename", "config"}]`. Unknown request fields are
 * ignored by its pydantic models, so fields the client adds for it (steps, seed, sampler_name, ...) pass through.
 */

/** TXT2IMG_PATH generates images from a prompt. */
export const TXT2IMG_PATH = "/sdapi/v1/txt2img";
/** IMG2IMG_PATH edits (and, with a mask, inpaints) an image. */
export const IMG2IMG_PATH = "/sdapi/v1/img2img";
/** SD_MODELS_PATH lists the checkpoints; the agent advertises their model_name. */
export const SD_MODELS_PATH = "/sdapi/v1/sd-models";

/** MAX_IMAGES is OpenAI's largest n. */
const MAX_IMAGES = 10;
/** A1111's img2img "masked content" choice that keeps the original pixels under the mask as the starting point. */
const INPAINT_FILL_ORIGINAL = 1;

/**
 * OPENAI_ONLY_FIELDS are OpenAI image fields the adapter translates, or that have no AUTOMATIC1111 counterpart
 * (quality, style, background, output_format, ...); everything else passes through.
 */
const OPENAI_ONLY_FIELDS = [
  "model",
  "prompt",
  "n",
  "size",
  "response_format",
  "stream",
  "partial_images",
  "quality",
  "style",
  "user",
  "background",
  "moderation",
  "output_format",
  "output_compression",
  "input_fidelity",
];

type ImageResponseFormat = "b64_json" | "url";

/** ImagePlan is how the adapter answers an image call. */
export interface ImagePlan {
  readonly operation: "generation" | "edit";
  readonly responseFormat: ImageResponseFormat;
  /** n is how many images the client asked for; extra images (some scripts append theirs) are dropped. */
  readonly n: number;
  /** stream is set when the client asked for a stream: each image becomes a `...completed` event. */
  readonly stream: boolean;
}

/** Automatic1111Request is a planned txt2img or img2img call: the JSON payload and the plan. */
export interface Automatic1111Request {
  readonly payload: Record<string, unknown>;
  readonly plan: ImagePlan;
}

/** txt2imgTranslation translates an image generation for txt2img (see txt2imgRequest) and reads its answer. */
export function txt2imgTranslation(body: Uint8Array, model: string, stream: boolean): Translation {
  return translation(txt2imgRequest(body, model, stream));
}

/** img2imgTranslation translates an image edit for img2img (see img2imgRequest) and reads its answer. */
export function img2imgTranslation(fields: FormFields, media: readonly MediaFile[], model: string, stream: boolean): Translation {
  return translation(img2imgRequest(fields, media, model, stream));
}

function translation(request: Automatic1111Request | TranslatedAnswer): Translation {
  if ("kind" in request) return request;
  return {
    body: { kind: "json", json: request.payload },
    answer: (status, contentType, body, context) => openAiImagesAnswer(request.plan, status, contentType, body, context.nowMs),
  };
}

/**
 * txt2imgRequest maps an OpenAI image generation (the client's JSON body) to a txt2img payload: prompt, n as
 * batch_size, size "WxH" as width and height ("auto" or none keeps the server's default), the model as
 * override_settings.sd_model_checkpoint (kept loaded afterwards, so the next call for it does not reload), and every
 * field OpenAI does not define as the client sent it (negative_prompt, steps, seed, sampler_name, cfg_scale, ...).
 */
export function txt2imgRequest(body: Uint8Array, model: string, stream: boolean): Automatic1111Request | TranslatedAnswer {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8"));
  } catch {
    return invalidRequestAnswer("the request body must be a JSON object");
  }
  if (!isObject(json)) return invalidRequestAnswer("the request body must be a JSON object");
  const common = commonFields(json["n"], json["size"], json["response_format"], "generation", stream);
  if ("kind" in common) return common;
  const passThrough = Object.fromEntries(Object.entries(json).filter(([key]) => !OPENAI_ONLY_FIELDS.includes(key)));
  return {
    payload: {
      ...passThrough,
      prompt: typeof json["prompt"] === "string" ? json["prompt"] : "",
      batch_size: common.plan.n,
      ...common.size,
      ...modelSettings(model, passThrough),
    },
    plan: common.plan,
  };
}

/**
 * img2imgRequest maps an OpenAI image edit (form fields and files) to an img2img payload: the image as init_images
 * (AUTOMATIC1111 edits one image per call; several are the client's error), the mask as mask, prompt, n, size (none
 * keeps the input PNG's own size, as OpenAI does) and the model as for txt2img. OpenAI's mask marks the area to edit
 * with transparency; AUTOMATIC1111 reads an RGBA mask's alpha as "opaque = inpaint", so a mask with an alpha channel
 * goes with inpainting_mask_invert 1, and one without keeps AUTOMATIC1111's own white-means-inpaint reading. The
 * masked area starts from the original pixels (inpainting_fill 1). Other form fields pass through as strings, which
 * the server's pydantic models convert.
 */
export function img2imgRequest(
  fields: FormFields,
  media: readonly MediaFile[],
  model: string,
  stream: boolean,
): Automatic1111Request | TranslatedAnswer {
  const { images, masks } = mediaFor(Operation.IMAGE_EDIT, media);
  const image = images[0] as MediaFile;
  if (images.length > 1) {
    return invalidRequestAnswer(`this server edits one image at a time, got ${images.length}`, "image");
  }
  const common = commonFields(fieldValue(fields, "n"), fieldValue(fields, "size"), fieldValue(fields, "response_format"), "edit", stream);
  if ("kind" in common) return common;
  const inputSize = pngHeader(image.data);
  const size = common.size ?? (inputSize ? { width: inputSize.width, height: inputSize.height } : {});
  const mask = masks[0];
  const passThrough = Object.fromEntries(withoutFields(fields, [...OPENAI_ONLY_FIELDS, "image", "image[]", "mask"]));
  const maskFields =
    mask === undefined
      ? {}
      : {
          mask: base64(mask.data),
          inpainting_mask_invert: pngHeader(mask.data)?.hasAlpha ? 1 : 0,
          inpainting_fill: INPAINT_FILL_ORIGINAL,
        };
  return {
    payload: {
      ...maskFields,
      ...passThrough,
      prompt: fieldValue(fields, "prompt") ?? "",
      init_images: [base64(image.data)],
      batch_size: common.plan.n,
      ...size,
      ...modelSettings(model, {}),
    },
    plan: common.plan,
  };
}

/**
 * openAiImagesAnswer maps a txt2img or img2img answer to OpenAI's images answer `{"created": <unix s>, "data":
 * [{"b64_json"}]}`, or `[{"url"}]` with a data: URL (the mesh has nowhere to host files), at most n images; for a
 * client that asked to stream, one `image_generation.completed` (or `image_edit.completed`) event per image. A 422
 * (a field the server's model refused) is the client's error; any other status, or an answer without images, is the
 * server's failure (a 404 most likely means the WebUI runs without --api).
 */
export function openAiImagesAnswer(plan: ImagePlan, status: number, contentType: string, body: Buffer, nowMs: number): TranslatedAnswer {
  const json = mediaType(contentType) === "application/json" || mediaType(contentType) === "" ? parseJson(body) : undefined;
  const path = plan.operation === "generation" ? TXT2IMG_PATH : IMG2IMG_PATH;
  if (status === 422 || status === 400) {
    return invalidRequestAnswer(`the image server refused the request: ${validationDetail(json) ?? body.toString("utf8").slice(0, 300)}`);
  }
  if (status === 404) return failedAnswer(`answered HTTP 404 on ${path}: is the WebUI started with --api?`);
  if (status < 200 || status >= 300) return failedAnswer(`answered HTTP ${status} on ${path}: ${body.toString("utf8").slice(0, 300)}`);
  const images = isObject(json) && Array.isArray(json["images"]) ? json["images"].filter((image) => typeof image === "string") : [];
  if (images.length === 0) return failedAnswer(`answered without images: ${body.toString("utf8").slice(0, 300)}`);
  const created = Math.floor(nowMs / 1000);
  const data = images.slice(0, plan.n).map((image) => {
    const b64 = image.replace(/^data:[^,]*,/, "");
    return plan.responseFormat === "url" ? { url: `data:${base64MediaType(b64)};base64,${b64}` } : { b64_json: b64 };
  });
  if (plan.stream) {
    const type = plan.operation === "generation" ? "image_generation.completed" : "image_edit.completed";
    return { kind: "events", events: data.map((image) => jsonEvent({ type, ...image, created_at: created }, type)) };
  }
  return jsonAnswer({ created, data });
}

/** parseSdModels reads `GET /sdapi/v1/sd-models`: the checkpoints' model_name become model ids. */
export function parseSdModels(json: unknown): ModelListing | undefined {
  if (!Array.isArray(json)) return undefined;
  const models = json
    .filter(isObject)
    .map((entry) => entry["model_name"])
    .filter((name): name is string => typeof name === "string" && name !== "")
    .map((id) => ({ id }));
  return { models, engine: "automatic1111" };
}

/** commonFields reads what generations and edits share: n, size and response_format, from JSON or form values. */
function commonFields(
  n: unknown,
  size: unknown,
  responseFormat: unknown,
  operation: ImagePlan["operation"],
  stream: boolean,
): { plan: ImagePlan; size: { width: number; height: number } | undefined } | TranslatedAnswer {
  const count = n === undefined || n === null ? 1 : typeof n === "string" && /^\d+$/.test(n) ? Number(n) : n;
  if (typeof count !== "number" || !Number.isInteger(count) || count < 1 || count > MAX_IMAGES) {
    return invalidRequestAnswer(`n must be a whole number from 1 to ${MAX_IMAGES}`, "n");
  }
  let dimensions: { width: number; height: number } | undefined;
  if (size !== undefined && size !== null && size !== "auto") {
    const match = typeof size === "string" ? /^(\d{1,5})x(\d{1,5})$/.exec(size) : null;
    if (!match) return invalidRequestAnswer("size must be 'auto' or WIDTHxHEIGHT, such as '1024x1024'", "size");
    dimensions = { width: Number(match[1]), height: Number(match[2]) };
  }
  const format = responseFormat === undefined || responseFormat === null ? "b64_json" : responseFormat;
  if (format !== "b64_json" && format !== "url") return invalidRequestAnswer("response_format must be b64_json or url", "response_format");
  return { plan: { operation, responseFormat: format, n: count, stream }, size: dimensions };
}

/**
 * modelSettings asks for the routed model's checkpoint through override_settings, keeping the client's other
 * overrides; the checkpoint stays loaded afterwards unless the client says otherwise, since reloading it per call
 * would cost seconds each time.
 */
function modelSettings(model: string, passThrough: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const clientOverrides = isObject(passThrough["override_settings"]) ? passThrough["override_settings"] : {};
  return {
    override_settings: { ...clientOverrides, sd_model_checkpoint: model },
    override_settings_restore_afterwards: passThrough["override_settings_restore_afterwards"] ?? false,
  };
}

/** validationDetail reads FastAPI's 422 body, `{"detail": [{"loc": [...], "msg": "..."}]}`, or a plain detail string. */
function validationDetail(json: unknown): string | undefined {
  if (!isObject(json)) return undefined;
  const detail = json["detail"];
  if (typeof detail === "string") return detail;
  if (!Array.isArray(detail)) return typeof json["error"] === "string" ? json["error"] : undefined;
  return detail
    .filter(isObject)
    .map((item) => {
      const where = Array.isArray(item["loc"]) ? item["loc"].filter((part) => part !== "body").join(".") : "";
      return `${where ? `${where}: ` : ""}${String(item["msg"] ?? "invalid")}`;
    })
    .join("; ");
}

function base64(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64");
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8")) as unknown;
  } catch {
    return undefined;
  }
}
