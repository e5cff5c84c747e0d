/**
 * stream-client is the streaming load generator of bench/mesh-bench.ts, in a process of its own (forked, driven over
 * IPC, see stream-client-protocol.ts) so that its CPU is measured apart from the bench's and the services'. It speaks
 * plain node:http, one connection per stream, and counts server-sent events by their closing blank line without
 * parsing them, so that counting costs far less than producing or relaying them. It is not meant to be run by hand.
 */
import { Agent, type ClientRequest, type IncomingMessage, request } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type ChildMessage,
  type ChunksJob,
  type ChunksResult,
  type HoldJob,
  isParentMessage,
  type Job,
  type OpenSummary,
  type Target,
  type TtfbJob,
  type TtfbResult,
} from "./stream-client-protocol.js";

/**
 * LONG_STREAM_TOKENS is max_tokens of streams meant to outlast their window: under the gateway's default max_tokens
 * ceiling (8192), which would otherwise re-serialise every body to clamp it.
 */
const LONG_STREAM_TOKENS = 8_000;
/** TTFB_STREAM_TOKENS is max_tokens of the short streams whose first byte is timed. */
const TTFB_STREAM_TOKENS = 2;
/** TTFB_REQUEST_TIMEOUT_MS bounds one short stream. */
const TTFB_REQUEST_TIMEOUT_MS = 10_000;
const LF = 0x0a;

/** send posts a message to the parent and resolves once it is handed to the channel, so an exit cannot lose it. */
function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined || !process.connected) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}

/** chatBody is an OpenAI streaming chat request; `sim` paces it (real servers ignore the field). */
function chatBody(model: string, maxTokens: number, tokensPerSecond: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      model,
      messages: [{ role: "user", content: "Say something." }],
      max_tokens: maxTokens,
      stream: true,
      sim: { tokens_per_second: tokensPerSecond, ttft_ms: 0 },
    }),
  );
}

function post(target: Target, body: Buffer, agent: Agent): ClientRequest {
  const url = new URL(target.url);
  return request({
    host: url.hostname,
    port: url.port,
    path: url.pathname,
    method: "POST",
    agent,
    headers: {
      "content-type": "application/json",
      "content-length": body.length,
      authorization: `Bearer ${target.apiKey}`,
    },
  });
}

/** MAX_REASON_CHARS bounds the error message quoted from an error answer. */
const MAX_REASON_CHARS = 120;

/** errorReason reads an error answer and names it by status and OpenAI error message, so failures can be told apart. */
async function errorReason(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) chunks.push(chunk);
  } catch {
    // The status alone will do.
  }
  const text = Buffer.concat(chunks).toString("utf8");
  let message = text;
  try {
    const json = JSON.parse(text) as { error?: { message?: unknown } };
    if (typeof json.error?.message === "string") message = json.error.message;
  } catch {
    // Not JSON: quote the text.
  }
  message = message.replace(/\s+/g, " ").trim().slice(0, MAX_REASON_CHARS);
  return `HTTP ${res.statusCode}${message ? `: ${message}` : ""}`;
}

function tally(errors: Map<string, number>, reason: string): void {
  errors.set(reason, (errors.get(reason) ?? 0) + 1);
}

function describe(error: unknown): string {
  if (error instanceof Error) return (error as NodeJS.ErrnoException).code ?? error.message;
  return String(error);
}

// ---------------------------------------------------------------------------------------------------------------
// Time to first byte

async function measureTtfb(job: TtfbJob): Promise<TtfbResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const body = chatBody(job.model, TTFB_STREAM_TOKENS, 0);
  const headersMs: number[] = [];
  const firstEventMs: number[] = [];
  const totalMs: number[] = [];
  const errors = new Map<string, number>();
  try {
    for (let i = 0; i < job.warmup + job.requests; i++) {
      const timing = await timedStream(job.target, body, agent).catch((error: unknown) => {
        tally(errors, describe(error));
        return undefined;
      });
      if (timing === undefined || i < job.warmup) continue;
      headersMs.push(timing.headersMs);
      firstEventMs.push(timing.firstByteMs);
      totalMs.push(timing.totalMs);
    }
  } finally {
    agent.destroy();
  }
  return { type: "ttfb", headersMs, firstEventMs, totalMs, errors: Object.fromEntries(errors) };
}

function timedStream(target: Target, body: Buffer, agent: Agent): Promise<{ headersMs: number; firstByteMs: number; totalMs: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let headersMs = 0;
    let firstByteMs = 0;
    const req = post(target, body, agent);
    req.setTimeout(TTFB_REQUEST_TIMEOUT_MS, () => req.destroy(new Error("timeout")));
    req.once("error", reject);
    req.once("response", (res: IncomingMessage) => {
      headersMs = performance.now() - started;
      if (res.statusCode !== 200) {
        void errorReason(res).then((reason) => reject(new Error(reason)));
        return;
      }
      res.on("data", () => {
        if (firstByteMs === 0) firstByteMs = performance.now() - started;
      });
      res.once("end", () => resolve({ headersMs, firstByteMs, totalMs: performance.now() - started }));
      res.once("error", reject);
    });
    req.end(body);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Many concurrent streams

/** StreamSet is many open streams and the events they delivered, all counted together. */
class StreamSet {
  events = 0;
  ended = 0;
  readonly #requests = new Set<ClientRequest>();
  readonly #agent = new Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });

  /**
   * open starts `count` streams, at most `concurrency` of them waiting for their first event at a time, and resolves
   * once each has delivered its first event or failed, or the timeout passed.
   */
  async open(job: ChunksJob | HoldJob): Promise<OpenSummary> {
    const body = chatBody(job.model, LONG_STREAM_TOKENS, job.tokensPerSecond);
    const errors = new Map<string, number>();
    const started = performance.now();
    const deadline = started + job.openTimeoutMs;
    let next = 0;
    let opened = 0;
    const worker = async () => {
      while (next < job.streams) {
        next++;
        const remaining = deadline - performance.now();
        if (remaining <= 0) {
          tally(errors, "open timeout");
          continue;
        }
        const outcome = await this.#openOne(job.target, body, remaining);
        if (outcome === "ok") opened++;
        else tally(errors, outcome);
      }
    };
    await Promise.all(Array.from({ length: Math.min(job.openConcurrency, job.streams) }, worker));
    return { requested: job.streams, opened, openMs: Math.round(performance.now() - started), errors: Object.fromEntries(errors) };
  }

  /** openOne resolves "ok" on the stream's first event, or the reason it failed to get there. */
  #openOne(target: Target, body: Buffer, timeoutMs: number): Promise<string> {
    return new Promise((resolve) => {
      let settled = false;
      const settle = (outcome: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(outcome);
      };
      const timer = setTimeout(() => settle("open timeout"), timeoutMs);
      const req = post(target, body, this.#agent);
      this.#requests.add(req);
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        this.ended++;
        this.#requests.delete(req);
      };
      req.once("error", (error) => {
        end();
        settle(describe(error));
      });
      req.once("close", end);
      req.once("response", (res: IncomingMessage) => {
        if (res.statusCode !== 200) {
          void errorReason(res).then(settle);
          return;
        }
        let lastWasLf = false;
        res.on("data", (chunk: Buffer) => {
          let events = 0;
          for (let i = chunk.indexOf(LF); i !== -1; i = chunk.indexOf(LF, i + 1)) {
            if (i === 0 ? lastWasLf : chunk[i - 1] === LF) events++;
          }
          lastWasLf = chunk[chunk.length - 1] === LF;
          this.events += events;
          if (events > 0) settle("ok");
        });
        res.once("end", () => settle("ended before its first event"));
        res.once("error", (error) => settle(describe(error)));
      });
      req.end(body);
    });
  }

  /** closeAll cuts every stream still open; the services see clients that went away. */
  closeAll(): void {
    for (const req of this.#requests) req.destroy();
    this.#requests.clear();
    this.#agent.destroy();
  }
}

/** Window counts what a StreamSet delivers over a stretch of time, and this process's CPU meanwhile. */
async function countWindow(streams: StreamSet, windowMs: number) {
  const cpuFrom = process.cpuUsage();
  const eventsFrom = streams.events;
  const endedFrom = streams.ended;
  const started = performance.now();
  await sleep(windowMs);
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuFrom);
  const events = streams.events - eventsFrom;
  return {
    windowMs: Math.round(elapsedMs),
    events,
    eventsPerSecond: Math.round((events * 1000) / elapsedMs),
    streamsEnded: streams.ended - endedFrom,
    clientCpu: Math.round(((cpu.user + cpu.system) / (elapsedMs * 1000)) * 1000) / 1000,
  };
}

async function measureChunks(job: ChunksJob): Promise<ChunksResult> {
  const streams = new StreamSet();
  try {
    const open = await streams.open(job);
    await sleep(job.settleMs);
    // The parent samples the services' CPU at these two messages, so it can divide their CPU by the events counted.
    await send({ type: "opened", open });
    const window = await countWindow(streams, job.windowMs);
    await send({ type: "held", ...window, clientRssBytes: process.memoryUsage().rss });
    return { type: "chunks", open, ...window };
  } finally {
    streams.closeAll();
  }
}

async function hold(job: HoldJob): Promise<void> {
  const streams = new StreamSet();
  const closed = new Promise<void>((resolveClosed) => {
    process.on("message", (message: unknown) => {
      if (isParentMessage(message) && message.type === "close") resolveClosed();
    });
  });
  try {
    const open = await streams.open(job);
    await send({ type: "opened", open });
    const window = await countWindow(streams, job.windowMs);
    await send({ type: "held", ...window, clientRssBytes: process.memoryUsage().rss });
    await closed;
  } finally {
    streams.closeAll();
  }
  await send({ type: "done", result: { type: "hold" } });
}

// ---------------------------------------------------------------------------------------------------------------
// Main

async function run(job: Job): Promise<void> {
  switch (job.type) {
    case "ttfb":
      return send({ type: "done", result: await measureTtfb(job) });
    case "chunks":
      return send({ type: "done", result: await measureChunks(job) });
    case "hold":
      return hold(job);
  }
}

if (process.send === undefined) {
  process.stderr.write("stream-client: run me through bench/mesh-bench.ts, which talks to me over IPC\n");
  process.exit(2);
}

process.once("message", (message: unknown) => {
  if (!isParentMessage(message) || message.type !== "job") {
    void send({ type: "failed", message: "expected a job" }).then(() => process.exit(1));
    return;
  }
  run(message.job).then(
    // Exit explicitly once the result is out: sockets being torn down must not hold the bench up.
    () => process.exit(0),
    (error: unknown) =>
      void send({ type: "failed", message: error instanceof Error ? error.message : String(error) }).then(() => process.exit(1)),
  );
});
// A parent that died must not leave thousands of streams open.
process.on("disconnect", () => process.exit(0));
