/** MiB is a mebibyte. */
export const MiB = 1024 * 1024;

/** OMIT, as an override's value, removes the field from a body. */
export const OMIT: unique symbol = Symbol("omit");

/** Overrides change a body's fields; OMIT removes one. */
export type Overrides = Readonly<Record<string, unknown>>;

/** withOverrides applies overrides to a base object, in order, OMIT removing a field. */
export function withOverrides(base: Readonly<Record<string, unknown>>, overrides: Overrides): Record<string, unknown> {
  const result: Record<string, unknown> = { ...base };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === OMIT) delete result[name];
    else result[name] = value;
  }
  return result;
}

/** json serialises a value as a request body. */
export function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), "utf8");
}

/** utf8 is a string's UTF-8 bytes. */
export function utf8(text: string): Buffer {
  return Buffer.from(text, "utf8");
}

/** bytes joins strings (as UTF-8) and raw byte lists into one buffer, for bodies with bytes no string can hold. */
export function bytes(...pieces: readonly (string | readonly number[])[]): Buffer {
  return Buffer.concat(pieces.map((piece) => (typeof piece === "string" ? Buffer.from(piece, "utf8") : Buffer.from(piece))));
}

/** nestedArrays is `depth` arrays, each inside the previous: `[[[...]]]`. */
export function nestedArrays(depth: number): string {
  return "[".repeat(depth) + "]".repeat(depth);
}

/** nestedObjects is `depth` objects, each the value of the previous one's key "a". */
export function nestedObjects(depth: number): string {
  return `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
}

/** FormPart is one part of a hand-made multipart body. */
export interface FormPart {
  readonly name: string;
  readonly filename?: string;
  readonly contentType?: string;
  readonly data: string | Buffer;
  /** headers replaces the part's whole header block (without the blank line), for malformed parts. */
  readonly headers?: string;
}

/**
 * multipart builds a multipart/form-data body by hand, so that cases can get it wrong on purpose: close: false leaves
 * out the closing boundary.
 */
export function multipart(boundary: string, parts: readonly FormPart[], options: { close?: boolean } = {}): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const disposition = `Content-Disposition: form-data; name="${part.name}"${part.filename === undefined ? "" : `; filename="${part.filename}"`}`;
    const head = part.headers ?? disposition + (part.contentType === undefined ? "" : `\r\nContent-Type: ${part.contentType}`);
    chunks.push(Buffer.from(`--${boundary}\r\n${head}\r\n\r\n`, "latin1"));
    chunks.push(typeof part.data === "string" ? Buffer.from(part.data, "utf8") : part.data);
    chunks.push(Buffer.from("\r\n", "latin1"));
  }
  if (options.close !== false) chunks.push(Buffer.from(`--${boundary}--\r\n`, "latin1"));
  return Buffer.concat(chunks);
}

/** BOUNDARY is the boundary of the corpus's multipart bodies. */
export const BOUNDARY = "----infermesh-bad-input-7f3a";

/** FORM_TYPE is the content type that announces BOUNDARY. */
export const FORM_TYPE = `multipart/form-data; boundary=${BOUNDARY}`;
