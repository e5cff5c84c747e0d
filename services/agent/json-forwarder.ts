import type { InferenceCall } from "../../gen/infermesh/v1/inference_pb.js";
import { StreamSummary, summarizeJsonAnswer } from "./answer-summary.js";
import { AgentShuttingDown, DeadlineExceeded } from "./call-tracker.js";
import {
  dataParts,
  eventPart,
  headPart,
  timeoutPart,
  trailerPart,
  upstreamErrorPart,
  type InferResponseInit,
} from "./inference-parts.js";
import { DEFAULT_MAX_EVENT_BYTES, SseEventTooLargeError, SseParser } from "./sse-parser.js";
import { BodyTooLargeError, mediaType, readBody, type UpstreamClient, type UpstreamResponse } from "./upstream-client.js";
import { describeUpstreamFailure } from "./upstream-failure.js";

/** DEFAULT_MAX_BODY_BYTES bounds a non-streamed answer the agent buffers (it must parse it for usage). */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024;
/** MAX_ERROR_BODY_BYTES bounds the part of a 5xx body read to explain the failure. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;
/** MAX_DETAIL_CHARS bounds the upstream text quoted in an error message. */
const MAX_DETAIL_CHARS = 300;

/** CallOutcome is how a forwarded call ended, as counted in metrics. */
export type CallOutcome = "ok" | "client_error" | "upstream_error" | "timeout" | "cancelled" | "shutdown";

/** UpstreamExchange is one call on its way to one upstream. */
export interface UpstreamExchange {
  readonly client: UpstreamClient;
  /**
   * server names the upstream in messages that reach clients, such as "the local llm server": its URL is a private
   * address of the provider's network, written to the agent's log only.
   */
  readonly server: string;
  /** path is the upstream path, such as "/v1/chat/completions". */
  readonly path: string;
  readonly call: InferenceCall;
  /** signal fires on client cancel, deadline or shutdown (see call-tracker.ts for the reasons). */
  readonly signal: AbortSignal;
  /** timeoutMs is the client's header/idle timeout, quoted in messages. */
  readonly timeoutMs: number;
  readonly maxBodyBytes: number;
  /** onHeaders is called when the upstream's response headers arrive. */
  readonly onHeaders: () => void;
  /** onFailure hears why the upstream failed, as the upstream_error part says it. */
  readonly onFailure: (message: string) => void;
}

/** Forwarder serves one operation against an upstream and streams the answer as parts. */
export type Forwarder = (exchange: UpstreamExchange) => AsyncGenerator<InferResponseInit, CallOutcome>;

/**
 * forwardJson serves the OpenAI JSON endpoints (chat completions, completions): it POSTs the client's body untouched
 * and relays the answer. A 2xx JSON answer comes back as head, data, trailer; an SSE answer as head, one event part
 * per event with its data bytes as sent, trailer; a 4xx passes through as the upstream's own error. Everything that
 * means the upstream failed (5xx, refused, reset, timeout, a body that is not JSON, a stream that breaks) becomes one
 * upstream_error part; a passed deadline one timeout part; a cancelled call ends silently.
 */
export async function* forwardJson(exchange: UpstreamExchange): AsyncGenerator<InferResponseInit, CallOutcome> {
  const { client, call, signal } = exchange;
  let response: UpstreamResponse;
  try {
    response = await client.postJson(exchange.path, call.body, { signal, requestId: call.requestId });
  } catch (error) {
    return yield* failure(exchange, error, "");
  }
  exchange.onHeaders();
  try {
    const { status } = response;
    if (status >= 200 && status < 300 && mediaType(response.contentType) === "text/event-stream") {
      return yield* relayStream(exchange, response);
    }
    if (status >= 400 && status < 500) return yield* relayClientError(exchange, response);
    if (status < 200 || status >= 300) return yield* explainStatus(exchange, response);
    return yield* relayJson(exchange, response);
  } finally {
    // A no-op once the body was read; otherwise it frees the connection (or closes it mid-answer).
    if (!response.body.destroyed) response.body.destroy();
  }
}

async function* relayStream(exchange: UpstreamExchange, response: UpstreamResponse): AsyncGenerator<InferResponseInit, CallOutcome> {
  yield headPart(response.status, "text/event-stream");
  const parser = new SseParser(DEFAULT_MAX_EVENT_BYTES);
  const summary = new StreamSummary();
  let events = 0;
  try {
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      for (const event of parser.push(chunk)) {
        summary.observe(event.data);
        events++;
        yield eventPart(event);
      }
    }
  } catch (error) {
    return yield* failure(exchange, error, ` (the stream broke after ${events} events)`);
  }
  if (parser.hasPartialEvent) {
    return yield* upstreamError(exchange, `${exchange.server} ended its stream in the middle of an event, after ${events} events`);
  }
  yield trailerPart(summary.trailer());
  return "ok";
}

async function* relayClientError(exchange: UpstreamExchange, response: UpstreamResponse): AsyncGenerator<InferResponseInit, CallOutcome> {
  let body: Buffer;
  try {
    body = await readBody(response.body, exchange.maxBodyBytes);
  } catch (error) {
    return yield* failure(exchange, error, "");
  }
  yield headPart(response.status, response.contentType || "application/json");
  yield* dataParts(body);
  yield trailerPart({});
  return "client_error";
}

async function* explainStatus(exchange: UpstreamExchange, response: UpstreamResponse): AsyncGenerator<InferResponseInit, CallOutcome> {
  let detail: string;
  try {
    detail = errorDetail(await readBody(response.body, MAX_ERROR_BODY_BYTES));
  } catch (error) {
    if (exchange.signal.aborted) return yield* aborted(exchange.signal.reason);
    detail = error instanceof BodyTooLargeError ? "(a long body)" : "(body unreadable)";
  }
  return yield* upstreamError(exchange, `${exchange.server} answered HTTP ${response.status}${detail ? `: ${detail}` : ""}`);
}

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
    return yield* upstreamError(exchange, `${exchange.server} answered HTTP ${response.status} with a body that is not JSON (${type}): ${text}`);
  }
  yield headPart(response.status, response.contentType || "application/json");
  yield* dataParts(body);
  yield trailerPart(summarizeJsonAnswer(json));
  return "ok";
}

/** failure turns a transport error into the call's last part, or into nothing when the client is gone. */
function* failure(exchange: UpstreamExchange, error: unknown, context: string): Generator<InferResponseInit, CallOutcome> {
  if (exchange.signal.aborted) return yield* aborted(exchange.signal.reason);
  const { server } = exchange;
  const message =
    error instanceof BodyTooLargeError || error instanceof SseEventTooLargeError
      ? `${server}: ${error.message}`
      : describeUpstreamFailure(error, server, exchange.timeoutMs);
  return yield* upstreamError(exchange, `${message}${context}`);
}

function* upstreamError(exchange: UpstreamExchange, message: string): Generator<InferResponseInit, CallOutcome> {
  exchange.onFailure(message);
  yield upstreamErrorPart(message);
  return "upstream_error";
}

/** aborted is the last part of a call aborted for reason: a timeout, a shutdown, or nothing for a client that left. */
export function* aborted(reason: unknown): Generator<InferResponseInit, CallOutcome> {
  if (reason instanceof DeadlineExceeded) {
    yield timeoutPart(reason.message);
    return "timeout";
  }
  if (reason instanceof AgentShuttingDown) {
    yield upstreamErrorPart(reason.message);
    return "shutdown";
  }
  return "cancelled";
}

/** errorDetail finds the message in an error body: OpenAI's and llama-server's error.message, else the text. */
function errorDetail(body: Buffer): string {
  const text = body.toString("utf8");
  try {
    const json: unknown = JSON.parse(text);
    if (typeof json === "object" && json !== null) {
      const { error, message, detail } = json as Record<string, unknown>;
      if (typeof error === "object" && error !== null && typeof (error as Record<string, unknown>).message === "string") {
        return snippet((error as Record<string, string>).message as string);
      }
      for (const candidate of [error, message, detail]) if (typeof candidate === "string") return snippet(candidate);
    }
  } catch {
    // Not JSON: quote the text itself.
  }
  return snippet(text);
}

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > MAX_DETAIL_CHARS ? `${flat.slice(0, MAX_DETAIL_CHARS)}…` : flat;
}
