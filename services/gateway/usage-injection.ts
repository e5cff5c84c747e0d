import type { JsonObject } from "./request-validation.js";

const EMPTY_CHOICES = Buffer.from('"choices":[]');

/**
 * needsUsageInjection tells whether a streamed request should be made to ask for usage: the gateway counts tokens
 * of every stream, as inference.club does, even when the client did not ask for the usage chunk.
 */
export function needsUsageInjection(body: JsonObject, stream: boolean): boolean {
  if (!stream) return false;
  const options = body.stream_options;
  return !(options !== null && typeof options === "object" && (options as JsonObject).include_usage === true);
}

/** withUsageRequested adds `stream_options.include_usage: true` to a body, keeping any other stream options. */
export function withUsageRequested(body: JsonObject): JsonObject {
  const options = body.stream_options;
  const kept = options !== null && typeof options === "object" && !Array.isArray(options) ? (options as JsonObject) : {};
  return { ...body, stream_options: { ...kept, include_usage: true } };
}

/**
 * isUsageOnlyChunk recognises the extra chunk that include_usage adds (`"choices":[]` with the usage), so that a
 * client that did not ask for it never sees it. A byte search, not a JSON parse, on every event.
 */
export function isUsageOnlyChunk(data: Uint8Array): boolean {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).indexOf(EMPTY_CHOICES) !== -1;
}
