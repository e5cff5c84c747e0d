import { createHash } from "node:crypto";
import { Response } from "undici";
import type { FakeRequest } from "./fake-upstream.js";

/** RecordedFile is a file a fake upstream received in a multipart form. */
export interface RecordedFile {
  readonly filename: string;
  readonly contentType: string;
  readonly size: number;
  readonly sha256: string;
}

/** RecordedEntry is one form entry in the order it arrived: a text value or a file. */
export type RecordedEntry = readonly [name: string, value: string | RecordedFile];

/**
 * readForm parses a multipart request the way a standards-following server does (undici's WHATWG form-data parser:
 * it undoes the %22, %0A and %0D escapes of file names), so tests compare what the server really reads.
 */
export async function readForm(request: FakeRequest): Promise<RecordedEntry[]> {
  const contentType = request.headers["content-type"] ?? "";
  const form = await new Response(request.body, { headers: { "content-type": contentType } }).formData();
  const entries: RecordedEntry[] = [];
  for (const [name, value] of form) {
    if (typeof value === "string") {
      entries.push([name, value]);
      continue;
    }
    const bytes = Buffer.from(await value.arrayBuffer());
    entries.push([name, { filename: value.name, contentType: value.type, size: bytes.length, sha256: sha256(bytes) }]);
  }
  return entries;
}

/** contentDispositions are a multipart body's raw Content-Disposition lines, as the bytes on the wire spell them. */
export function contentDispositions(request: FakeRequest): string[] {
  return [...request.body.toString("utf8").matchAll(/^Content-Disposition: [^\r\n]*/gim)].map((match) => match[0]);
}

/** sha256 is the hex SHA-256 of bytes. */
export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** recordedFile describes bytes the way readForm records a file. */
export function recordedFile(filename: string, contentType: string, bytes: Uint8Array): RecordedFile {
  return { filename, contentType, size: bytes.length, sha256: sha256(bytes) };
}
