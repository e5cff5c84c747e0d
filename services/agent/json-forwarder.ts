import { type CallOutcome, failure, relayAnswer, snippet, type UpstreamExchange, upstreamError } from "./answer-relay.js";
import { summarizeJsonAnswer } from "./answer-summary.js";
import { type InferResponseInit, wholeAnswer } from "./inference-parts.js";
import { readBody, type UpstreamResponse } from "./upstream-client.js";

/** DEFAULT_MAX_BODY_BYTES bounds an answer the agent reads whole: to parse it for usage, or to translate it. */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024;
/**
 * forwardJson serves the JSON endpoints of text models (chat completions, completions, embeddings, rerank, OpenAI's
 * responses, Anthropic's messages and count_tokens): it POSTs the client's body untouched and relays the answer. A
 * 2xx JSON answer comes back as head, data, trailer; an SSE answer as head, one event part per event with its data
 * bytes and event name as sent, trailer; a 4xx passes through as the upstream's own error, except that a server
 * without the route gets the unsupported_endpoint error (see relayAnswer). Everything that means the upstream failed
 * (5xx, refused, reset, timeout, a body that is not JSON, a stream that breaks) becomes one upstream_error part; a
 * passed deadline one timeout part; a cancelled call ends silently.
 */
export async function* forwardJson(exchange: UpstreamExchange): AsyncGenerator<InferResponseInit, CallOutcome> {
  const { client, call, signal } = exchange;
  let response: UpstreamResponse;
  try {
    response = await client.postJson(exchange.path, call.body, { signal, requestId: call.requestId });
  } catch (error) {
    return yield* failure(exchange, error, "");
  }
  return yield* relayAnswer(exchange, response, relayJson);
}

/** relayJson reads a 2xx JSON answer whole, to take its usage, and relays it as head, data, trailer. */
async function* relayJson(exchange: UpstreamExchange, response: UpstreamResponse): AsyncGenerator<InferResponseInit, CallOutcome> {
  let body: Buffer;
  try {
    body = await readBody(response.body, exchange.maxBodyBytes);
  } catch (error) {
    return yield* failure(exchange, error, "");
  }
  let json: unknown;
  try {
    json = JSON.parse(body.toString("utf8"));
  } catch {
    const type = response.contentType || "no content type";
    const text = snippet(body.toString("utf8"));
    return yield* upstreamError(
      exchange,
      `${exchange.server} answered HTTP ${response.status} with a body that is not JSON (${type}): ${text}`,
    );
  }
  yield* wholeAnswer(response.status, response.contentType || "application/json", body, summarizeJsonAnswer(json, exchange.call.operation));
  return "ok";
}
