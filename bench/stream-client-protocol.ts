/**
 * stream-client-protocol is the IPC contract between bench/mesh-bench.ts and bench/stream-client.ts, the streaming load
 * generator, which runs in a process of its own so that its CPU is neither the bench's nor the services'. The API key
 * travels only over this channel, never through argv, the environment or stdout.
 */

/** Target is one HTTP endpoint to stream from: the simulator directly, nginx, or the mesh's gateway. */
export interface Target {
  /** name labels the target in results: "direct", "nginx" or "mesh". */
  readonly name: string;
  /** url is the chat completions URL, "http://127.0.0.1:PORT/v1/chat/completions". */
  readonly url: string;
  /** apiKey goes out as a Bearer token (the simulator and nginx ignore it). */
  readonly apiKey: string;
}

/**
 * TtfbJob measures time to first byte: `requests` short streams one after another over one kept-alive connection,
 * after `warmup` unmeasured ones.
 */
export interface TtfbJob {
  readonly type: "ttfb";
  readonly target: Target;
  readonly model: string;
  readonly requests: number;
  readonly warmup: number;
}

/**
 * ChunksJob measures chunks per second: `streams` concurrent streams, each paced by the simulator at
 * `tokensPerSecond`, counted over `windowMs` once every stream has delivered its first event and `settleMs` passed.
 */
export interface ChunksJob {
  readonly type: "chunks";
  readonly target: Target;
  readonly model: string;
  readonly streams: number;
  readonly tokensPerSecond: number;
  readonly settleMs: number;
  readonly windowMs: number;
  /** openConcurrency bounds the streams being opened at once (waiting for their first event). */
  readonly openConcurrency: number;
  readonly openTimeoutMs: number;
}

/**
 * HoldJob opens `streams` slow streams and keeps them open: the child reports `opened`, counts events for `windowMs`,
 * reports `held`, and closes every stream only when the parent sends `close`.
 */
export interface HoldJob {
  readonly type: "hold";
  readonly target: Target;
  readonly model: string;
  readonly streams: number;
  readonly tokensPerSecond: number;
  readonly windowMs: number;
  readonly openConcurrency: number;
  readonly openTimeoutMs: number;
}

/** Job is what the parent asks the child to do. */
export type Job = TtfbJob | ChunksJob | HoldJob;

/** CloseMessage tells a holding child to close its streams, report `done` and exit. */
export interface CloseMessage {
  readonly type: "close";
}

/** ParentMessage is anything the parent sends. */
export type ParentMessage = { readonly type: "job"; readonly job: Job } | CloseMessage;

/** TtfbResult is the latency of each measured request, in milliseconds. */
export interface TtfbResult {
  readonly type: "ttfb";
  /** headersMs are the times to the response headers. */
  readonly headersMs: readonly number[];
  /** firstEventMs are the times to the first body byte (the first SSE event). */
  readonly firstEventMs: readonly number[];
  /** totalMs are the times to the end of each (short) stream. */
  readonly totalMs: readonly number[];
  readonly errors: Readonly<Record<string, number>>;
}

/** OpenSummary says how opening many streams went. */
export interface OpenSummary {
  readonly requested: number;
  /** opened counts streams whose first event arrived. */
  readonly opened: number;
  readonly openMs: number;
  readonly errors: Readonly<Record<string, number>>;
}

/** ChunksResult is the events counted in the window. */
export interface ChunksResult {
  readonly type: "chunks";
  readonly open: OpenSummary;
  readonly windowMs: number;
  readonly events: number;
  readonly eventsPerSecond: number;
  /** streamsEnded counts streams that ended (or failed) before the window closed. */
  readonly streamsEnded: number;
  /** clientCpu is this child's CPU seconds per wall second during the window. */
  readonly clientCpu: number;
}

/** OpenedMessage says a hold or chunks job has opened its streams (those it could) and starts counting. */
export interface OpenedMessage {
  readonly type: "opened";
  readonly open: OpenSummary;
}

/** HeldMessage reports the events counted in the window; a hold job then waits for `close`. */
export interface HeldMessage {
  readonly type: "held";
  readonly windowMs: number;
  readonly events: number;
  readonly eventsPerSecond: number;
  readonly streamsEnded: number;
  readonly clientCpu: number;
  readonly clientRssBytes: number;
}

/** DoneMessage carries a job's result (or says a hold job closed its streams). */
export interface DoneMessage {
  readonly type: "done";
  readonly result: TtfbResult | ChunksResult | { readonly type: "hold" };
}

/** FailedMessage reports a job that could not run. */
export interface FailedMessage {
  readonly type: "failed";
  readonly message: string;
}

/** ChildMessage is anything the child sends. */
export type ChildMessage = OpenedMessage | HeldMessage | DoneMessage | FailedMessage;

/** isChildMessage narrows an IPC message to a ChildMessage by its type; the parent trusts its own child's fields. */
export function isChildMessage(message: unknown): message is ChildMessage {
  if (typeof message !== "object" || message === null) return false;
  const type = (message as Record<string, unknown>)["type"];
  return type === "opened" || type === "held" || type === "done" || type === "failed";
}

/** isParentMessage narrows an IPC message to a ParentMessage by its type. */
export function isParentMessage(message: unknown): message is ParentMessage {
  if (typeof message !== "object" || message === null) return false;
  const type = (message as Record<string, unknown>)["type"];
  return (type === "job" && typeof (message as Record<string, unknown>)["job"] === "object") || type === "close";
}
