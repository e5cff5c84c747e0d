import { FormData } from "undici";
import { type MediaFile, MediaRole, Operation } from "../../gen/infermesh/v1/inference_pb.js";
import { FormBodyError, type FormFields } from "../shared/form-fields.js";

/** FormFile is a file to send in a form field. */
export interface FormFile {
  readonly field: string;
  readonly file: MediaFile;
}

/** FormParts are what a multipart request is made of: text fields first, then files. */
export interface FormParts {
  readonly fields: FormFields;
  readonly files: readonly FormFile[];
}

/** fieldValue is a field's first value, or undefined when the form lacks it. */
export function fieldValue(fields: FormFields, name: string): string | undefined {
  return fields.find(([field]) => field === name)?.[1];
}

/** fieldValues are every value of a field, in order. */
export function fieldValues(fields: FormFields, name: string): string[] {
  return fields.filter(([field]) => field === name).map(([, value]) => value);
}

/** withoutFields drops the named fields, keeping the order of the rest. */
export function withoutFields(fields: FormFields, names: readonly string[]): FormFields {
  return fields.filter(([field]) => !names.includes(field));
}

/** MediaByRole is a call's media sorted by role, each list in upload order. */
export interface MediaByRole {
  readonly audio: readonly MediaFile[];
  readonly images: readonly MediaFile[];
  readonly masks: readonly MediaFile[];
}

/**
 * mediaFor checks a call's media against its operation (a transcription or a translation takes one audio file; an
 * edit one image or more and at most one mask) and sorts them by role; a mismatch is a FormBodyError.
 */
export function mediaFor(operation: Operation, media: readonly MediaFile[]): MediaByRole {
  const audio = media.filter((file) => file.role === MediaRole.AUDIO);
  const images = media.filter((file) => file.role === MediaRole.IMAGE);
  const masks = media.filter((file) => file.role === MediaRole.MASK);
  const others = media.length - audio.length - images.length - masks.length;
  if (operation === Operation.TRANSCRIPTION || operation === Operation.TRANSLATION) {
    if (audio.length !== 1 || images.length + masks.length + others > 0) {
      const noun = operation === Operation.TRANSCRIPTION ? "a transcription" : "a translation";
      throw new FormBodyError(`${noun} takes exactly one audio file, got ${describeMedia(media)}`);
    }
  } else if (operation === Operation.IMAGE_EDIT) {
    if (images.length === 0 || masks.length > 1 || audio.length + others > 0) {
      throw new FormBodyError(`an image edit takes one image or more and at most one mask, got ${describeMedia(media)}`);
    }
  } else if (media.length > 0) {
    throw new FormBodyError(`operation ${Operation[operation] ?? operation} takes no files, got ${describeMedia(media)}`);
  }
  return { audio, images, masks };
}

/**
 * openAiFormParts lays a multipart call out the way OpenAI's endpoints take it: the text fields exactly as the client
 * sent them (a repeated field repeated under its name), then the audio as `file`, the images as `image` (one) or
 * `image[]` (several, in order) and the mask as `mask`.
 */
export function openAiFormParts(operation: Operation, fields: FormFields, media: readonly MediaFile[]): FormParts {
  const { audio, images, masks } = mediaFor(operation, media);
  const imageField = images.length === 1 ? "image" : "image[]";
  return {
    fields,
    files: [
      ...audio.map((file) => ({ field: "file", file })),
      ...images.map((file) => ({ field: imageField, file })),
      ...masks.map((file) => ({ field: "mask", file })),
    ],
  };
}

/**
 * buildForm makes the multipart body. Text fields go first so that servers which stream the upload know the
 * parameters before the bytes; each file keeps its client's file name and content type (undici writes the name with
 * the WHATWG escapes browsers and the OpenAI SDKs use, so the server reads back the same name).
 */
export function buildForm(parts: FormParts): FormData {
  const form = new FormData();
  for (const [name, value] of parts.fields) form.append(name, value);
  for (const { field, file } of parts.files) {
    form.append(field, new Blob([file.data], { type: file.contentType }), file.filename);
  }
  return form;
}

function describeMedia(media: readonly MediaFile[]): string {
  if (media.length === 0) return "none";
  return media.map((file) => MediaRole[file.role] ?? String(file.role)).join(", ");
}
