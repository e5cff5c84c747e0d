import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { LlamaError } from "./llama-errors.js";
import type { PartInfo, PartSink } from "./multipart-form.js";
import { MultipartError, MultipartParser, multipartBoundary } from "./multipart-form.js";
import { invalidValue, uploadTooLarge } from "./openai-errors.js";

/** MAX_FIELD_BYTES bounds one text field of a form; files are not held, so they have no such bound. */
const MAX_FIELD_BYTES = 1024 * 1024;
/** MAX_FORM_PARTS bounds the number of parts of one form. */
const MAX_FORM_PARTS = 1000;
/** FILE_HEAD_BYTES is how much of the start of each file is kept, enough for any WAV or PNG header. */
export const FILE_HEAD_BYTES = 64 * 1024;

/** ReceivedFile is one uploaded file as the simulator saw it, recorded for tests. */
export interface ReceivedFile {
  /** field is the form field's name, e.g. "file", "image[]" or "mask". */
  readonly field: string;
  /** filename is the file name as sent, decoded (non-ASCII and quotes included). */
  readonly filename: string;
  /** contentType is the part's Content-Type, when it had one. */
  readonly contentType: string | undefined;
  readonly size: number;
  /** sha256 is the hex SHA-256 of the file's bytes. */
  readonly sha256: string;
}

/** ReceivedForm is a multipart request as the simulator saw it: its text fields (each name's values in order) and files. */
export interface ReceivedForm {
  readonly fields: Readonly<Record<string, readonly string[]>>;
  readonly files: readonly ReceivedFile[];
}

/** UploadedFile is a ReceivedFile with what the routes compute from: the raw digest and the file's first bytes. */
export interface UploadedFile extends ReceivedFile {
  readonly digest: Buffer;
  readonly head: Buffer;
}

/** UploadedForm is a parsed form. */
export interface UploadedForm {
  readonly fields: ReadonlyMap<string, readonly string[]>;
  readonly files: readonly UploadedFile[];
  /** record is the form as recorded in Simulator.requests. */
  readonly record: ReceivedForm;
}

/**
 * FormOutcome is how reading a form ended: parsed, refused (413 past the size limit, 400 when not multipart or
 * malformed; answered once the client has sent everything, so that it reads the answer instead of a reset), or
 * aborted by the client.
 */
export type FormOutcome =
  | { readonly kind: "form"; readonly form: UploadedForm }
  | { readonly kind: "refused"; readonly error: LlamaError }
  | { readonly kind: "aborted" };

/**
 * receiveForm streams a multipart/form-data request body through MultipartParser: text fields are collected, files
 * are hashed (SHA-256) and sized on the fly with only their first FILE_HEAD_BYTES kept, so an upload costs constant
 * memory whatever its size. Bodies over maxBytes are refused with 413.
 */
export function receiveForm(req: IncomingMessage, maxBytes: number): Promise<FormOutcome> {
  return new Promise((resolve) => {
    const boundary = multipartBoundary(req.headers["content-type"]);
    let refusal: LlamaError | undefined =
      boundary === undefined ? invalidValue("Content-Type", "The request must be sent as multipart/form-data with a boundary.") : undefined;
    const fields = new Map<string, string[]>();
    const files: UploadedFile[] = [];
    let parts = 0;
    let received = 0;
    let ended = false;
    const parser = new MultipartParser(boundary ?? "-", (info) => {
      if (++parts > MAX_FORM_PARTS) throw new MultipartError(`a form has at most ${MAX_FORM_PARTS} parts`);
      return info.filename === undefined ? fieldSink(info.name, fields) : fileSink(info, info.filename, files);
    });
    req.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (refusal !== undefined) return;
      if (received > maxBytes) {
        refusal = uploadTooLarge(maxBytes, received);
        return;
      }
      refusal = guard(() => parser.write(chunk));
    });
    req.on("end", () => {
      ended = true;
      refusal ??= guard(() => parser.end());
      if (refusal !== undefined) {
        resolve({ kind: "refused", error: refusal });
        return;
      }
      const record: ReceivedForm = {
        fields: Object.fromEntries(fields),
        files: files.map(({ field, filename, contentType, size, sha256 }) => ({ field, filename, contentType, size, sha256 })),
      };
      resolve({ kind: "form", form: { fields, files, record } });
    });
    req.on("close", () => {
      if (!ended) resolve({ kind: "aborted" });
    });
  });
}

/** guard runs a parser step and turns a malformed body into a 400. */
function guard(step: () => void): LlamaError | undefined {
  try {
    step();
    return undefined;
  } catch (error) {
    if (error instanceof MultipartError) return invalidValue("body", `Malformed multipart/form-data body: ${error.message}.`);
    throw error;
  }
}

function fieldSink(name: string, fields: Map<string, string[]>): PartSink {
  const chunks: Buffer[] = [];
  let size = 0;
  return {
    write(bytes) {
      size += bytes.length;
      if (size > MAX_FIELD_BYTES) throw new MultipartError(`field '${name}' is larger than ${MAX_FIELD_BYTES} bytes`);
      chunks.push(bytes);
    },
    end() {
      const values = fields.get(name) ?? [];
      values.push(Buffer.concat(chunks).toString("utf8"));
      fields.set(name, values);
    },
  };
}

function fileSink(info: PartInfo, filename: string, files: UploadedFile[]): PartSink {
  const hash = createHash("sha256");
  const head: Buffer[] = [];
  let headBytes = 0;
  let size = 0;
  return {
    write(bytes) {
      hash.update(bytes);
      size += bytes.length;
      if (headBytes < FILE_HEAD_BYTES) {
        // Copied, so that a small view does not keep a whole (possibly large) received chunk alive.
        const kept = Buffer.from(bytes.subarray(0, FILE_HEAD_BYTES - headBytes));
        head.push(kept);
        headBytes += kept.length;
      }
    },
    end() {
      const digest = hash.digest();
      files.push({
        field: info.name,
        filename,
        contentType: info.contentType,
        size,
        sha256: digest.toString("hex"),
        digest,
        head: Buffer.concat(head),
      });
    },
  };
}
