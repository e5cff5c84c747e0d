import type {} from "@fastify/multipart";
import type { FastifyRequest } from "fastify";
import { GatewayError, invalidRequest, tooLarge } from "./gateway-errors.js";

/** DEFAULT_MAX_UPLOAD_BYTES bounds the files of one multipart request together, as OpenAI's 25 MB audio limit. */
export const DEFAULT_MAX_UPLOAD_BYTES = 25 * 1024 * 1024;
/** FORM_OVERHEAD_BYTES is room for boundaries, part headers and text fields beyond the files. */
export const FORM_OVERHEAD_BYTES = 1024 * 1024;
const MAX_FILES = 17;
const MAX_FIELDS = 100;
const MAX_FIELD_BYTES = 1024 * 1024;
/** MAX_FIELD_NAME_LENGTH bounds a part's name, which busboy leaves unbounded in multipart bodies. */
const MAX_FIELD_NAME_LENGTH = 256;
/** BOUNDARY finds a non-empty boundary parameter in a multipart content type, quoted or not. */
const BOUNDARY = /;\s*boundary\s*=\s*(?:"[^"]+"|[^\s;"]+)/i;

/** UploadedFile is one file of a multipart form. */
export interface UploadedFile {
  readonly field: string;
  readonly filename: string;
  readonly contentType: string;
  readonly data: Buffer;
}

/** MultipartForm is a parsed form: text fields (repeated ones as arrays, names verbatim) and files in order. */
export interface MultipartForm {
  readonly fields: Record<string, string | string[]>;
  readonly files: UploadedFile[];
}

/**
 * readMultipartForm reads a multipart request as it streams in. Text fields keep their exact names and values (a
 * repeated field becomes an array) so the provider sees every field the client sent; files are gathered once, into
 * the bytes the mesh carries. The moment the files together cross maxUploadBytes it stops with a 413; a field cut
 * short by a limit is a 413 too, never a shorter value passed on. A body that is not a well-formed form is a 400.
 */
export async function readMultipartForm(request: FastifyRequest, maxUploadBytes: number): Promise<MultipartForm> {
  if (!request.isMultipart()) {
    throw invalidRequest("This endpoint takes multipart/form-data.", { code: "invalid_content_type" });
  }
  if (!BOUNDARY.test(request.headers["content-type"] ?? "")) {
    throw invalidMultipart("The multipart/form-data content type has no boundary parameter.");
  }
  try {
    return await readParts(request, maxUploadBytes);
  } catch (error) {
    throw formError(error);
  }
}

async function readParts(request: FastifyRequest, maxUploadBytes: number): Promise<MultipartForm> {
  const fields: Record<string, string | string[]> = {};
  const files: UploadedFile[] = [];
  let total = 0;
  const parts = request.parts({
    limits: { fileSize: maxUploadBytes, files: MAX_FILES, fields: MAX_FIELDS, fieldSize: MAX_FIELD_BYTES, parts: MAX_FILES + MAX_FIELDS },
  });
  for await (const part of parts) {
    if (part.fieldname.length > MAX_FIELD_NAME_LENGTH) {
      throw invalidMultipart(`A form field's name is longer than ${MAX_FIELD_NAME_LENGTH} characters.`);
    }
    if (part.type === "field") {
      if (part.valueTruncated)
        throw tooLarge(`The field '${part.fieldname}' is larger than ${MAX_FIELD_BYTES} bytes.`, { param: part.fieldname });
      const value = typeof part.value === "string" ? part.value : String(part.value);
      const previous = fields[part.fieldname];
      fields[part.fieldname] = previous === undefined ? value : [...(Array.isArray(previous) ? previous : [previous]), value];
      continue;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of part.file as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (total + size > maxUploadBytes) throw uploadTooLarge(maxUploadBytes);
      chunks.push(chunk);
    }
    if (part.file.truncated) throw uploadTooLarge(maxUploadBytes);
    total += size;
    files.push({
      field: part.fieldname,
      filename: unescapeFilename(part.filename),
      contentType: part.mimetype,
      data: Buffer.concat(chunks, size),
    });
  }
  return { fields, files };
}

/**
 * formError is the answer to a failure while reading a form: @fastify/multipart's limit errors keep their 413, its
 * other refusals and busboy's parse errors (plain Errors: a missing boundary, a truncated body, a malformed part) are
 * the client's bytes at fault, a 400. Anything else is a failure of the gateway and stays one.
 */
function formError(error: unknown): unknown {
  if (error instanceof GatewayError || !(error instanceof Error)) return error;
  const status = (error as { statusCode?: unknown }).statusCode;
  if (status === 413) {
    return tooLarge(`The form has too many parts or too large a file: ${error.message}.`, { cause: error });
  }
  const fromParser = typeof status === "number" ? status >= 400 && status < 500 : Object.getPrototypeOf(error) === Error.prototype;
  return fromParser ? invalidMultipart(`The multipart body is malformed: ${error.message}.`, error) : error;
}

function invalidMultipart(message: string, cause?: unknown): GatewayError {
  return invalidRequest(message, { code: "invalid_multipart", cause });
}

/**
 * unescapeFilename undoes the escapes that the WHATWG multipart encoding (browsers, undici, the OpenAI SDKs) puts in
 * a filename: `"` as %22 and line breaks as %0A and %0D. The provider gets the name the user's file really has.
 */
export function unescapeFilename(filename: string): string {
  return filename.replace(/%22|%0A|%0D/gi, (sequence) => (sequence === "%22" ? '"' : sequence.toUpperCase() === "%0A" ? "\n" : "\r"));
}

/** uploadTooLarge is the 413 for an upload over the limit. */
export function uploadTooLarge(maxUploadBytes: number): GatewayError {
  return tooLarge(`The upload is larger than ${maxUploadBytes} bytes.`);
}
