import { create } from "@bufbuild/protobuf";
import type { FastifyInstance } from "fastify";
import { type MediaFile, MediaFileSchema, MediaRole, Operation } from "../../gen/infermesh/v1/inference_pb.js";
import { type KnownOperation, OPERATIONS } from "../shared/inference-catalog.js";
import { invalidRequest } from "./gateway-errors.js";
import type { InferenceHandler } from "./inference-handler.js";
import { formProviderBody, type InferenceRequest, jsonProviderBody } from "./inference-request.js";
import { type MultipartForm, readMultipartForm, type UploadedFile } from "./multipart-form.js";
import {
  IMAGE_EDIT_FIELDS,
  IMAGE_EDITS_SCHEMA,
  IMAGE_GENERATIONS_SCHEMA,
  MAX_EDIT_IMAGES,
  SPEECH_SCHEMA,
  TRANSCRIPTION_FIELDS,
  TRANSCRIPTIONS_SCHEMA,
  TRANSLATION_FIELDS,
  TRANSLATIONS_SCHEMA,
} from "./openai-schemas.js";
import { compileChecker, type JsonBody } from "./request-validation.js";

/** MediaRoutesOptions are what the media routes work with. */
export interface MediaRoutesOptions {
  readonly handle: InferenceHandler;
  readonly maxUploadBytes: number;
}

const checkTranscriptionFields = compileChecker(TRANSCRIPTION_FIELDS);
const checkTranslationFields = compileChecker(TRANSLATION_FIELDS);
const checkImageEditFields = compileChecker(IMAGE_EDIT_FIELDS);

/**
 * registerMediaRoutes adds the audio and image endpoints. Uploads travel the mesh as protobuf bytes with their
 * filenames and content types; a form's text fields travel as a JSON object, names and values as sent.
 */
export function registerMediaRoutes(app: FastifyInstance, options: MediaRoutesOptions): void {
  const { handle, maxUploadBytes } = options;

  for (const [operation, schema] of [
    [Operation.IMAGE_GENERATION, IMAGE_GENERATIONS_SCHEMA],
    [Operation.SPEECH, SPEECH_SCHEMA],
  ] as const) {
    app.post<{ Body: JsonBody }>(OPERATIONS[operation].path, { schema, config: { operation } }, (request, reply) =>
      handle(request, reply, jsonMedia(operation, request.body)),
    );
  }

  app.post(
    OPERATIONS[Operation.TRANSCRIPTION].path,
    { schema: TRANSCRIPTIONS_SCHEMA, config: { operation: Operation.TRANSCRIPTION } },
    async (request, reply) => handle(request, reply, transcription(await readMultipartForm(request, maxUploadBytes))),
  );

  app.post(
    OPERATIONS[Operation.TRANSLATION].path,
    { schema: TRANSLATIONS_SCHEMA, config: { operation: Operation.TRANSLATION } },
    async (request, reply) => handle(request, reply, translation(await readMultipartForm(request, maxUploadBytes))),
  );

  app.post(
    OPERATIONS[Operation.IMAGE_EDIT].path,
    { schema: IMAGE_EDITS_SCHEMA, config: { operation: Operation.IMAGE_EDIT } },
    async (request, reply) => handle(request, reply, imageEdit(await readMultipartForm(request, maxUploadBytes))),
  );
}

/** jsonMedia reads an image generation or speech request that passed its schema. */
function jsonMedia(operation: KnownOperation, body: JsonBody): InferenceRequest {
  return {
    operation,
    model: body.json.model as string,
    stream: body.json.stream === true,
    body: jsonProviderBody(body),
    media: [],
    hideUsageChunks: false,
  };
}

/** transcription reads a transcription form: one audio file in 'file', then the text fields by their schema. */
export function transcription(form: MultipartForm): InferenceRequest {
  return speechToText(Operation.TRANSCRIPTION, form, checkTranscriptionFields);
}

/** translation reads a translation form as a transcription's, with the text fields of its own schema. */
export function translation(form: MultipartForm): InferenceRequest {
  return speechToText(Operation.TRANSLATION, form, checkTranslationFields);
}

function speechToText(operation: KnownOperation, form: MultipartForm, checkFields: (fields: unknown) => void): InferenceRequest {
  const audio = filesOf(form, ["file"]);
  if (audio.length !== 1) throw invalidRequest("Provide one audio file in the 'file' field.", { param: "file", code: "missing_file" });
  expectOnly(form, ["file"]);
  notEmpty(audio);
  checkFields(form.fields);
  return formRequest(
    operation,
    form,
    audio.map((file) => mediaFile(MediaRole.AUDIO, file)),
  );
}

/** imageEdit reads an image edit form: images in 'image' or 'image[]', at most one mask, then the text fields. */
export function imageEdit(form: MultipartForm): InferenceRequest {
  const images = filesOf(form, ["image", "image[]"]);
  const masks = filesOf(form, ["mask"]);
  if (images.length === 0) {
    throw invalidRequest("Provide an image in 'image' (or several in 'image[]').", { param: "image", code: "missing_file" });
  }
  if (images.length > MAX_EDIT_IMAGES)
    throw invalidRequest(`At most ${MAX_EDIT_IMAGES} images.`, { param: "image", code: "too_many_files" });
  if (masks.length > 1) throw invalidRequest("Provide at most one mask.", { param: "mask", code: "too_many_files" });
  expectOnly(form, ["image", "image[]", "mask"]);
  notEmpty([...images, ...masks]);
  checkImageEditFields(form.fields);
  return formRequest(Operation.IMAGE_EDIT, form, [
    ...images.map((file) => mediaFile(MediaRole.IMAGE, file)),
    ...masks.map((file) => mediaFile(MediaRole.MASK, file)),
  ]);
}

/** formRequest is a form whose fields passed their schema, as an inference request. */
function formRequest(operation: KnownOperation, form: MultipartForm, media: MediaFile[]): InferenceRequest {
  return {
    operation,
    model: form.fields.model as string,
    stream: form.fields.stream === "true",
    body: formProviderBody(form.fields),
    media,
    hideUsageChunks: false,
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
  if (stray) throw invalidRequest(`Unexpected file in field '${stray.field}'.`, { param: stray.field, code: "unexpected_file" });
}

/** notEmpty refuses an empty upload here: no provider can decode zero bytes, and it should not be asked to. */
function notEmpty(files: readonly UploadedFile[]): void {
  const empty = files.find((file) => file.data.byteLength === 0);
  if (empty) {
    throw invalidRequest(`The file in '${empty.field}' is empty.`, {
      param: empty.field === "image[]" ? "image" : empty.field,
      code: "empty_file",
    });
  }
}
