import { parseFormFields } from "../shared/form-fields.js";
import { MEDIA_MAX_MESSAGE_BYTES } from "../shared/grpc/message-limits.js";
import { type CallOutcome, failure, relayAnswer, type UpstreamExchange } from "./answer-relay.js";
import { BodySummary } from "./answer-summary.js";
import { dataParts, headPart, type InferResponseInit, trailerPart } from "./inference-parts.js";
import { buildForm, openAiFormParts } from "./multipart-form.js";
import type { UpstreamResponse } from "./upstream-client.js";

/**
 * MEDIA_MAX_EVENT_BYTES bounds one event of a media stream: an image stream's partial and final images arrive whole,
 * in base64, in one event each, and an event cannot be split across gRPC messages.
 */
export const MEDIA_MAX_EVENT_BYTES = MEDIA_MAX_MESSAGE_BYTES - 64 * 1024;

/**
 * forwardMediaForm serves the multipart operations (transcriptions, image edits) against an OpenAI-compatible
 * server: the form is rebuilt from the call (see openAiFormParts) and the answer relayed the way the server sends it
 * (see relayAnswer): an SSE answer (transcript deltas, partial images) as one event part per event, a 2xx body
 * (JSON, subtitles, images) by relayBody.
 */
export async function* forwardMediaForm(exchange: UpstreamExchange): AsyncGenerator<InferResponseInit, CallOutcome> {
  const { call, signal } = exchange;
  const form = buildForm(openAiFormParts(call.operation, parseFormFields(call.body), call.media));
  let response: UpstreamResponse;
  try {
    response = await exchange.client.postForm(exchange.path, form, { signal, requestId: call.requestId });
  } catch (error) {
    return yield* failure(exchange, error, "");
  }
  return yield* relayAnswer(exchange, response, relayBody, MEDIA_MAX_EVENT_BYTES);
}

/**
 * forwardMediaJson serves the JSON media operations (image generations, speech) against an OpenAI-compatible
 * server: the client's body goes out untouched and the answer is relayed the way the server sends it (see
 * relayAnswer): an SSE answer (partial images, speech deltas) as one event part per event, a 2xx body (audio, images)
 * by relayBody.
 */
export async function* forwardMediaJson(exchange: UpstreamExchange): AsyncGenerator<InferResponseInit, CallOutcome> {
  const { call, signal } = exchange;
  let response: UpstreamResponse;
  try {
    response = await exchange.client.postJson(exchange.path, call.body, { signal, requestId: call.requestId });
  } catch (error) {
    return yield* failure(exchange, error, "");
  }
  return yield* relayAnswer(exchange, response, relayBody, MEDIA_MAX_EVENT_BYTES);
}

/**
 * relayBody streams a 2xx body: each piece the server wrote becomes data parts (at most DATA_PART_BYTES each) as soon
 * as it arrives, never buffered, so speech reaches the client while the server still speaks. Each piece is read on
 * its way for the trailer (see BodySummary): a JSON body's usage and images, speech's length. A body that breaks off
 * ends with one upstream_error part after the bytes already relayed.
 */
async function* relayBody(exchange: UpstreamExchange, response: UpstreamResponse): AsyncGenerator<InferResponseInit, CallOutcome> {
  const contentType = response.contentType || "application/octet-stream";
  yield headPart(response.status, contentType);
  const summary = new BodySummary(exchange.call, contentType);
  let bytes = 0;
  try {
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      summary.add(chunk);
      yield* dataParts(chunk);
    }
  } catch (error) {
    return yield* failure(exchange, error, ` (the answer broke off after ${bytes} bytes)`);
  }
  yield trailerPart(summary.trailer());
  return "ok";
}
