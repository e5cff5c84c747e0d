import * as http2 from "node:http2";
import * as net from "node:net";
import { isIP } from "node:net";
import type { Duplex } from "node:stream";
import * as tls from "node:tls";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { type InferenceCall, InferenceCallSchema, type InferencePartSchema } from "../../gen/infermesh/v1/inference_pb.js";
import { AttachRequestSchema, type AttachResponse, AttachResponseSchema, type CallRequest } from "../../gen/infermesh/v1/link_pb.js";
import type { HeartbeatRequestSchema, HeartbeatResponse } from "../../gen/infermesh/v1/registry_pb.js";
import { type Clock, every, type TimerHandle } from "../shared/clock.js";
import { grpcMessage, MessageReader, statusCode } from "../shared/grpc/wire.js";
import { FrameWriter } from "../shared/link/frame-writer.js";
import {
  ANSWER_PART_BYTES,
  ATTACH_PATH,
  INITIAL_CALL_CREDIT,
  PING_INTERVAL_MS,
  partBytes,
  SILENCE_LIMIT_MS,
} from "../shared/link/link-protocol.js";
import { SilenceWatch } from "../shared/link/silence-watch.js";
import type { Logger } from "../shared/logger.js";
import { tlsFailureHint } from "../shared/tls-files.js";
import type { AbortableCall } from "./call-tracker.js";
import type { InferResponseInit } from "./inference-parts.js";
import { reconnectDelayMs } from "./link-backoff.js";

/** DEFAULT_HEARTBEAT_INTERVAL_MS is the heartbeat interval until the registry names one. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 10_000;
/** The reconnect backoff: doubling from the first delay to the cap, each drawn with jitter so agents spread out. */
export const DEFAULT_INITIAL_RETRY_MS = 250;
export const DEFAULT_MAX_RETRY_MS = 3_000;
const MIN_INTERVAL_MS = 50;
const MAX_INTERVAL_MS = 10 * 60_000;
/** REFUSALS are the statuses that no retry can fix: a bad key, someone else's provider id, a report the mesh refuses. */
const REFUSALS = new Set<Code>([Code.Unauthenticated, Code.PermissionDenied, Code.InvalidArgument]);

/** HeartbeatReport is the heartbeat to send, built fresh for each. */
export type HeartbeatReport = MessageInitShape<typeof HeartbeatRequestSchema>;
type PartInit = MessageInitShape<typeof InferencePartSchema>;

/** ServeCall serves one call that came down the link: the answer as InferResponse messages, refusals as ConnectErrors. */
export type ServeCall = (call: InferenceCall, context: AbortableCall) => AsyncIterable<InferResponseInit>;

/** MeshLinkOptions configures an agent's link to the mesh. */
export interface MeshLinkOptions {
  /** meshUrl is the mesh's public base URL, as OpenAI clients use it: "https://mesh.example.org" (a "/v1" is dropped). */
  readonly meshUrl: string;
  readonly apiKey: string;
  /** ca replaces the trusted certificate authorities (see tls-files.ts); Node's defaults when undefined. */
  readonly ca?: readonly string[] | undefined;
  readonly clock: Clock;
  readonly log: Logger;
  readonly report: () => HeartbeatReport;
  readonly serve: ServeCall;
  readonly maxMessageBytes: number;
  readonly onHeartbeat?: (ok: boolean) => void;
  readonly initialRetryMs?: number;
  readonly maxRetryMs?: number;
  readonly random?: () => number;
}

/** LinkRefused is a link the mesh refused for good at start: a bad key, a provider id that is not the owner's, a TLS failure. */
export class LinkRefused extends Error {
  override readonly name = "LinkRefused";
}

/**
 * MeshLink is the agent's one connection to the mesh: it dials the gateway (through whatever proxy and TLS stand in
 * front of it), holds AgentLinkService.Attach open, heartbeats on it, and serves the calls that come down it, each
 * answer paced by the credit the gateway grants. When the link breaks it dials again with jittered backoff capped
 * near DEFAULT_MAX_RETRY_MS; the calls that were on it are aborted (the gateway has failed them already).
 */
export class MeshLink {
  readonly #options: MeshLinkOptions;
  readonly #target: { readonly origin: string; readonly path: string };
  #session: LinkSession | undefined;
  /** #retiring are links whose gateway is going away, finishing their calls while a new link serves. */
  readonly #retiring = new Set<LinkSession>();
  #failures = 0;
  #attachedOnce = false;
  #linkSequence = 0;
  #stopped = false;
  #retry: TimerHandle | undefined;
  #started: { resolve: () => void; reject: (error: Error) => void } | undefined;
  #providerId: string | undefined;
  #alive: NodeJS.Timeout | undefined;

  constructor(options: MeshLinkOptions) {
    this.#options = options;
    this.#target = attachTarget(options.meshUrl);
  }

  /** connected is true while a link is attached. */
  get connected(): boolean {
    return this.#session?.attached ?? false;
  }

  /** providerId is the id the registry knows this agent by, once attached. */
  get providerId(): string | undefined {
    return this.#providerId;
  }

  /**
   * start dials the mesh. It resolves once the first link is attached, or after a first attempt that failed for a
   * reason a retry may fix (the link keeps trying); it rejects with LinkRefused when the mesh refused the key or the
   * provider, or the TLS handshake failed, so that a misconfigured agent stops with one clear line.
   */
  start(): Promise<void> {
    // The link is what keeps an agent running: between two dials only its retry timer is pending, and the clock's
    // timers do not hold the process, so this handle does until close().
    this.#alive ??= setInterval(() => {}, 60_000);
    return new Promise((resolve, reject) => {
      this.#started = { resolve, reject };
      this.#dial();
    });
  }

  /** heartbeatNow reports a change at once; it resolves with whether the registry accepted it. */
  heartbeatNow(): Promise<boolean> {
    return this.#session?.heartbeat() ?? Promise.resolve(false);
  }

  /** close ends the link: the gateway takes the provider offline. Calls still running are aborted. */
  async close(): Promise<void> {
    this.#stopped = true;
    this.#retry?.cancel();
    clearInterval(this.#alive);
    await Promise.all([this.#session?.end(), ...[...this.#retiring].map((session) => session.end())]);
  }

  #dial(): void {
    if (this.#stopped) return;
    // Each link carries its number in its heartbeats: a stalled gateway that reads an old link's late cannot undo a newer one.
    this.#linkSequence++;
    const session = new LinkSession(this.#target, this.#options, this.#linkSequence, {
      attached: (response) => {
        if (response.provider) this.#providerId = response.provider.id;
        if (!this.#attachedOnce || this.#failures > 0) {
          this.#options.log.info({ mesh: this.#options.meshUrl, providerId: this.#providerId }, "attached to the mesh");
        }
        this.#attachedOnce = true;
        this.#failures = 0;
        this.#settleStart();
      },
      ended: (code, message, error) => this.#onEnded(session, code, message, error),
      retiring: () => {
        // The gateway is going away (GOAWAY): a new link takes over now, through the load balancer, while this one
        // finishes the calls it carries.
        if (this.#session !== session || this.#stopped) return;
        this.#options.log.info({ mesh: this.#options.meshUrl }, "the gateway is going away; dialling a new link");
        this.#session = undefined;
        this.#retiring.add(session);
        this.#dial();
      },
    });
    this.#session = session;
  }

  #onEnded(session: LinkSession, code: Code, message: string, error: unknown): void {
    if (this.#retiring.delete(session)) return;
    if (this.#session === session) this.#session = undefined;
    if (this.#stopped) return;
    this.#failures++;
    const hint = tlsFailureHint(error);
    const fields = { mesh: this.#options.meshUrl, code: Code[code], cause: hint ?? message };
    if (!this.#attachedOnce && (REFUSALS.has(code) || hint !== undefined)) {
      const why = hint ?? message;
      this.#stopped = true;
      clearInterval(this.#alive);
      this.#settleStart(new LinkRefused(`the mesh at ${this.#options.meshUrl} refused this agent: ${why}`));
      return;
    }
    const delayMs = this.#retryDelayMs();
    if (this.#failures === 1) this.#options.log.warn({ ...fields, retryInMs: delayMs }, "link to the mesh lost; dialling again");
    else this.#options.log.debug({ ...fields, retryInMs: delayMs }, "link to the mesh failed again");
    this.#settleStart();
    this.#retry = this.#options.clock.setTimer(() => this.#dial(), delayMs);
  }

  #settleStart(error?: Error): void {
    const started = this.#started;
    this.#started = undefined;
    if (!started) return;
    if (error) started.reject(error);
    else started.resolve();
  }

  #retryDelayMs(): number {
    const backoff = {
      initialMs: this.#options.initialRetryMs ?? DEFAULT_INITIAL_RETRY_MS,
      maxMs: this.#options.maxRetryMs ?? DEFAULT_MAX_RETRY_MS,
    };
    return reconnectDelayMs(this.#failures, backoff, this.#options.random ?? Math.random);
  }
}

/** attachTarget is where Attach goes for a mesh base URL: its origin, and its path prefix without a trailing "/v1". */
export function attachTarget(meshUrl: string): { origin: string; path: string } {
  const url = new URL(meshUrl);
  const prefix = url.pathname.replace(/\/+$/, "").replace(/\/v1$/, "");
  return { origin: url.origin, path: `${prefix}${ATTACH_PATH}` };
}

interface SessionEvents {
  attached(response: HeartbeatResponse): void;
  ended(code: Code, message: string, error: unknown): void;
  /** retiring: the gateway sent GOAWAY; this link takes no new calls from it once its calls are done. */
  retiring(): void;
}

interface RunningCall {
  readonly controller: AbortController;
  credit: number;
  onCredit: (() => void) | undefined;
}

/** LinkSession is one connection's life: dial, attach, serve, until either end closes it or it goes silent. */
class LinkSession {
  attached = false;
  readonly #options: MeshLinkOptions;
  readonly #events: SessionEvents;
  readonly #session: http2.ClientHttp2Session;
  readonly #stream: http2.ClientHttp2Stream;
  readonly #writer: FrameWriter;
  readonly #reader: MessageReader;
  readonly #ticker: TimerHandle;
  readonly #calls = new Map<number, RunningCall>();
  readonly #assembling = new Map<number, Buffer[]>();
  #heartbeatTimer: TimerHandle | undefined;
  #heartbeatWaiters: ((ok: boolean) => void)[] = [];
  #lastHeardMs: number;
  #status: { code: Code; message: string } | undefined;
  #error: unknown;
  #ended = false;
  #closed: Promise<void>;
  readonly #linkSequence: number;

  constructor(target: { origin: string; path: string }, options: MeshLinkOptions, linkSequence: number, events: SessionEvents) {
    this.#options = options;
    this.#linkSequence = linkSequence;
    this.#events = events;
    this.#reader = new MessageReader(options.maxMessageBytes);
    this.#lastHeardMs = options.clock.now();
    this.#session = http2.connect(target.origin, {
      settings: { initialWindowSize: 8 * 1024 * 1024 },
      createConnection: () => dial(new URL(target.origin), options.ca),
    });
    this.#session.on("error", (error) => {
      this.#error ??= error;
    });
    this.#session.on("connect", () => this.#session.setLocalWindowSize(32 * 1024 * 1024));
    this.#session.on("goaway", () => events.retiring());
    this.#stream = this.#session.request({
      ":method": "POST",
      ":path": target.path,
      "content-type": "application/grpc",
      te: "trailers",
      authorization: `Bearer ${options.apiKey}`,
    });
    this.#writer = new FrameWriter(this.#stream);
    this.#closed = new Promise((resolve) => this.#stream.on("close", resolve));
    this.#stream.on("response", this.#onHeaders);
    this.#stream.on("trailers", this.#onHeaders);
    this.#stream.on("data", this.#onData);
    this.#stream.on("error", (error) => {
      this.#error ??= error;
    });
    this.#stream.on("close", () => this.#end());
    // The mesh ended the link: this side ends too.
    this.#stream.on("end", () => this.#stream.close());
    const silence = new SilenceWatch(options.clock, () => this.#lastHeardMs);
    this.#ticker = every(options.clock, PING_INTERVAL_MS, () => {
      if (silence.exceeded()) {
        this.#status ??= { code: Code.Unavailable, message: `the mesh went silent for ${SILENCE_LIMIT_MS} ms` };
        this.#session.destroy();
      } else {
        this.#send({ case: "ping", value: {} });
      }
    });
    this.#sendHeartbeat();
  }

  heartbeat(): Promise<boolean> {
    if (this.#ended) return Promise.resolve(false);
    const outcome = new Promise<boolean>((resolve) => this.#heartbeatWaiters.push(resolve));
    this.#sendHeartbeat();
    return outcome;
  }

  /** end closes the link from this side and waits until it is closed. */
  async end(): Promise<void> {
    // What the calls sent last (their trailers) goes out before the end of the stream.
    if (!this.#ended && !this.#stream.destroyed) this.#writer.end();
    const timer = this.#options.clock.setTimer(() => this.#session.destroy(), 2_000);
    await this.#closed;
    timer.cancel();
    this.#session.destroy();
  }

  #sendHeartbeat(): void {
    this.#heartbeatTimer?.cancel();
    this.#send({ case: "heartbeat", value: { ...this.#options.report(), linkSequence: this.#linkSequence } });
  }

  readonly #onHeaders = (headers: http2.IncomingHttpHeaders): void => {
    const status = headers["grpc-status"];
    const httpStatus = Number(headers[":status"] ?? 200);
    if (status !== undefined) this.#status = { code: statusCode(status) as Code, message: grpcMessage(headers["grpc-message"]) };
    else if (httpStatus !== 200) {
      this.#status = { code: Code.Unavailable, message: `the mesh answered HTTP ${httpStatus} (is this the gateway's address?)` };
    }
  };

  readonly #onData = (chunk: Buffer): void => {
    this.#lastHeardMs = this.#options.clock.now();
    try {
      this.#reader.push(chunk, this.#onMessage);
    } catch (error) {
      this.#status = { code: Code.Internal, message: `the mesh sent a malformed frame: ${(error as Error).message}` };
      this.#session.destroy();
    }
  };

  readonly #onMessage = (message: Buffer): void => {
    const frame: AttachResponse["frame"] = fromBinary(AttachResponseSchema, message).frame;
    switch (frame.case) {
      case "call":
        this.#onCall(frame.value);
        return;
      case "cancel":
        // A call cancelled while its pieces were still on their way is forgotten, pieces and all.
        this.#assembling.delete(frame.value.callId);
        this.#calls.get(frame.value.callId)?.controller.abort(new CallCancelled("the mesh cancelled the call"));
        return;
      case "credit": {
        const running = this.#calls.get(frame.value.callId);
        if (!running) return;
        running.credit += frame.value.bytes;
        running.onCredit?.();
        return;
      }
      case "heartbeat": {
        const { response, code, message: why } = frame.value;
        const ok = response !== undefined && code === 0;
        if (ok) {
          this.attached = true;
          this.#events.attached(response);
          const intervalMs = response.heartbeatInterval ? durationMs(response.heartbeatInterval) : DEFAULT_HEARTBEAT_INTERVAL_MS;
          this.#heartbeatTimer?.cancel();
          this.#heartbeatTimer = this.#options.clock.setTimer(
            () => this.#sendHeartbeat(),
            clamp(intervalMs, MIN_INTERVAL_MS, MAX_INTERVAL_MS),
          );
        } else {
          this.#options.log.warn({ code: Code[code], cause: why }, "the registry refused a heartbeat");
          this.#heartbeatTimer?.cancel();
          this.#heartbeatTimer = this.#options.clock.setTimer(() => this.#sendHeartbeat(), DEFAULT_MAX_RETRY_MS);
        }
        this.#options.onHeartbeat?.(ok);
        const waiters = this.#heartbeatWaiters;
        this.#heartbeatWaiters = [];
        for (const resolve of waiters) resolve(ok);
        return;
      }
      default:
        return;
    }
  };

  #onCall(piece: CallRequest): void {
    const chunks = this.#assembling.get(piece.callId);
    if (!piece.last) {
      if (chunks) chunks.push(Buffer.from(piece.chunk));
      else this.#assembling.set(piece.callId, [Buffer.from(piece.chunk)]);
      return;
    }
    this.#assembling.delete(piece.callId);
    const bytes = chunks ? Buffer.concat([...chunks, piece.chunk]) : piece.chunk;
    let call: InferenceCall;
    try {
      call = fromBinary(InferenceCallSchema, bytes);
    } catch (error) {
      this.#answer(piece.callId, [], { code: Code.InvalidArgument, message: `malformed call: ${(error as Error).message}` });
      return;
    }
    const running: RunningCall = { controller: new AbortController(), credit: INITIAL_CALL_CREDIT, onCredit: undefined };
    this.#calls.set(piece.callId, running);
    void this.#run(piece.callId, call, running);
  }

  async #run(callId: number, call: InferenceCall, running: RunningCall): Promise<void> {
    const { controller } = running;
    const context: AbortableCall = {
      signal: controller.signal,
      abort: (reason) => {
        if (!controller.signal.aborted) controller.abort(reason);
      },
    };
    let end = { code: 0, message: "" };
    try {
      for await (const message of this.#options.serve(call, context)) {
        const parts = message.part ? [message.part] : (message.parts ?? []);
        for (const batch of linkSized(parts)) {
          // A call the gateway cancelled, or a link that is gone, has no reader; the agent's own reasons to stop (a
          // deadline, a shutdown) still yield their last part, which the gateway is waiting for.
          if (controller.signal.reason instanceof CallCancelled || this.#ended) break;
          this.#answer(callId, batch, undefined);
          running.credit -= batch.reduce((sum, part) => sum + partBytes(part as Parameters<typeof partBytes>[0]), 0);
          if (running.credit <= 0) await creditOrAbort(running);
          const ready = this.#writer.ready();
          if (ready) await ready;
        }
      }
    } catch (error) {
      const refusal = ConnectError.from(error);
      end = { code: refusal.code, message: refusal.rawMessage };
    } finally {
      this.#calls.delete(callId);
    }
    if (!(controller.signal.reason instanceof CallCancelled)) this.#answer(callId, [], end);
  }

  #answer(callId: number, parts: PartInit[], end: { code: number; message: string } | undefined): void {
    this.#send({ case: "answer", value: end ? { callId, parts, end } : { callId, parts } });
  }

  #send(frame: NonNullable<MessageInitShape<typeof AttachRequestSchema>["frame"]>): void {
    if (this.#ended) return;
    this.#writer.send(
      toBinary(AttachRequestSchema, create(AttachRequestSchema, { frame } as MessageInitShape<typeof AttachRequestSchema>)),
    );
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#ticker.cancel();
    this.#heartbeatTimer?.cancel();
    this.#writer.close();
    for (const running of this.#calls.values()) running.controller.abort(new ConnectError("the link to the mesh closed", Code.Unavailable));
    this.#calls.clear();
    for (const resolve of this.#heartbeatWaiters) resolve(false);
    this.#heartbeatWaiters = [];
    // The stream is over, and a session that lingers would keep the process alive.
    if (!this.#session.destroyed) this.#session.destroy();
    const status = this.#status ?? errorStatus(this.#error);
    this.#events.ended(status.code, status.message, this.#error);
  }
}

/**
 * dial opens the link's TCP (or TLS, offering only h2) connection with Nagle's algorithm off: calls and their answers
 * are small frames that must not wait for the acknowledgement of the last ones.
 */
function dial(url: URL, ca: readonly string[] | undefined): Duplex {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const secure = url.protocol === "https:";
  const socket = net.connect({ host, port: Number(url.port || (secure ? 443 : 80)), noDelay: true });
  if (!secure) return socket;
  return tls.connect({
    socket,
    // host is what the certificate must name (an IP address is checked against its IP entries).
    host,
    ALPNProtocols: ["h2"],
    ...(isIP(host) ? {} : { servername: host }),
    ...(ca ? { ca: [...ca] } : {}),
  });
}

/** CallCancelled is the abort reason of a call the gateway cancelled: its answer is no longer sent. */
class CallCancelled extends Error {
  override readonly name = "CallCancelled";
}

/**
 * linkSized cuts an answer's parts into the batches of its frames: a data part larger than ANSWER_PART_BYTES is split,
 * so that no frame holds the link for long, and parts that need no split go as they came, in one frame.
 */
function linkSized(parts: PartInit[]): PartInit[][] {
  if (!parts.some(largeData)) return parts.length === 0 ? [] : [parts];
  const batches: PartInit[][] = [];
  let batch: PartInit[] = [];
  for (const part of parts) {
    const data = largeData(part);
    if (!data) {
      batch.push(part);
      continue;
    }
    if (batch.length > 0) batches.push(batch);
    batch = [];
    for (let at = 0; at < data.byteLength; at += ANSWER_PART_BYTES) {
      batches.push([{ part: { case: "data", value: data.subarray(at, at + ANSWER_PART_BYTES) } }]);
    }
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/** largeData is a data part's bytes when they are more than one frame should carry. */
function largeData({ part }: PartInit): Uint8Array | undefined {
  return part?.case === "data" && part.value && part.value.byteLength > ANSWER_PART_BYTES ? part.value : undefined;
}

function creditOrAbort(running: RunningCall): Promise<void> {
  return new Promise((resolve) => {
    const { signal } = running.controller;
    const done = () => {
      running.onCredit = undefined;
      signal.removeEventListener("abort", done);
      resolve();
    };
    if (signal.aborted) return resolve();
    running.onCredit = () => {
      if (running.credit > 0) done();
    };
    signal.addEventListener("abort", done);
  });
}

function errorStatus(error: unknown): { code: Code; message: string } {
  if (error === undefined) return { code: Code.Unavailable, message: "the link closed" };
  return { code: Code.Unavailable, message: error instanceof Error ? error.message : String(error) };
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
