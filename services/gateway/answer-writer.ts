import { once } from "node:events";
import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import type { FastifyReply } from "fastify";
import type { InferencePart, Trailer } from "../../gen/infermesh/v1/inference_pb.js";
import { GatewayError, gatewayErrorFromCode } from "./error-envelope.js";
import { isUsageOnlyChunk } from "./usage-injection.js";
import type { SilenceTicker } from "./silence-ticker.js";
import { SSE_HEADERS, sseErrorFrame, sseFrame } from "./sse-frames.js";

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
  /** silence writes keep-alive comments into streams that the provider leaves silent. */
  readonly silence: SilenceTicker;
  /** dropUsageOnlyChunks hides the usage chunk that the gateway asked for on the client's behalf. */
  readonly dropUsageOnlyChunks?: boolean;
  readonly observer: AnswerObserver;
}

/**
 * writeAnswer turns an agent's parts into the HTTP answer. Before the first byte, failures are real HTTP statuses
 * with OpenAI's envelope (the GatewayError is thrown to the caller's error handler). A streamed answer's headers go
 * out the moment its head arrives; each event follows as the provider emitted it; a failure after that is one
 * `data: {"error":...}` frame, then the end of the response.
 */
export async function writeAnswer(reply: FastifyReply, parts: AsyncIterable<InferencePart>, options: AnswerOptions): Promise<void> {
  const iterator = parts[Symbol.asyncIterator]();
  let first: IteratorResult<InferencePart>;
  try {
    first = await iterator.next();
  } catch (error) {
    throw asGatewayError(error);
  }
  if (first.done) throw new GatewayError(502, "upstream_error", "the provider ended the answer without a response");
  const part = first.value.part;
  if (part.case === "error") throw partError(part.value);
  if (part.case !== "head") throw new GatewayError(502, "upstream_error", `the provider sent '${part.case}' before a head`);
  const head = part.value;
  if (head.contentType.startsWith("text/event-stream")) {
    await streamEvents(reply, iterator, options);
    return;
  }
  if (!isJson(head.contentType)) {
    await streamBody(reply, head.status || 200, head.contentType || "application/octet-stream", iterator, options);
    return;
  }
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
    else if (p.case === "error") throw partError(p.value);
    else if (p.case === "trailer") {
      options.observer.trailer(p.value);
      complete = true;
    }
  }
  options.observer.firstByte();
  const body = chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks);
  const sent = reply
    .code(head.status || 200)
    .header("content-type", head.contentType || "application/json")
    .send(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
  // The trailer completes the answer: the client gets it without waiting for the call's own end to travel back.
  if (complete) await drainTrailer(iterator, options.observer);
  await sent;
}

async function streamEvents(
  reply: FastifyReply,
  iterator: AsyncIterator<InferencePart>,
  options: AnswerOptions,
): Promise<void> {
  // Writing to the raw response skips Fastify's send pipeline, which costs per chunk and buffers by design.
  reply.hijack();
  const res: ServerResponse = reply.raw;
  // Headers set on the reply so far (rate-limit headers, the request id) go out with the raw head.
  res.writeHead(200, { ...replyHeaders(reply), ...SSE_HEADERS, "x-request-id": options.requestId });
  // The head goes out at once unless the first events came with it, in which case they share one write.
  const flushHeaders = setImmediate(() => res.flushHeaders());
  const watched = options.silence.watch(res);
  let firstByte = false;
  try {
    for (;;) {
      const next = await iterator.next();
      if (next.done) break;
      const p = next.value.part;
      if (p.case === "event") {
        if (options.dropUsageOnlyChunks && isUsageOnlyChunk(p.value.data)) continue;
        if (!firstByte) {
          firstByte = true;
          clearImmediate(flushHeaders);
          options.observer.firstByte();
        }
        watched.wrote();
        if (!res.write(sseFrame(p.value.data, p.value.event))) await drainOrClose(res);
        if (isDoneMarker(p.value.data)) {
          // The answer is complete: the client must not wait for, nor see, whatever happens to the call after it.
          res.end();
          await drainTrailer(iterator, options.observer);
          break;
        }
      } else if (p.case === "data") {
        clearImmediate(flushHeaders);
        watched.wrote();
        if (!res.write(p.value)) await drainOrClose(res);
      } else if (p.case === "trailer") {
        options.observer.trailer(p.value);
      } else if (p.case === "error") {
        res.write(sseErrorFrame(partError(p.value).body().error));
        break;
      }
      if (res.destroyed) break;
    }
  } catch (error) {
    if (!res.destroyed) res.write(sseErrorFrame(asGatewayError(error).body().error));
  } finally {
    clearImmediate(flushHeaders);
    watched.stop();
    if (!res.writableEnded) res.end();
  }
}

/**
 * streamBody relays a binary or text answer (speech audio, subtitles) as its parts arrive, so the first bytes reach
 * the client while the provider is still producing the rest. A failure after the head can no longer change the
 * status: the connection is cut, so the client sees a truncated body, never a complete-looking wrong one.
 */
async function streamBody(
  reply: FastifyReply,
  status: number,
  contentType: string,
  iterator: AsyncIterator<InferencePart>,
  options: AnswerOptions,
): Promise<void> {
  reply.hijack();
  const res: ServerResponse = reply.raw;
  res.writeHead(status, { ...replyHeaders(reply), "content-type": contentType, "x-request-id": options.requestId, "cache-control": "no-cache" });
  let firstByte = false;
  try {
    for (;;) {
      const next = await iterator.next();
      if (next.done) break;
      const p = next.value.part;
      if (p.case === "data") {
        if (!firstByte) {
          firstByte = true;
          options.observer.firstByte();
        }
        if (!res.write(p.value)) await drainOrClose(res);
      } else if (p.case === "trailer") {
        options.observer.trailer(p.value);
      } else if (p.case === "error") {
        res.destroy();
        return;
      }
      if (res.destroyed) return;
    }
    res.end();
  } catch {
    res.destroy();
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

async function drainOrClose(res: ServerResponse): Promise<void> {
  if (res.destroyed) return;
  await Promise.race([once(res, "drain"), once(res, "close")]);
}

function partError(error: { type: string; message: string; httpStatus: number; code: string; param: string }): GatewayError {
  return new GatewayError(error.httpStatus || 502, error.type || "upstream_error", error.message, {
    ...(error.code ? { code: error.code } : {}),
    ...(error.param ? { param: error.param } : {}),
  });
}

/** asGatewayError turns a failed agent call into the error the client gets. */
export function asGatewayError(error: unknown): GatewayError {
  if (error instanceof GatewayError) return error;
  if (error instanceof ConnectError) {
    const message = error.code === Code.Unavailable ? `the provider is unreachable: ${error.rawMessage}` : error.rawMessage;
    return gatewayErrorFromCode(error.code, message, error);
  }
  return new GatewayError(502, "upstream_error", "the provider failed", { cause: error });
}
