/** SSE_DONE is the frame that ends a successful llama-server stream. */
export const SSE_DONE = "data: [DONE]\n\n";

/**
 * SSE_HEADERS are llama-server's stream response headers, in its order; Node adds Transfer-Encoding and the
 * keep-alive headers itself.
 */
export const SSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  Server: "llama.cpp",
  "Access-Control-Allow-Origin": "",
  "X-Accel-Buffering": "no",
  "Content-Type": "text/event-stream",
});

/**
 * sseFrame frames one JSON payload the way llama-server does: a single `data:` line and a blank line, no `event:`
 * or `id:` fields.
 */
export function sseFrame(json: string): string {
  return `data: ${json}\n\n`;
}

/** sseEvent frames one JSON payload with an `event:` line, as OpenAI's image streams do. */
export function sseEvent(event: string, json: string): string {
  return `event: ${event}\ndata: ${json}\n\n`;
}
