import type { InferenceCall } from "../../gen/infermesh/v1/inference_pb.js";
import { type CallOutcome, explainStatus, type Forwarder, failure, type UpstreamExchange, upstreamError } from "./answer-relay.js";
import { BodySummary, StreamSummary, type TrailerInit } from "./answer-summary.js";
import { dataParts, eventPart, headPart, type InferResponseInit, trailerPart } from "./inference-parts.js";
import { buildForm } from "./multipart-form.js";
import type { NativeBody, TranslatedAnswer, Translation } from "./translated-answer.js";
import { type RequestOptions, readBody, type UpstreamClient, type UpstreamResponse } from "./upstream-client.js";

/** Translator translates a call for a native server (see whisper-cpp-adapter.ts, automatic1111-adapter.ts). */
export type Translator = (call: InferenceCall) => Translation;

/**
 * forwardTranslated serves an operation against a server with its own API: the translator's request goes out, the
 * answer is read whole (a native answer must be rewritten, and these servers send it at once anyway), and the
 * translation comes back as head, data or events, trailer. The trailer reads the translation as it would an OpenAI
 * server's answer (usage, the audio's length, the images), unless the translator wrote one. Failures follow
 * forwardJson: 5xx, transport errors and answers the translator rejects become one upstream_error part; a translation
 * refused before sending (a request the server cannot serve) is answered without calling the server.
 */
export function forwardTranslated(translate: Translator): Forwarder {
  return async function* forward(exchange: UpstreamExchange): AsyncGenerator<InferResponseInit, CallOutcome> {
    const { call, signal } = exchange;
    const translation = translate(call);
    if (!("answer" in translation)) return yield* translatedParts(exchange, translation);
    let response: UpstreamResponse;
    try {
      response = await post(exchange.client, exchange.path, translation.body, { signal, requestId: call.requestId });
    } catch (error) {
      return yield* failure(exchange, error, "");
    }
    exchange.onHeaders();
    try {
      const { status } = response;
      if (status < 200 || (status >= 300 && status < 400) || status >= 500) return yield* explainStatus(exchange, response);
      let body: Buffer;
      try {
        body = await readBody(response.body, exchange.maxBodyBytes);
      } catch (error) {
        return yield* failure(exchange, error, "");
      }
      return yield* translatedParts(exchange, translation.answer(status, response.contentType, body, { nowMs: exchange.clock.now() }));
    } finally {
      if (!response.body.destroyed) response.body.destroy();
    }
  };
}

function post(client: UpstreamClient, path: string, body: NativeBody, options: RequestOptions): Promise<UpstreamResponse> {
  return body.kind === "form"
    ? client.postForm(path, buildForm(body.form), options)
    : client.postJson(path, Buffer.from(JSON.stringify(body.json), "utf8"), options);
}

function* translatedParts(exchange: UpstreamExchange, answer: TranslatedAnswer): Generator<InferResponseInit, CallOutcome> {
  switch (answer.kind) {
    case "failed":
      return yield* upstreamError(exchange, `${exchange.server} ${answer.message}`);
    case "events": {
      yield headPart(200, "text/event-stream");
      const summary = new StreamSummary(exchange.call);
      for (const event of answer.events) {
        summary.observe(event.data);
        yield eventPart(event);
      }
      yield trailerPart(answer.trailer ?? summary.trailer());
      return "ok";
    }
    case "body":
      yield headPart(answer.status, answer.contentType);
      yield* dataParts(answer.body);
      yield trailerPart(answer.trailer ?? (answer.status >= 400 ? {} : bodyTrailer(exchange.call, answer.contentType, answer.body)));
      return answer.status >= 400 ? "client_error" : "ok";
  }
}

/** bodyTrailer reads a translated body for the trailer, as relayBody reads an OpenAI server's. */
function bodyTrailer(call: InferenceCall, contentType: string, body: Uint8Array): TrailerInit {
  const summary = new BodySummary(call, contentType);
  summary.add(body);
  return summary.trailer();
}
