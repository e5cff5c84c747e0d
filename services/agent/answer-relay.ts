import { ErrorKind, type InferenceCall, Operation } from "../../gen/infermesh/v1/inference_pb.js";
import type { Clock } from "../shared/clock.js";
import { operationInfo } from "../shared/inference-catalog.js";
import { StreamSummary } from "./answer-summary.js";
import { AgentShuttingDown, DeadlineExceeded } from "./call-tracker.js";
import {
  dataParts,
  errorPart,
  eventMessages,
  headPart,
  type InferResponseInit,
  trailerPart,
  unsupportedEndpointPart,
} from "./inference-parts.js";
import { DEFAULT_MAX_EVENT_BYTES, SseEventTooLargeError, SseParser } from "./sse-parser.js";
import { BodyTooLargeError, mediaType, readBody, type UpstreamClient, type UpstreamResponse } from "./upstream-client.js";
import { describeUpstreamFailure } from "./upstream-failure.js";

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
  /** onFailure hears why the upstream failed, as the upstream_error part says it, and the error behind it if any. */
  readonly onFailure: (message: string, error?: unknown) => void;
  /** clock dates what the agent itself writes into answers (the `created` of translated image answers). */
  readonly clock: Clock;
}

/** Forwarder serves one operation against an upstream and streams the answer as parts. */
export type Forwarder = (exchange: UpstreamExchange) => AsyncGenerator<InferResponseInit, CallOutcome>;

/** BodyRelay relays a 2xx answer that is not an event stream, in the way of one kind of operation. */
export type BodyRelay = (exchange: UpstreamExchange, response: UpstreamResponse) => AsyncGenerator<InferResponseInit, CallOutcome>;

/**
 * relayAnswer relays an OpenAI-compatible server's answer by its status: a 2xx event stream event by event
 * (relayEvents, with events of up to maxEventBytes), a server without the operation's route as the client's
 * unsupported_endpoint error (see isMissingRoute), any other 4xx as the server's own answer (relayClientError), any
 * other status that is not 2xx as one upstream_error part (explainStatus), and any other 2xx by relayBody. However
 * the relay ends, the body is destroyed afterwards: a no-op once it was read, otherwise it frees the connection (or
 * closes it mid-answer).
 */
export async function* relayAnswer(
  exchange: UpstreamExchange,
  response: UpstreamResponse,
  relayBody: BodyRelay,
  maxEventBytes = DEFAULT_MAX_EVENT_BYTES,
): AsyncGenerator<InferResponseInit, CallOutcome> {
  exchange.onHeaders();
  try {
    const { status } = response;
    if (status >= 200 && status < 300 && mediaType(response.contentType) === "text/event-stream") {
      return yield* relayEvents(exchange, response, maxEventBytes);
    }
    if (isMissingRoute(exchange.call.operation, status)) return yield* unsupportedEndpoint(exchange, response);
    if (status >= 400 && status < 500) return yield* relayClientError(exchange, response);
    if (status < 200 || status >= 300) return yield* explainStatus(exchange, response);
    return yield* relayBody(exchange, response);
  } finally {
    if (!response.body.destroyed) response.body.destroy();
  }
}

/**
 * isMissingRoute tells an answer that means the server lacks the operation's route: 404 or 405 (a server that
 * predates the route; llama-server's `{"error":{"message":"File Not Found","type":"not_found_error"}}`) or 501 (a
 * server that has the route but not the function: llama-server's `not_supported_error` when it was started without
 * --embeddings or --reranking). Only for the operations a server of the right service type may lack (see
 * routeMayBeMissing): chat's 404 is the server's own answer, such as vLLM's for a model it does not know.
 */
export function isMissingRoute(operation: Operation, status: number): boolean {
  return (status === 404 || status === 405 || status === 501) && routeMayBeMissing(operation);
}

/**
 * routeMayBeMissing tells the operations that servers of their service type may not serve: embeddings and rerank
 * (llama-server serves them only when started for them), the Responses and Anthropic protocols (newer than most
 * servers), and translations (most speech-to-text servers only transcribe).
 */
function routeMayBeMissing(operation: Operation): boolean {
  switch (operation) {
    case Operation.EMBEDDING:
    case Operation.RERANK:
    case Operation.RESPONSE:
    case Operation.MESSAGE:
    case Operation.COUNT_TOKENS:
    case Operation.TRANSLATION:
      return true;
    case Operation.CHAT_COMPLETION:
    case Operation.COMPLETION:
    case Operation.TRANSCRIPTION:
    case Operation.IMAGE_GENERATION:
    case Operation.IMAGE_EDIT:
    case Operation.SPEECH:
    case Operation.UNSPECIFIED:
      return false;
  }
}

/**
 * unsupportedEndpoint answers a call whose server lacks its route with the client's error (unsupportedEndpointPart):
 * the server is up and answered, the model just cannot do this, so it is neither passed off as the server's 404 nor
 * made a 5xx that would fail over or trip the circuit breaker. A 501's message says why, so it is quoted.
 */
async function* unsupportedEndpoint(
  exchange: UpstreamExchange,
  response: UpstreamResponse,
): AsyncGenerator<InferResponseInit, CallOutcome> {
  let detail = "";
  try {
    // Read whatever the status: an unread body would be cut off, and its connection with it.
    const body = await readBody(response.body, MAX_ERROR_BODY_BYTES);
    if (response.status === 501) detail = errorDetail(body);
  } catch {
    if (exchange.signal.aborted) return yield* aborted(exchange.signal.reason);
  }
  const { call } = exchange;
  // The route as the client called it: the server's own path (whisper.cpp's /inference) means nothing to the client.
  const route = `POST ${operationInfo(call.operation)?.path ?? exchange.path}`;
  const answered = `HTTP ${response.status}${detail ? `: ${detail}` : ""}`;
  yield unsupportedEndpointPart(`Model '${call.model}' is served by a server that does not serve ${route} (it answered ${answered})`);
  return "client_error";
}

/**
 * relayEvents relays a 2xx text/event-stream answer: the head, the events with their data bytes as sent and their
 * event names, then a trailer with the usage and finish reasons the events reported, and the images or audio they
 * carried (see StreamSummary). The events one read of the body completes travel together in one message (with the
 * head, when the first events came with the headers): a model server that flushes several tokens at once costs one
 * message, not one each. A stream that breaks, or ends in the
 * middle of an event, ends with one upstream_error part after the events already relayed.
 */
export async function* relayEvents(
  exchange: UpstreamExchange,
  response: UpstreamResponse,
  maxEventBytes = DEFAULT_MAX_EVENT_BYTES,
): AsyncGenerator<InferResponseInit, CallOutcome> {
  const head = headPart(response.status, "text/event-stream");
  // Headers of a long prompt go out at once; the client should not wait for the first token to learn the status.
  let pendingHead = response.body.readableLength > 0 ? head : undefined;
  if (!pendingHead) yield head;
  const parser = new SseParser(maxEventBytes);
  const summary = new StreamSummary(exchange.call);
  let events = 0;
  try {
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      const completed = parser.push(chunk);
      if (completed.length === 0) {
        if (pendingHead) yield pendingHead;
        pendingHead = undefined;
        continue;
      }
      for (const event of completed) summary.observe(event.data);
      events += completed.length;
      yield* eventMessages(completed, pendingHead);
      pendingHead = undefined;
    }
  } catch (error) {
    if (pendingHead) yield pendingHead;
    return yield* failure(exchange, error, ` (the stream broke after ${events} events)`);
  }
  if (pendingHead) yield pendingHead;
  if (parser.hasPartialEvent) {
    return yield* upstreamError(exchange, `${exchange.server} ended its stream in the middle of an event, after ${events} events`);
  }
  yield trailerPart(summary.trailer());
  return "ok";
}

/** relayClientError passes an upstream 4xx through as the upstream's own answer: head, body, empty trailer. */
export async function* relayClientError(
  exchange: UpstreamExchange,
  response: UpstreamResponse,
): AsyncGenerator<InferResponseInit, CallOutcome> {
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

/** explainStatus turns a status that means the upstream failed (5xx, 3xx, 1xx) into one upstream_error part. */
export async function* explainStatus(
  exchange: UpstreamExchange,
  response: UpstreamResponse,
): AsyncGenerator<InferResponseInit, CallOutcome> {
  let detail: string;
  try {
    detail = errorDetail(await readBody(response.body, MAX_ERROR_BODY_BYTES));
  } catch (error) {
    if (exchange.signal.aborted) return yield* aborted(exchange.signal.reason);
    detail = error instanceof BodyTooLargeError ? "(a long body)" : "(body unreadable)";
  }
  return yield* upstreamError(exchange, `${exchange.server} answered HTTP ${response.status}${detail ? `: ${detail}` : ""}`);
}

/** failure turns a transport error into the call's last part, or into nothing when the client is gone. */
export function* failure(exchange: UpstreamExchange, error: unknown, context: string): Generator<InferResponseInit, CallOutcome> {
  if (exchange.signal.aborted) return yield* aborted(exchange.signal.reason);
  const { server } = exchange;
  const message =
    error instanceof BodyTooLargeError || error instanceof SseEventTooLargeError
      ? `${server}: ${error.message}`
      : describeUpstreamFailure(error, server, exchange.timeoutMs);
  return yield* upstreamError(exchange, `${message}${context}`, error);
}

/** upstreamError ends the call with one upstream_error part, and tells onFailure why. */
export function* upstreamError(exchange: UpstreamExchange, message: string, error?: unknown): Generator<InferResponseInit, CallOutcome> {
  exchange.onFailure(message, error);
  yield errorPart(ErrorKind.UPSTREAM, message);
  return "upstream_error";
}

/** aborted is the last part of a call aborted for reason: a timeout, a shutdown, or nothing for a client that left. */
export function* aborted(reason: unknown): Generator<InferResponseInit, CallOutcome> {
  if (reason instanceof DeadlineExceeded) {
    yield errorPart(ErrorKind.TIMEOUT, reason.message);
    return "timeout";
  }
  if (reason instanceof AgentShuttingDown) {
    yield errorPart(ErrorKind.SHUTDOWN, reason.message);
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
      const { error, message, detail, errors } = json as Record<string, unknown>;
      if (typeof error === "object" && error !== null && typeof (error as Record<string, unknown>).message === "string") {
        return snippet((error as Record<string, string>).message as string);
      }
      // AUTOMATIC1111 names the exception in `error` and says what went wrong in `errors`.
      if (typeof error === "string" && typeof errors === "string" && errors !== "") return snippet(`${error}: ${errors}`);
      for (const candidate of [error, message, detail]) if (typeof candidate === "string") return snippet(candidate);
    }
  } catch {
    // Not JSON: quote the text itself.
  }
  return snippet(text);
}

/** snippet flattens upstream text for a message and cuts it to MAX_DETAIL_CHARS. */
export function snippet(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > MAX_DETAIL_CHARS ? `${flat.slice(0, MAX_DETAIL_CHARS)}…` : flat;
}
