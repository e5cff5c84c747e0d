import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus } from "@connectrpc/connect/protocol-grpc";
import {
  AgentService,
  type InferenceCall,
  type InferencePart,
  InferRequestSchema,
  InferResponseSchema,
} from "../../../gen/infermesh/v1/inference_pb.js";
import { AnswerQueue, failedCall } from "../answer-queue.js";
import { type Clock, systemClock, type TimerHandle } from "../clock.js";
import { AgentSessions } from "./http2-sessions.js";
import { DEFAULT_MAX_MESSAGE_BYTES } from "./message-limits.js";
import { frameMessage, GrpcWireError, grpcMessage, MessageReader, STATUS_OK, statusCode, timeoutHeader } from "./wire.js";

const INFER_PATH = `/${AgentService.typeName}/${AgentService.method.infer.name}`;

/**
 * DEFAULT_AGENT_KEEPALIVE_MS is the ping interval on connections to peer gateways, and DEFAULT_AGENT_KEEPALIVE_TIMEOUT_MS
 * how long a ping may go unanswered: a peer that vanishes without closing its connection (a frozen process, a machine
 * that lost power) fails its streams within their sum. The timeout is not shorter because a busy event loop (at
 * either end) may answer a ping late, and dropping a healthy connection fails every call on it.
 */
export const DEFAULT_AGENT_KEEPALIVE_MS = 1_000;
export const DEFAULT_AGENT_KEEPALIVE_TIMEOUT_MS = 4_000;
/** AGENT_FLOW_CONTROL_WINDOW_BYTES is the HTTP/2 window to peers: the default 64 KiB stalls many concurrent streams. */
const AGENT_FLOW_CONTROL_WINDOW_BYTES = 16 * 1024 * 1024;
/**
 * QUEUED_PARTS_HIGH_WATER and QUEUED_BYTES_HIGH_WATER bound the unread parts a call buffers before it stops reading
 * from the connection (beyond that, the HTTP/2 window holds what the agent already sent).
 */
const QUEUED_PARTS_HIGH_WATER = 64;
const QUEUED_BYTES_HIGH_WATER = 1024 * 1024;

/**
 * PeerCalls opens AgentService.Infer streams to the other gateways of the mesh, for providers whose agent holds its
 * link there, over one pooled HTTP/2 connection per gateway.
 */
export interface PeerCalls {
  /**
   * infer asks the gateway at endpoint to serve the call on the provider's link, and yields the answer's parts.
   * Aborting signal cancels the call (and so the agent's upstream request). gRPC failures surface as ConnectErrors.
   */
  infer(endpoint: string, providerId: string, call: InferenceCall, signal: AbortSignal): AsyncIterable<InferencePart>;
  /** forget closes the connection to an endpoint that is no longer in use. */
  forget(endpoint: string): void;
  close(): void;
}

/** PeerCallsOptions tunes the connections to peer gateways. */
export interface PeerCallsOptions {
  /** meshToken is the credential peers require. */
  readonly meshToken: string;
  /** tls dials peers with TLS, trusting ca (Node's defaults when undefined). */
  readonly tls?: { readonly ca: readonly string[] | undefined } | undefined;
  readonly maxMessageBytes?: number;
  /** clock tells the time calls' deadlines are measured against. */
  readonly clock?: Clock;
  /** keepaliveMs is how often a connection is pinged, so a vanished agent is noticed. */
  readonly keepaliveMs?: number;
}

/**
 * createPeerCalls builds the gateway's client side of AgentService.Infer, the hop to the gateway holding an agent's
 * link: gRPC over node:http2 directly, with protobuf-es encoding. Every call that lands on another gateway than its
 * agent's takes it, and grpc-js's general client (interceptors, filters, load balancing, a channel state machine, a
 * deprecated-API wrapper per call) cost twice the CPU per call of this one (bench/grpc-client-bench.ts).
 */
export function createPeerCalls(options: PeerCallsOptions): PeerCalls {
  const sessions = new AgentSessions({
    keepaliveMs: options.keepaliveMs ?? DEFAULT_AGENT_KEEPALIVE_MS,
    keepaliveTimeoutMs: DEFAULT_AGENT_KEEPALIVE_TIMEOUT_MS,
    windowBytes: AGENT_FLOW_CONTROL_WINDOW_BYTES,
    tls: options.tls,
  });
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const clock = options.clock ?? systemClock;
  const authorization = `Bearer ${options.meshToken}`;

  return {
    infer(endpoint, providerId, call, signal) {
      const headers: http2.OutgoingHttpHeaders = {
        ":method": "POST",
        ":path": INFER_PATH,
        "content-type": "application/grpc",
        te: "trailers",
        authorization,
      };
      const deadlineMs = call.deadline ? timestampMs(call.deadline) : undefined;
      if (deadlineMs !== undefined) {
        const remainingMs = deadlineMs - clock.now();
        if (remainingMs <= 0) return failedCall(new ConnectError("the call's deadline passed before it began", Code.DeadlineExceeded));
        headers["grpc-timeout"] = timeoutHeader(remainingMs);
      }
      const request = frameMessage(toBinary(InferRequestSchema, create(InferRequestSchema, { call, providerId })));
      let stream: http2.ClientHttp2Stream;
      try {
        stream = sessions.request(endpoint, headers);
      } catch (error) {
        return failedCall(
          new ConnectError(
            `cannot reach the gateway holding the agent's link: ${messageOf(error)}`,
            Code.Unavailable,
            undefined,
            undefined,
            error,
          ),
        );
      }
      stream.end(request);
      return new InferCall(stream, new MessageReader(maxMessageBytes), signal, deadlineMs, clock);
    },
    forget(endpoint) {
      sessions.forget(endpoint);
    },
    close() {
      sessions.close();
    },
  };
}

/**
 * InferCall is one Infer stream read as the parts of the answer. Parts queue as messages arrive; past
 * QUEUED_PARTS_HIGH_WATER unread ones the stream is paused, so HTTP/2 flow control slows the agent to the client's
 * pace. It ends with the call's gRPC status: OK ends the iteration, anything else throws a ConnectError with the code.
 */
class InferCall extends AnswerQueue {
  readonly #stream: http2.ClientHttp2Stream;
  readonly #reader: MessageReader;
  readonly #signal: AbortSignal;
  readonly #deadline: TimerHandle | undefined;
  #queuedBytes = 0;
  #paused = false;
  #httpStatus = 200;
  #grpcStatus: Code | typeof STATUS_OK | undefined;
  #grpcMessage = "";

  constructor(stream: http2.ClientHttp2Stream, reader: MessageReader, signal: AbortSignal, deadlineMs: number | undefined, clock: Clock) {
    super();
    this.#stream = stream;
    this.#reader = reader;
    this.#signal = signal;
    stream.on("response", this.#onHeaders);
    stream.on("data", this.#onData);
    stream.on("trailers", this.#onHeaders);
    stream.on("error", this.#onError);
    stream.on("close", this.#onClose);
    signal.addEventListener("abort", this.#onAbort);
    this.#deadline = this.deadlineTimer(deadlineMs, clock);
    if (signal.aborted) this.#onAbort();
  }

  readonly #onHeaders = (headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader): void => {
    const status = headers[":status"];
    if (status !== undefined) this.#httpStatus = status;
    const grpcStatus = headers["grpc-status"];
    if (grpcStatus !== undefined) {
      this.#grpcStatus = statusCode(grpcStatus);
      this.#grpcMessage = grpcMessage(headers["grpc-message"]);
    }
  };

  readonly #onMessage = (message: Buffer): void => {
    this.#queuedBytes += message.length;
    const response = fromBinary(InferResponseSchema, message);
    if (response.part) this.enqueue(response.part);
    else for (const part of response.parts) this.enqueue(part);
  };

  readonly #onData = (chunk: Buffer): void => {
    try {
      this.#reader.push(chunk, this.#onMessage);
    } catch (error) {
      const code = error instanceof GrpcWireError ? error.code : Code.Internal;
      this.cancel(new ConnectError(`the agent's answer is malformed: ${messageOf(error)}`, code, undefined, undefined, error));
      return;
    }
    const queued = this.queued;
    if ((queued > QUEUED_PARTS_HIGH_WATER || this.#queuedBytes > QUEUED_BYTES_HIGH_WATER) && queued > 0 && !this.#paused) {
      this.#paused = true;
      this.#stream.pause();
    }
    this.wake();
  };

  readonly #onError = (error: Error): void => {
    this.#finish(new ConnectError(messageOf(error), Code.Unavailable, undefined, undefined, error));
  };

  readonly #onClose = (): void => {
    if (this.over) return;
    if (this.#grpcStatus === STATUS_OK) {
      this.#finish(this.#reader.hasPartialMessage ? new ConnectError("the agent's answer ended mid-message", Code.Internal) : null);
    } else if (this.#grpcStatus !== undefined) {
      this.#finish(new ConnectError(this.#grpcMessage || `the agent failed the call (${Code[this.#grpcStatus]})`, this.#grpcStatus));
    } else if (this.#httpStatus !== 200) {
      this.#finish(new ConnectError(`the agent answered HTTP ${this.#httpStatus}`, codeFromHttpStatus(this.#httpStatus)));
    } else if (this.#stream.session === undefined || this.#stream.session.destroyed) {
      this.#finish(new ConnectError("the connection to the agent closed", Code.Unavailable));
    } else if (this.#stream.rstCode) {
      this.#finish(new ConnectError(`the agent reset the call (HTTP/2 error ${this.#stream.rstCode})`, codeForReset(this.#stream.rstCode)));
    } else {
      this.#finish(new ConnectError("the agent ended the call without a status", Code.Internal));
    }
  };

  readonly #onAbort = (): void => {
    this.cancel(new ConnectError("the call was cancelled", Code.Canceled));
  };

  /** cancel ends the call from this side: the stream is reset, so the peer learns of it at once. */
  protected cancel(error: ConnectError): void {
    if (this.over) return;
    this.#finish(error);
    if (!this.#stream.destroyed) this.#stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  protected override taken(_part: InferencePart, drained: boolean): void {
    if (!drained) return;
    this.#queuedBytes = 0;
    if (this.#paused) {
      this.#paused = false;
      this.#stream.resume();
    }
  }

  #finish(outcome: ConnectError | null): void {
    if (!this.settle(outcome)) return;
    this.#signal.removeEventListener("abort", this.#onAbort);
    this.#deadline?.cancel();
    this.wake();
  }
}

/**
 * codeForReset is the status of a call the agent reset without a status: the call never resets itself this way, so
 * only a refusal for overload is not a reason to count the agent unavailable.
 */
function codeForReset(rstCode: number): Code {
  return rstCode === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM ? Code.ResourceExhausted : Code.Unavailable;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
