import type { FastifyInstance } from "fastify";
import { create } from "@bufbuild/protobuf";
import { MediaFileSchema, MediaRole, Operation, type MediaFile } from "../../gen/infermesh/v1/inference_pb.js";
import { invalidRequest } from "./error-envelope.js";
import type { InferenceHandler, ParsedInference } from "./inference-handler.js";
import { readMultipartForm, textField, type MultipartForm, type UploadedFile } from "./multipart-form.js";
import { IMAGE_EDITS_SCHEMA, IMAGE_GENERATIONS_SCHEMA, SPEECH_SCHEMA, TRANSCRIPTIONS_SCHEMA } from "./openapi-schemas.js";
import { parseJsonObject, requireModel, streamFlag, upstreamBody, type JsonObject } from "./request-body.js";

/** MediaRoutesOptions are what the media routes work with. */
export interface MediaRoutesOptions {
  readonly handle: InferenceHandler;
  readonly maxUploadBytes: number;
}

const TRANSCRIPTION_FORMATS = ["json", "text", "srt", "verbose_json", "vtt"];
const IMAGE_FORMATS = ["b64_json", "url"];
const SPEECH_FORMATS = ["mp3", "opus", "aac", "flac", "wav", "pcm"];
const SPEECH_STREAM_FORMATS = ["audio", "sse"];
const MAX_SPEECH_INPUT = 4096;
const MAX_IMAGES = 10;
const MAX_EDIT_IMAGES = 16;

/**
 * registerMediaRoutes adds the audio and image endpoints. Uploads travel the mesh as protobuf bytes with their
 * filenames and content types; a form's text fields travel as a JSON object, names and values as sent.
 */
export function registerMediaRoutes(app: FastifyInstance, options: MediaRoutesOptions): void {
  const { handle, maxUploadBytes } = options;

  app.post("/v1/audio/transcriptions", { schema: TRANSCRIPTIONS_SCHEMA }, (request, reply) =>
    handle(request, reply, Operation.TRANSCRIPTION, "/v1/audio/transcriptions", async () => {
      const form = await readMultipartForm(request, maxUploadBytes);
      const audio = filesOf(form, ["file"]);
      if (audio.length !== 1) throw invalidRequest("Provide one audio file in the 'file' field.", "file", "missing_file");
      expectOnly(form, ["file"]);
      notEmpty(audio);
      oneOf(form, "response_format", TRANSCRIPTION_FORMATS);
      return formInference(form, [mediaFile(MediaRole.AUDIO, audio[0] as UploadedFile)]);
    }),
  );

  app.post("/v1/images/edits", { schema: IMAGE_EDITS_SCHEMA }, (request, reply) =>
    handle(request, reply, Operation.IMAGE_EDIT, "/v1/images/edits", async () => {
      const form = await readMultipartForm(request, maxUploadBytes);
      const images = filesOf(form, ["image", "image[]"]);
      const masks = filesOf(form, ["mask"]);
      if (images.length === 0) throw invalidRequest("Provide an image in 'image' (or several in 'image[]').", "image", "missing_file");
      if (images.length > MAX_EDIT_IMAGES) throw invalidRequest(`At most ${MAX_EDIT_IMAGES} images.`, "image", "too_many_files");
      if (masks.length > 1) throw invalidRequest("Provide at most one mask.", "mask", "too_many_files");
      expectOnly(form, ["image", "image[]", "mask"]);
      notEmpty([...images, ...masks]);
      if (!textField(form, "prompt")) throw invalidRequest("'prompt' is required", "prompt", "missing_required_parameter");
      integerField(textField(form, "n"), "n", 1, MAX_IMAGES);
      oneOf(form, "response_format", IMAGE_FORMATS);
      return formInference(form, [
        ...images.map((file) => mediaFile(MediaRole.IMAGE, file)),
        ...masks.map((file) => mediaFile(MediaRole.MASK, file)),
      ]);
    }),
  );

  app.post("/v1/images/generations", { schema: IMAGE_GENERATIONS_SCHEMA }, (request, reply) =>
    handle(request, reply, Operation.IMAGE_GENERATION, "/v1/images/generations", () =>
      jsonInference(request.body, (body) => {
        if (typeof body.prompt !== "string" || body.prompt === "") {
          throw invalidRequest("'prompt' must be a non-empty string", "prompt", "missing_required_parameter");
        }
        integer(body.n, "n", 1, MAX_IMAGES);
        integer(body.partial_images, "partial_images", 0, 3);
        member(body.response_format, "response_format", IMAGE_FORMATS);
        if (body.size !== undefined && (typeof body.size !== "string" || !/^(auto|\d{2,5}x\d{2,5})$/.test(body.size))) {
          throw invalidRequest("'size' must be 'auto' or WIDTHxHEIGHT, such as '1024x1024'", "size", "invalid_value");
        }
      }),
    ),
  );

  app.post("/v1/audio/speech", { schema: SPEECH_SCHEMA }, (request, reply) =>
    handle(request, reply, Operation.SPEECH, "/v1/audio/speech", () =>
      jsonInference(request.body, (body) => {
        if (typeof body.input !== "string" || body.input === "") {
          throw invalidRequest("'input' must be a non-empty string", "input", "missing_required_parameter");
        }
        if (body.input.length > MAX_SPEECH_INPUT) {
          throw invalidRequest(`'input' must be at most ${MAX_SPEECH_INPUT} characters`, "input", "string_above_max_length");
        }
        member(body.response_format, "response_format", SPEECH_FORMATS);
        member(body.stream_format, "stream_format", SPEECH_STREAM_FORMATS);
        if (body.speed !== undefined && (typeof body.speed !== "number" || !(body.speed >= 0.25 && body.speed <= 4))) {
          throw invalidRequest("'speed' must be a number from 0.25 to 4", "speed", "invalid_value");
        }
      }),
    ),
  );
}

function jsonInference(raw: unknown, validate: (body: JsonObject) => void): ParsedInference {
  const body = parseJsonObject(raw);
  const model = requireModel(body);
  const stream = streamFlag(body);
  validate(body);
  return { model, stream, body: (served) => upstreamBody(raw as Uint8Array, body, model, served) };
}

function formInference(form: MultipartForm, media: MediaFile[]): ParsedInference {
  const model = textField(form, "model");
  if (!model) throw invalidRequest("you must provide a model parameter", "model", "missing_required_parameter");
  const stream = textField(form, "stream");
  if (stream !== undefined && stream !== "true" && stream !== "false") {
    throw invalidRequest("'stream' must be true or false", "stream", "invalid_value");
  }
  return {
    model,
    stream: stream === "true",
    media,
    body: (served) => Buffer.from(JSON.stringify({ ...form.fields, model: served })),
  };
}

function mediaFile(role: MediaRole, file: UploadedFile): MediaFile {
  return create(MediaFileSchema, { role, filename: file.filename, contentType: file.contentType, data: file.data });
}

function filesOf(form: MultipartForm, fields: readonly string[]): UploadedFile[] {
  return form.files.filter((file) => fields.includes(file.field));
}

function expectOnly(form: MultipartForm, fields: readonly string[]): void {
  const stray = form.files.find((file) => !fields.includes(file.field));
  if (stray) throw invalidRequest(`Unexpected file in field '${stray.field}'.`, stray.field, "unexpected_file");
}

/** notEmpty refuses an empty upload here: no provider can decode zero bytes, and it should not be asked to. */
function notEmpty(files: readonly UploadedFile[]): void {
  const empty = files.find((file) => file.data.byteLength === 0);
  if (empty) throw invalidRequest(`The file in '${empty.field}' is empty.`, empty.field === "image[]" ? "image" : empty.field, "empty_file");
}

function oneOf(form: MultipartForm, name: string, allowed: readonly string[]): void {
  member(textField(form, name), name, allowed);
}

function member(value: unknown, name: string, allowed: readonly string[]): void {
  if (value === undefined || value === null) return;
  if (typeof value !== "string" || !allowed.includes(value)) {
    throw invalidRequest(`'${name}' must be one of ${allowed.join(", ")}`, name, "invalid_value");
  }
}

function integerField(value: string | undefined, name: string, min: number, max: number): void {
  if (value === undefined) return;
  integer(/^\d+$/.test(value) ? Number(value) : Number.NaN, name, min, max);
}

function integer(value: unknown, name: string, min: number, max: number): void {
  if (value === undefined || value === null) return;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw invalidRequest(`'${name}' must be a whole number from ${min} to ${max}`, name, "invalid_value");
  }
}
