import type { AnthropicError } from "./anthropic-errors.js";
import type { OpenAIError } from "./gateway-errors.js";

const DATA = Buffer.from("data: ");
const EVENT = Buffer.from("event: ");
const NEWLINE = Buffer.from("\n");
const BLANK_LINE = Buffer.from("\n\n");
const LF = 0x0a;

/** KEEPALIVE_FRAME is an SSE comment: clients ignore it, proxies see traffic while the upstream is silent. */
export const KEEPALIVE_FRAME = Buffer.from(": keep-alive\n\n");

/** SSE_HEADERS are the response headers of a streamed answer; no proxy may buffer it. */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
  connection: "keep-alive",
};

/**
 * sseFrame frames one event's data exactly as the provider emitted it: `data: <bytes>\n\n`, one `data:` line per
 * line of data as the SSE spec requires, preceded by `event: <type>` when the event had one.
 */
export function sseFrame(data: Uint8Array, event = ""): Buffer {
  const parts: Uint8Array[] = [];
  if (event) parts.push(EVENT, Buffer.from(event), NEWLINE);
  let start = 0;
  for (let i = data.indexOf(LF); i !== -1; i = data.indexOf(LF, start)) {
    parts.push(DATA, data.subarray(start, i), NEWLINE);
    start = i + 1;
  }
  parts.push(DATA, data.subarray(start), BLANK_LINE);
  return Buffer.concat(parts);
}

/** sseErrorFrame is the last frame of a stream that failed after its first byte. */
export function sseErrorFrame(error: OpenAIError): Buffer {
  return Buffer.from(`data: ${JSON.stringify({ error })}\n\n`);
}

/**
 * anthropicSseErrorFrame is the last frame of a stream on Anthropic's routes that failed after its first byte: the
 * `error` event Anthropic's streams end with, which its clients raise as an error.
 */
export function anthropicSseErrorFrame(error: AnthropicError): Buffer {
  return Buffer.from(`event: error\ndata: ${JSON.stringify({ type: "error", error })}\n\n`);
}
