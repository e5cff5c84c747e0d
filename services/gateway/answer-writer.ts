import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import type { FastifyReply } from "fastify";
import type { InferencePart, Trailer } from "../../gen/infermesh/v1/inference_pb.js";
import { anthropicError, anthropicRelayedError } from "./anthropic-errors.js";
import { type Api, fromErrorPart, fromGrpcStatus, GatewayError, upstreamFailed } from "./gateway-errors.js";
import type { SilenceTicker } from "./silence-ticker.js";
import { anthropicSseErrorFrame, SSE_HEADERS, sseErrorFrame, sseFrame } from "./sse-frames.js";
import { isUsageOnlyChunk } from "./usage-injection.js";

/** DEFAULT_KEEPALIVE_MS is how long a stream may stay silent before the gateway writes a keep-alive comment. */
export const DEFAULT_KEEPALIVE_MS = 15_000;

/** AnswerObserver hears the milestones of an answer, for metrics. */
export interface AnswerObserver {
  firstByte(): void;
  trailer(trailer: Trailer): void;
}

/** AnswerOptions tunes how an answer is written. */
export interface AnswerOptions {
  readonly requestId: string;
  /** api is whose API the route belongs to: Anthropic's routes answer failures in Anthropic's envelope and events. */
  readonly api: Api;
  /** silence writes keep-alive comments into event streams that the provider leaves silent. */
  readonly silence: SilenceTicker;
  /** hideUsageChunks drops the usage chunk that the gateway asked for on the client's behalf. */
  readonly hideUsageChunks: boolean;
  readonly observer: AnswerObserver;
}

/**
 * writeAnswer turns an agent's parts into the HTTP answer. Before the first byte, failures are real HTTP statuses
 * with the route's error envelope (the GatewayError is thrown to the caller's error handler). A JSON answer is sent
 * whole; a streamed one (events, or a binary or text body such as speech) goes out as its parts arrive, its head at
 * once. On Anthropic's routes a provider's own error answer is sent whole too, rewritten into Anthropic's envelope.
 */
export async function writeAnswer(reply: FastifyReply, parts: AsyncIterable<InferencePart>, options: AnswerOptions): Promise<void> {
  const iterator = parts[Symbol.asyncIterator]();
  try {
    await writeParts(reply, iterator, options);
  } finally {
    // Parts left unread (an error part, a client gone) are closed, so that whoever produces them can account for the
    // call; after the last part this does nothing.
    await iterator.return?.();
  }
}

async function writeParts(reply: FastifyReply, iterator: AsyncIterator<InferencePart>, options: AnswerOptions): Promise<void> {
  let first: IteratorResult<InferencePart>;
  try {
    first = await iterator.next();
  } catch (error) {
    throw asGatewayError(error);
  }
  if (first.done) throw upstreamFailed("the provider ended the answer without a response");
  const part = first.value.part;
  if (part.case === "error") throw fromErrorPart(part.value);
  if (part.case !== "head") throw upstreamFailed(`the provider sent '${part.case}' before a head`);
  const { contentType, status } = part.value;
  if (options.api === "anthropic" && status >= 400) {
    const rewrite = (body: Uint8Array) => anthropicRelayedError(status, body, options.requestId);
    return sendWhole(reply, status, "application/json", iterator, options.observer, rewrite);
  }
  if (isJson(contentType)) return sendWhole(reply, status || 200, contentType || "application/json", iterator, options.observer);
  const events = contentType.startsWith("text/event-stream");
  return streamAnswer(reply, iterator, options, {
    status: events ? 200 : status || 200,
    headers: events ? SSE_HEADERS : { "content-type": contentType || "application/octet-stream", "cache-control": "no-cache" },
    events,
  });
}

/** sendWhole collects a JSON answer and sends it as one body, rewritten first when rewrite is given. */
async function sendWhole(
  reply: FastifyReply,
  status: number,
  contentType: string,
  iterator: AsyncIterator<InferencePart>,
  observer: AnswerObserver,
  rewrite?: (body: Uint8Array) => Uint8Array,
): Promise<void> {
  const chunks: Uint8Array[] = [];
  let complete = false;
  while (!complete) {
    let next: IteratorResult<InferencePart>;
    try {
      next = await iterator.next();
    } catch (error) {
      throw asGatewayError(error);
    }
    if (next.done) break;
    const p = next.value.part;
    if (p.case === "data") chunks.push(p.value);
    else if (p.case === "error") throw fromErrorPart(p.value);
    else if (p.case === "trailer") {
      observer.trailer(p.value);
      complete = true;
    }
  }
  observer.firstByte();
  const whole = chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks);
  const body = rewrite ? rewrite(whole) : whole;
  const sent = reply
    .code(status)
    .header("content-type", contentType)
    .send(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
  // The trailer completes the answer: the client gets it without waiting for the call's own end to travel back.
  if (complete) await drainTrailer(iterator, observer);
  await sent;
}

/** StreamFormat is how a streamed answer goes out: its status and headers, and whether it is server-sent events. */
interface StreamFormat {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly events: boolean;
}

/**
 * streamAnswer relays a streamed answer as its parts arrive: each event framed as the provider emitted it, its name
 * included, each piece of a body as it came. The status can no longer change once the head is out, so a failure ends
 * an event stream with one `data: {"error":...}` frame (on Anthropic's routes, its `event: error`), and cuts a body's
 * connection, so that the client sees a truncated body, never a complete-looking wrong one. An event stream's
 * `[DONE]` completes the answer at once.
 */
async function streamAnswer(
  reply: FastifyReply,
  iterator: AsyncIterator<InferencePart>,
  options: AnswerOptions,
  format: StreamFormat,
): Promise<void> {
  // Writing to the raw response skips Fastify's send pipeline, which costs per chunk and buffers by design.
  reply.hijack();
  const res: ServerResponse = reply.raw;
  // Headers set on the reply so far (rate-limit headers, the request id) go out with the raw head.
  res.writeHead(format.status, { ...replyHeaders(reply), ...format.headers, "x-request-id": options.requestId });
  // The head goes out at once unless the first bytes come with it, in which case they share one write.
  const flushHeaders = setImmediate(() => res.flushHeaders());
  const watched = format.events ? options.silence.watch(res) : undefined;
  let started = false;
  // write tells whether the response can take more now; awaiting only when it cannot keeps a promise off every event.
  const write = (bytes: Uint8Array): boolean => {
    if (!started) {
      started = true;
      clearImmediate(flushHeaders);
      options.observer.firstByte();
    }
    watched?.wrote();
    return res.write(bytes);
  };
  let cut = false;
  const fail = (error: GatewayError) => {
    if (format.events) {
      if (!res.destroyed) {
        res.write(options.api === "anthropic" ? anthropicSseErrorFrame(anthropicError(error)) : sseErrorFrame(error.detail));
      }
      return;
    }
    // The bytes written so far reach the client, then the connection ends without HTTP's end of body, so the client
    // sees a truncated answer. A destroy would drop them: HTTP holds a response's first bytes back until the next tick.
    cut = true;
    if (res.socket && !res.socket.destroyed) res.socket.end();
    else res.destroy();
  };
  try {
    for (let next = await iterator.next(); !next.done && !res.destroyed; next = await iterator.next()) {
      const p = next.value.part;
      if (p.case === "event") {
        if (!format.events || (options.hideUsageChunks && isUsageOnlyChunk(p.value.data))) continue;
        if (!write(sseFrame(p.value.data, p.value.event))) await drainOrClose(res);
        if (isDoneMarker(p.value.data)) {
          // The answer is complete: the client must not wait for, nor see, whatever happens to the call after it.
          res.end();
          await drainTrailer(iterator, options.observer);
          return;
        }
      } else if (p.case === "data") {
        if (!write(p.value)) await drainOrClose(res);
      } else if (p.case === "trailer") {
        options.observer.trailer(p.value);
      } else if (p.case === "error") {
        fail(fromErrorPart(p.value));
        return;
      }
    }
  } catch (error) {
    fail(asGatewayError(error));
  } finally {
    clearImmediate(flushHeaders);
    watched?.stop();
    if (!cut && !res.writableEnded && !res.destroyed) res.end();
  }
}

/** replyHeaders are the headers set on a reply so far, for a raw head written after hijack(). */
function replyHeaders(reply: FastifyReply): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) headers[name] = value;
  return headers;
}

function isJson(contentType: string): boolean {
  return contentType === "" || /^application\/([\w.+-]*\+)?json\b/i.test(contentType);
}

const DONE = Buffer.from("[DONE]");

function isDoneMarker(data: Uint8Array): boolean {
  return data.byteLength === DONE.byteLength && DONE.equals(data);
}

/** drainTrailer reads what follows a finished answer for its usage; a failure then no longer concerns the client. */
async function drainTrailer(iterator: AsyncIterator<InferencePart>, observer: AnswerObserver): Promise<void> {
  try {
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      if (next.value.part.case === "trailer") observer.trailer(next.value.part.value);
    }
  } catch {
    // The client already has its whole answer.
  }
}

/**
 * drainOrClose waits until the response has room again or is gone. Both listeners go once either fires: a client
 * that stays slow for a long stream waits thousands of times, and a listener left behind each time would pile up.
 */
function drainOrClose(res: ServerResponse): Promise<void> {
  if (res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/** asGatewayError turns a failed agent call into the error the client gets. */
export function asGatewayError(error: unknown): GatewayError {
  if (error instanceof GatewayError) return error;
  if (error instanceof ConnectError) {
    const message = error.code === Code.Unavailable ? `the provider is unreachable: ${error.rawMessage}` : error.rawMessage;
    return fromGrpcStatus(error.code, message, error);
  }
  return upstreamFailed("the provider failed", error);
}
