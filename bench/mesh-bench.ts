/**
 * mesh-bench measures what the mesh adds, against nginx (the best-in-class reverse proxy) and against no proxy at all,
 * all three in front of the same llama-server simulator in the same run. Every service runs in a process of its own
 * (bench/mesh-processes.ts), so CPU and resident memory are read per process from /proc. The services are the real
 * `infermesh` commands, compiled from the working tree with tsc into a temp dir first (--tsx runs the sources
 * instead), and the registry, gateway and agent run with their defaults except that per-key rate limits are off and
 * the agent may hold 10,000 calls (a real llama-server would have few slots; the simulator has no limit):
 *
 *   direct  client -> simulator
 *   nginx   client -> nginx (keep-alive upstream, unbuffered) -> simulator
 *   mesh    client -> gateway (HTTP) -> agent's link (one gRPC stream it dialled) -> agent -> HTTP (undici) -> simulator
 *           (+ registry, off the path)
 *
 * Phases, each bounded in time:
 * 1. chat: non-streamed chat completions (16 tokens, no pacing) with wrk at 1, 16 and 64 connections, closed loop:
 *    p50, p99, requests/s, and the CPU each service spent per request;
 * 2. ttfb: time to first byte of short streams, one after another over a kept-alive connection (Node client);
 * 3. chunks: 100 and 1,000 concurrent streams paced by the simulator so that together they offer --stream-rate
 *    chunks/s, the SSE events delivered per second over a window once all are flowing (Node client, which counts
 *    events by their blank line without parsing them and reports its own CPU, to show it is not the limit);
 * 4. hold: 10,000 concurrent slow streams (1 token/s each) through the mesh: resident memory (VmRSS) of the gateway
 *    and the agent;
 * 5. registry: bench/registry-bench.ts for 10,000 agents (heartbeats/s, CPU at one heartbeat per agent per 10 s,
 *    watch propagation p50/p99), after the mesh has stopped.
 *
 * It prints one table (bench/mesh-report.ts) and writes every figure to bench/results/mesh-<timestamp>.json. The
 * machine may be shared: for every wrk run the bench reports the cores that processes other than the services and wrk
 * kept busy ("other cpu"), and each service's CPU time per request or chunk, which other load moves far less than
 * requests/s; compare ratios measured in the same run rather than absolute figures across runs. It is a benchmark,
 * not a test: nothing is asserted, but the table says which of the project's performance targets the run met.
 * Loopback only; the API key and mesh token are random per run and never printed; every child and the temp dir are
 * removed on exit, error or Ctrl-C.
 *
 * Needs: Linux (/proc), nginx and wrk on PATH (apt-get install -y nginx wrk), prlimit (util-linux) when the open-file
 * limit is below what the hold phase needs.
 *
 * Run:    npm run bench
 *         npm run bench -- --quick                      (about 1.5 minutes: shorter runs, 2,000 held streams)
 *         npm run bench -- --only chat,ttfb --seconds 3
 *         npm run bench -- --profile /tmp/prof          (CPU profiles of gateway and agent at 64 connections)
 *         npx tsx bench/cpu-profile-summary.ts /tmp/prof/gateway.cpuprofile
 * Flags:  see --help.
 */
import { spawn } from "node:child_process";
import { constants, rmSync } from "node:fs";
import { access, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { machine, writeBenchReport } from "./bench-report.js";
import { type CliCommand, compileCli, SOURCE_CLI } from "./cli-command.js";
import { formatProfileSummary, type ProfileSummary, summarizeCpuProfile } from "./cpu-profile-summary.js";
import { type Percentiles, percentiles } from "./latency-percentiles.js";
import { type MeshProcesses, type ServiceProcess, startMeshProcesses } from "./mesh-processes.js";
import { buildRows, describeErrors, errorCount, fixed, formatTable, notes } from "./mesh-report.js";
import {
  type ChatRun,
  type ChunksRun,
  type CpuWindow,
  type HoldRun,
  type MeshResults,
  megabytes,
  type RegistryFigures,
  round,
  TARGET_NAMES,
  type TargetName,
  type TtfbRun,
} from "./mesh-results.js";
import { machineBusyMs, openFileLimit, type ProcessSample } from "./process-stats.js";
import { killStreamClients, runStreamJob } from "./stream-client-process.js";
import type { ChunksResult, OpenSummary, Target, TtfbResult } from "./stream-client-protocol.js";
import { runWrk, writeWrkScript } from "./wrk-run.js";

/** PHASES are the bench's phases, in the order they run. */
const PHASES = ["chat", "ttfb", "chunks", "hold", "registry"] as const;
type Phase = (typeof PHASES)[number];

const DEFAULT_CONNECTIONS: readonly number[] = [1, 16, 64];
const DEFAULT_SECONDS = 5;
/**
 * DEFAULT_WARMUP_SECONDS is the mesh's unmeasured warm-up at 64 connections: V8 needs some 10,000 requests before the
 * mesh's long path (Fastify, grpc-js, protobuf-es, undici) is optimised, and until then the mesh costs two to three
 * times the CPU per request. direct and nginx (native, or the simulator alone) get at most DIRECT_WARMUP_SECONDS.
 */
const DEFAULT_WARMUP_SECONDS = 10;
/** DIRECT_WARMUP_SECONDS caps the warm-up of direct and nginx. */
const DIRECT_WARMUP_SECONDS = 2;
/** WARMUP_CONNECTIONS is the warm-up's concurrency, the busiest measured level. */
const WARMUP_CONNECTIONS = 64;
/** DEFAULT_COMPLETION_TOKENS keeps non-streamed answers tiny (about 0.9 kB), so the proxies, not bytes, are measured. */
const DEFAULT_COMPLETION_TOKENS = 16;
const DEFAULT_TTFB_REQUESTS = 300;
const DEFAULT_STREAMS: readonly number[] = [100, 1_000];
/**
 * DEFAULT_STREAM_RATE is the chunks per second the concurrent streams offer together (each stream is paced at
 * rate / streams tokens/s): below what the stream client can count (it reports its CPU) and what the simulator can
 * produce on this machine with a proxy beside it, above what a saturated mesh delivers. See the report's notes.
 */
const DEFAULT_STREAM_RATE = 20_000;
const DEFAULT_WINDOW_SECONDS = 5;
const DEFAULT_HOLD_STREAMS = 10_000;
const DEFAULT_HOLD_SECONDS = 5;
/** HOLD_TOKENS_PER_SECOND paces each held stream: slow streams, as a model generating for a long time. */
const HOLD_TOKENS_PER_SECOND = 1;
const DEFAULT_REGISTRY_AGENTS = 10_000;
const DEFAULT_REGISTRY_SECONDS = 4;
/** DEFAULT_NGINX_WORKERS matches nginx to the gateway, one process each. */
const DEFAULT_NGINX_WORKERS = 1;
const DEFAULT_WRK_THREADS = 1;
const DEFAULT_OUT_DIR = fileURLToPath(new URL("./results/", import.meta.url));

/** OPEN_CONCURRENCY bounds the streams being opened at once, under the services' listen backlog (511 in Node). */
const OPEN_CONCURRENCY = 256;
/**
 * TTFB_WARMUP_REQUESTS are unmeasured streams before the timed ones, for V8 to optimise the streaming path: as with
 * non-streamed requests, it takes a few thousand before the mesh's figures settle (200 left them 1 ms higher).
 */
const TTFB_WARMUP_REQUESTS = 2_000;
/** HOLD_OPEN_TIMEOUT_MS bounds opening the held streams; those not open by then count as failed. */
const HOLD_OPEN_TIMEOUT_MS = 150_000;
/** STREAM_SETTLE_MS lets every stream reach its pace before the counting window opens. */
const STREAM_SETTLE_MS = 1_000;
/** FILE_MARGIN is the descriptors a service needs besides one per held stream. */
const FILE_MARGIN = 1_024;
/** WRK_TIMEOUT_SECONDS counts an answer slower than this as a timeout. */
const WRK_TIMEOUT_SECONDS = 10;
/** QUIET_MS separates runs, so that one run's tail does not fall into the next. */
const QUIET_MS = 500;
const APT_LINE = "apt-get update && apt-get install -y nginx wrk";

/** BenchOptions are the parsed flags, frozen. */
interface BenchOptions {
  readonly phases: readonly Phase[];
  readonly connections: readonly number[];
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly wrkThreads: number;
  readonly completionTokens: number;
  readonly ttfbRequests: number;
  readonly streams: readonly number[];
  readonly streamRate: number;
  readonly windowSeconds: number;
  readonly holdStreams: number;
  readonly holdSeconds: number;
  readonly registryAgents: number;
  readonly registrySeconds: number;
  readonly nginxWorkers: number;
  /** tsx runs the services from their TypeScript sources instead of compiling them first. */
  readonly tsx: boolean;
  readonly profileDir: string | undefined;
  readonly outDir: string;
}

const USAGE = `usage: npm run bench -- [flags]      (or: npx tsx bench/mesh-bench.ts [flags])
  --only LIST              phases to run, of ${PHASES.join(",")} (default all)
  --connections LIST       wrk connections of the chat phase (default ${DEFAULT_CONNECTIONS.join(",")})
  --seconds S              seconds of each wrk run (default ${DEFAULT_SECONDS})
  --warmup-seconds S       unmeasured wrk run of the mesh first, for V8 to optimise it (default ${DEFAULT_WARMUP_SECONDS};
                           direct and nginx get at most ${DIRECT_WARMUP_SECONDS})
  --wrk-threads N          wrk threads (default ${DEFAULT_WRK_THREADS}; the services need the other core)
  --completion-tokens N    tokens of each non-streamed answer (default ${DEFAULT_COMPLETION_TOKENS})
  --ttfb-requests N        sequential streams timed per target (default ${DEFAULT_TTFB_REQUESTS})
  --streams LIST           concurrent streams of the chunks phase (default ${DEFAULT_STREAMS.join(",")})
  --stream-rate N          chunks/s the streams offer together (default ${DEFAULT_STREAM_RATE})
  --window-seconds S       chunks counting window (default ${DEFAULT_WINDOW_SECONDS})
  --hold-streams N         slow streams held open through the mesh (default ${DEFAULT_HOLD_STREAMS})
  --hold-seconds S         how long they are held once open (default ${DEFAULT_HOLD_SECONDS})
  --registry-agents N      simulated agents of the registry phase (default ${DEFAULT_REGISTRY_AGENTS})
  --registry-seconds S     seconds of its max and paced phases (default ${DEFAULT_REGISTRY_SECONDS})
  --nginx-workers N        nginx worker processes (default ${DEFAULT_NGINX_WORKERS}, like the one gateway process)
  --tsx                    run the services from their sources through tsx (default: compile the working tree
                           with tsc into the temp dir first, about 10 s, and run plain node, as production does)
  --quick                  shorter: 2 s runs, 5 s warm-up, 100 TTFB requests, 2,000 held streams, 2 s windows
  --profile DIR            instead of the phases: CPU-profile gateway and agent under the mesh's 64-connection
                           chat load (--seconds), or with --only chunks under its first --streams, write the
                           .cpuprofile files to DIR and print the top costs
  --out DIR                results folder (default bench/results)`;

/** parseOptions reads the flags once; a bad value stops the bench with a message naming the flag and its unit. */
function parseOptions(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      only: { type: "string" },
      connections: { type: "string" },
      seconds: { type: "string" },
      "warmup-seconds": { type: "string" },
      "wrk-threads": { type: "string" },
      "completion-tokens": { type: "string" },
      "ttfb-requests": { type: "string" },
      streams: { type: "string" },
      "stream-rate": { type: "string" },
      "window-seconds": { type: "string" },
      "hold-streams": { type: "string" },
      "hold-seconds": { type: "string" },
      "registry-agents": { type: "string" },
      "registry-seconds": { type: "string" },
      "nginx-workers": { type: "string" },
      quick: { type: "boolean" },
      tsx: { type: "boolean" },
      profile: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const quick = values.quick === true;
  const phases =
    values.only === undefined
      ? PHASES
      : values.only.split(",").map((name) => {
          const phase = PHASES.find((p) => p === name.trim());
          if (phase === undefined) throw new Error(`--only: expected phases among ${PHASES.join(",")}, got "${name}"`);
          return phase;
        });
  const list = (flag: string, unit: string, text: string | undefined, fallback: readonly number[]) =>
    text === undefined ? fallback : text.split(",").map((part) => wholeNumber(flag, unit, part.trim(), 1));
  const whole = (flag: string, unit: string, text: string | undefined, fallback: number, min = 1) =>
    text === undefined ? fallback : wholeNumber(flag, unit, text, min);
  const seconds = (flag: string, text: string | undefined, fallback: number, min: number) =>
    text === undefined ? fallback : positiveNumber(flag, text, min);
  return Object.freeze({
    phases: Object.freeze(phases),
    connections: Object.freeze(list("--connections", "connections", values.connections, DEFAULT_CONNECTIONS)),
    seconds: seconds("--seconds", values.seconds, quick ? 2 : DEFAULT_SECONDS, 1),
    warmupSeconds: seconds("--warmup-seconds", values["warmup-seconds"], quick ? 5 : DEFAULT_WARMUP_SECONDS, 0),
    wrkThreads: whole("--wrk-threads", "threads", values["wrk-threads"], DEFAULT_WRK_THREADS),
    completionTokens: whole("--completion-tokens", "tokens", values["completion-tokens"], DEFAULT_COMPLETION_TOKENS),
    ttfbRequests: whole("--ttfb-requests", "requests", values["ttfb-requests"], quick ? 100 : DEFAULT_TTFB_REQUESTS),
    streams: Object.freeze(list("--streams", "streams", values.streams, DEFAULT_STREAMS)),
    streamRate: whole("--stream-rate", "chunks per second", values["stream-rate"], DEFAULT_STREAM_RATE),
    windowSeconds: seconds("--window-seconds", values["window-seconds"], quick ? 2 : DEFAULT_WINDOW_SECONDS, 0.5),
    holdStreams: whole("--hold-streams", "streams", values["hold-streams"], quick ? 2_000 : DEFAULT_HOLD_STREAMS),
    holdSeconds: seconds("--hold-seconds", values["hold-seconds"], quick ? 2 : DEFAULT_HOLD_SECONDS, 0.5),
    registryAgents: whole("--registry-agents", "agents", values["registry-agents"], quick ? 1_000 : DEFAULT_REGISTRY_AGENTS, 10),
    registrySeconds: seconds("--registry-seconds", values["registry-seconds"], quick ? 2 : DEFAULT_REGISTRY_SECONDS, 0.5),
    nginxWorkers: whole("--nginx-workers", "workers", values["nginx-workers"], DEFAULT_NGINX_WORKERS),
    tsx: values.tsx === true,
    profileDir: values.profile === undefined ? undefined : resolve(values.profile),
    outDir: resolve(values.out ?? DEFAULT_OUT_DIR),
  });
}

function wholeNumber(flag: string, unit: string, text: string, min: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < min) {
    throw new Error(`${flag}: expected a whole number of ${unit} (${min} or more), got "${text}"`);
  }
  return value;
}

function positiveNumber(flag: string, text: string, min: number): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || value < min) {
    throw new Error(`${flag}: expected a number of seconds (${min} or more), got "${text}"`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------------------
// Prerequisites

/** SBIN_DIRS hold nginx on Debian, and are often missing from a non-root user's PATH. */
const SBIN_DIRS = ["/usr/sbin", "/usr/local/sbin", "/sbin"];

/** findCommand resolves a command on PATH (`command -v` in sh), then in SBIN_DIRS; undefined when it is nowhere. */
async function findCommand(command: string): Promise<string | undefined> {
  const found = await new Promise<string>((resolveFound) => {
    const child = spawn("sh", ["-c", 'command -v "$0" 2>/dev/null', command], { stdio: ["ignore", "pipe", "ignore"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    child.once("error", () => resolveFound(""));
    child.once("exit", (code) => resolveFound(code === 0 ? output.trim() : ""));
  });
  if (found !== "") return found;
  for (const dir of SBIN_DIRS) {
    const path = join(dir, command);
    if (
      await access(path, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return path;
  }
  return undefined;
}

/** commandVersion runs `command flag` and returns the first line it prints (nginx -v writes to stderr). */
function commandVersion(command: string, flag: string): Promise<string> {
  return new Promise((resolveVersion) => {
    const child = spawn(command, [flag], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    child.once("error", () => resolveVersion("unknown"));
    child.once("exit", () => resolveVersion(output.split("\n")[0]?.trim() ?? "unknown"));
  });
}

/** Tools are the external programs the bench drives, by path. */
interface Tools {
  readonly nginx: string;
  readonly wrk: string;
}

/**
 * checkPrerequisites stops the bench, naming what is missing and how to install it, when it cannot run here; it never
 * installs anything itself.
 */
async function checkPrerequisites(needsProxyTools: boolean): Promise<Tools | undefined> {
  if (process.platform !== "linux") throw new Error(`needs Linux (/proc), not ${process.platform}`);
  if (!needsProxyTools) return undefined;
  const nginx = await findCommand("nginx");
  const wrk = await findCommand("wrk");
  const missing = [nginx === undefined ? "nginx" : "", wrk === undefined ? "wrk" : ""].filter((name) => name !== "");
  if (nginx === undefined || wrk === undefined) {
    throw new Error(
      `${missing.join(" and ")} ${missing.length === 1 ? "is" : "are"} not installed (looked on PATH and in ${SBIN_DIRS.join(", ")}).\n` +
        `Install the Debian packages with:  ${APT_LINE}\n` +
        "(nginx is the reference proxy, wrk the load generator; the bench installs nothing itself.)",
    );
  }
  return { nginx, wrk };
}

/**
 * FileLimitPlan says how the hold phase gets the descriptors it needs (one per stream in the client, gateway, agent and
 * simulator each). Node raises its own soft RLIMIT_NOFILE to the hard limit at start-up, so the hard limit is what
 * counts: when it is too low, root starts the services and the stream client through prlimit with a higher one;
 * anyone else gets fewer streams, and a note saying how to raise the limit.
 */
interface FileLimitPlan {
  readonly soft: number;
  readonly hard: number;
  /** openFiles is what children get through prlimit, undefined when the inherited limit is enough. */
  readonly openFiles: number | undefined;
  readonly holdStreams: number;
  readonly note: string | undefined;
}

async function planFileLimit(holdStreams: number): Promise<FileLimitPlan> {
  const { soft, hard } = openFileLimit();
  const needed = holdStreams + FILE_MARGIN;
  if (soft >= needed) return { soft, hard, openFiles: undefined, holdStreams, note: undefined };
  // Raising a hard limit takes CAP_SYS_RESOURCE, which even root may lack in a container: try it once.
  if (await prlimitWorks(needed)) {
    return {
      soft,
      hard,
      openFiles: needed,
      holdStreams,
      note: `ulimit -n is ${soft}: the services and the stream client get ${needed} through prlimit`,
    };
  }
  const streams = Math.max(0, Math.min(soft, hard) - FILE_MARGIN);
  return {
    soft,
    hard,
    openFiles: undefined,
    holdStreams: streams,
    note:
      `the open-file limit is ${Math.min(soft, hard)} and cannot be raised here: holding ${streams} streams instead of ${holdStreams}; ` +
      `run \`ulimit -n ${needed}\` first (as root, or LimitNOFILE / --ulimit nofile=${needed}) for the full figure`,
  };
}

/** prlimitWorks tells whether `prlimit --nofile=N:N` can start a command here. */
function prlimitWorks(openFiles: number): Promise<boolean> {
  return new Promise((resolveWorks) => {
    const child = spawn("prlimit", [`--nofile=${openFiles}:${openFiles}`, "--", "true"], { stdio: "ignore" });
    child.once("error", () => resolveWorks(false));
    child.once("exit", (code) => resolveWorks(code === 0));
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Measuring

interface Snapshot {
  readonly at: number;
  readonly machineMs: number;
  readonly services: ReadonlyMap<string, ProcessSample | undefined>;
}

function snapshot(services: readonly ServiceProcess[]): Snapshot {
  return {
    at: performance.now(),
    machineMs: machineBusyMs(),
    services: new Map(services.map((service) => [service.name, service.sample()])),
  };
}

function cpuWindow(from: Snapshot, to: Snapshot): CpuWindow {
  const wallMs = to.at - from.at;
  const cores: Record<string, number> = {};
  for (const [name, sample] of to.services) {
    const before = from.services.get(name);
    if (sample && before) cores[name] = round((sample.cpuMs - before.cpuMs) / wallMs, 3);
  }
  return { cores, machineCores: round((to.machineMs - from.machineMs) / wallMs, 3), wallMs: Math.round(wallMs) };
}

/** Harness is what the phases measure with. */
interface Harness {
  readonly mesh: MeshProcesses;
  readonly services: readonly ServiceProcess[];
  readonly targets: Readonly<Record<TargetName, Target>>;
  readonly wrkScript: string;
  readonly wrk: string;
  readonly options: BenchOptions;
  readonly openFiles: number | undefined;
  readonly log: (line: string) => void;
}

async function chatRun(h: Harness, target: TargetName, connections: number, seconds: number): Promise<ChatRun> {
  const from = snapshot(h.services);
  const wrk = await runWrk({
    command: h.wrk,
    url: h.targets[target].url,
    connections,
    threads: Math.min(h.options.wrkThreads, connections),
    seconds,
    scriptPath: h.wrkScript,
    timeoutSeconds: WRK_TIMEOUT_SECONDS,
  });
  const cpu = cpuWindow(from, snapshot(h.services));
  const cpuUsPerRequest: Record<string, number> = {};
  for (const [name, cores] of Object.entries(cpu.cores)) {
    if (wrk.requests > 0) cpuUsPerRequest[name] = round((cores * cpu.wallMs * 1000) / wrk.requests, 1);
  }
  const servicesCores = Object.values(cpu.cores).reduce((sum, cores) => sum + cores, 0);
  const wrkCores = (wrk.wrkCpuSeconds * 1000) / cpu.wallMs;
  const otherCores = round(Math.max(0, cpu.machineCores - servicesCores - wrkCores), 3);
  return { target, connections, wrk, cpu, cpuUsPerRequest, otherCores };
}

async function runChat(h: Harness): Promise<ChatRun[]> {
  if (h.options.warmupSeconds > 0) {
    for (const target of TARGET_NAMES) {
      const seconds = target === "mesh" ? h.options.warmupSeconds : Math.min(DIRECT_WARMUP_SECONDS, h.options.warmupSeconds);
      h.log(`chat: ${target} warm-up, ${seconds}s at ${WARMUP_CONNECTIONS} connections`);
      const warm = await chatRun(h, target, WARMUP_CONNECTIONS, seconds);
      h.log(`  ${fixed(warm.wrk.requestsPerSecond, 0)} req/s`);
    }
  }
  const runs: ChatRun[] = [];
  for (const connections of h.options.connections) {
    // Targets back to back at each level, so that the three see the same machine load as nearly as possible.
    for (const target of TARGET_NAMES) {
      h.log(`chat: ${target}, ${connections} connection${connections === 1 ? "" : "s"}, ${h.options.seconds}s`);
      const run = await chatRun(h, target, connections, h.options.seconds);
      runs.push(run);
      const errors = errorCount(run.wrk);
      h.log(
        `  ${fixed(run.wrk.requestsPerSecond, 0)} req/s, p50 ${fixed(run.wrk.latencyMs.p50, 3)} ms, p99 ${fixed(run.wrk.latencyMs.p99, 3)} ms` +
          `${errors > 0 ? `, ${errors} errors` : ""}, other cpu ${fixed(run.otherCores, 2)}`,
      );
      await sleep(QUIET_MS);
    }
  }
  return runs;
}

async function runTtfb(h: Harness): Promise<TtfbRun[]> {
  const runs: TtfbRun[] = [];
  for (const target of TARGET_NAMES) {
    h.log(`ttfb: ${target}, ${h.options.ttfbRequests} sequential streams`);
    const result: TtfbResult = await runStreamJob(
      { type: "ttfb", target: h.targets[target], model: h.mesh.model, requests: h.options.ttfbRequests, warmup: TTFB_WARMUP_REQUESTS },
      { openFiles: undefined, timeoutMs: 60_000 + h.options.ttfbRequests * 100 },
    );
    const run = { target, headersMs: percentiles(result.headersMs), firstByteMs: percentiles(result.firstEventMs), errors: result.errors };
    h.log(`  first byte p50 ${fixed(run.firstByteMs.p50, 3)} ms, p99 ${fixed(run.firstByteMs.p99, 3)} ms`);
    runs.push(run);
    await sleep(QUIET_MS);
  }
  return runs;
}

/**
 * heldStreams holds the chunks phase's streams through target, together offering --stream-rate chunks/s, for the
 * counting window; onOpened hears when all are flowing, onHeld when the window is over.
 */
function heldStreams(
  h: Harness,
  target: TargetName,
  streams: number,
  hooks: { readonly onOpened?: () => void; readonly onHeld?: () => void },
): Promise<ChunksResult> {
  return runStreamJob(
    {
      type: "chunks",
      target: h.targets[target],
      model: h.mesh.model,
      streams,
      tokensPerSecond: h.options.streamRate / streams,
      settleMs: STREAM_SETTLE_MS,
      windowMs: h.options.windowSeconds * 1000,
      openConcurrency: OPEN_CONCURRENCY,
      openTimeoutMs: 30_000,
    },
    { openFiles: h.openFiles, timeoutMs: 60_000 + h.options.windowSeconds * 1000, ...hooks },
  );
}

async function runChunks(h: Harness): Promise<ChunksRun[]> {
  const runs: ChunksRun[] = [];
  for (const streams of h.options.streams) {
    const tokensPerSecond = h.options.streamRate / streams;
    for (const target of TARGET_NAMES) {
      h.log(`chunks: ${target}, ${streams} streams at ${fixed(tokensPerSecond, 1)} tokens/s, ${h.options.windowSeconds}s window`);
      let from: Snapshot | undefined;
      let cpu: CpuWindow | undefined;
      const result = await heldStreams(h, target, streams, {
        onOpened: () => {
          from = snapshot(h.services);
        },
        onHeld: () => {
          if (from) cpu = cpuWindow(from, snapshot(h.services));
        },
      });
      const cpuUsPerChunk: Record<string, number> = {};
      if (cpu && result.events > 0) {
        for (const [name, cores] of Object.entries(cpu.cores)) cpuUsPerChunk[name] = round((cores * cpu.wallMs * 1000) / result.events, 1);
      }
      runs.push({
        target,
        streams,
        tokensPerSecondPerStream: tokensPerSecond,
        offeredPerSecond: h.options.streamRate,
        result,
        cpu,
        cpuUsPerChunk,
      });
      h.log(
        `  ${result.eventsPerSecond} chunks/s (${result.open.opened}/${streams} open in ${result.open.openMs} ms, ` +
          `client cpu ${fixed(result.clientCpu, 2)})${describeErrors(result.open.errors)}`,
      );
      // The client cut its streams; let the services see them go before the next target opens its own.
      await sleep(QUIET_MS * 2);
    }
  }
  return runs;
}

async function runHold(h: Harness, streams: number): Promise<HoldRun> {
  const watched = { gateway: h.mesh.gateway, agent: h.mesh.agent, simulator: h.mesh.simulator } as const;
  const rss = () =>
    Object.fromEntries(Object.entries(watched).map(([name, service]) => [name, service.sample()])) as Record<
      keyof typeof watched,
      ProcessSample | undefined
    >;
  const idle = rss();
  let opened: Record<keyof typeof watched, ProcessSample | undefined> | undefined;
  let openSummary: OpenSummary | undefined;
  let heldSnapshot: Record<keyof typeof watched, ProcessSample | undefined> | undefined;
  let heldStats = { windowMs: 0, eventsPerSecond: 0, streamsEnded: 0, clientRssBytes: 0 };
  let windowFrom: Snapshot | undefined;
  let cores: Record<string, number> = {};
  h.log(`hold: ${streams} streams at ${HOLD_TOKENS_PER_SECOND} token/s through the mesh, held ${h.options.holdSeconds}s`);
  await runStreamJob(
    {
      type: "hold",
      target: h.targets.mesh,
      model: h.mesh.model,
      streams,
      tokensPerSecond: HOLD_TOKENS_PER_SECOND,
      windowMs: h.options.holdSeconds * 1000,
      openConcurrency: OPEN_CONCURRENCY,
      openTimeoutMs: HOLD_OPEN_TIMEOUT_MS,
    },
    {
      openFiles: h.openFiles,
      timeoutMs: HOLD_OPEN_TIMEOUT_MS + 60_000 + h.options.holdSeconds * 1000,
      onOpened: (message) => {
        opened = rss();
        openSummary = message.open;
        windowFrom = snapshot(h.services);
        h.log(`  ${message.open.opened}/${streams} open in ${message.open.openMs} ms${describeErrors(message.open.errors)}`);
      },
      onHeld: (message) => {
        heldSnapshot = rss();
        heldStats = message;
        if (windowFrom) cores = { ...cpuWindow(windowFrom, snapshot(h.services)).cores };
      },
    },
  );
  const mb = (sample: ProcessSample | undefined, pick: (s: ProcessSample) => number) => (sample ? megabytes(pick(sample)) : 0);
  const figures = (name: keyof typeof watched) => ({
    idle: mb(idle[name], (s) => s.rssBytes),
    open: mb(opened?.[name], (s) => s.rssBytes),
    held: mb(heldSnapshot?.[name], (s) => s.rssBytes),
    peak: mb(heldSnapshot?.[name], (s) => s.peakRssBytes),
  });
  const run: HoldRun = {
    streams,
    tokensPerSecond: HOLD_TOKENS_PER_SECOND,
    open: openSummary,
    windowMs: heldStats.windowMs,
    eventsPerSecond: heldStats.eventsPerSecond,
    streamsEnded: heldStats.streamsEnded,
    clientRssMb: megabytes(heldStats.clientRssBytes),
    rssMb: { gateway: figures("gateway"), agent: figures("agent"), simulator: figures("simulator") },
    cores,
  };
  h.log(
    `  rss gateway ${run.rssMb.gateway.held} MB (idle ${run.rssMb.gateway.idle}), agent ${run.rssMb.agent.held} MB ` +
      `(idle ${run.rssMb.agent.idle}), ${run.eventsPerSecond} chunks/s delivered`,
  );
  // Let the mesh drop the cancelled calls before anything else runs.
  await sleep(QUIET_MS * 4);
  return run;
}

/** runRegistry runs bench/registry-bench.ts for one agent count, its JSON going to the temp dir, and reads it back. */
async function runRegistry(options: BenchOptions, tempDir: string, log: (line: string) => void): Promise<RegistryFigures> {
  const outDir = join(tempDir, "registry-results");
  const script = fileURLToPath(new URL("./registry-bench.ts", import.meta.url));
  const args = [
    "--import",
    import.meta.resolve("tsx"),
    script,
    "--agents",
    String(options.registryAgents),
    "--seconds",
    String(options.registrySeconds),
    "--paced-seconds",
    String(options.registrySeconds),
    "--out",
    outDir,
  ];
  log(`registry: bench/registry-bench.ts --agents ${options.registryAgents} --seconds ${options.registrySeconds}`);
  await new Promise<void>((resolveRun, rejectRun) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    registryChild = child;
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
      for (const line of chunk.toString("utf8").split("\n")) if (line.trim()) log(`  ${line}`);
    });
    child.once("error", rejectRun);
    child.once("exit", (code) => {
      registryChild = undefined;
      if (code === 0) resolveRun();
      else rejectRun(new Error(`registry bench failed (exit ${code}):\n${output.trim()}`));
    });
  });
  const [file] = (await readdir(outDir)).filter((name) => name.endsWith(".json"));
  if (file === undefined) throw new Error("the registry bench wrote no results");
  type RegistryReport = {
    results: {
      agents: number;
      registryPeakRssMb: number;
      max: { heartbeatsPerSecond: number; registryCpu: number; registryCpuUsPerHeartbeat: number | null; otherCpu: number };
      paced: { heartbeatsPerSecond: number; registryCpu: number; targetPerSecond: number };
      watch: { expected: number; seen: number; latencyMs: Percentiles };
    }[];
  };
  const report = JSON.parse(await readFile(join(outDir, file), "utf8")) as RegistryReport;
  const result = report.results[0];
  if (result === undefined) throw new Error("the registry bench reported no agent count");
  // Keep the registry bench's own report beside ours.
  await mkdir(options.outDir, { recursive: true });
  await writeFile(join(options.outDir, file), await readFile(join(outDir, file)));
  return {
    agents: result.agents,
    heartbeatsPerSecondMax: result.max.heartbeatsPerSecond,
    cpuAtMax: result.max.registryCpu,
    cpuUsPerHeartbeat: result.max.registryCpuUsPerHeartbeat,
    pacedPerSecond: result.paced.heartbeatsPerSecond,
    pacedTargetPerSecond: result.paced.targetPerSecond,
    cpuAtPaced: result.paced.registryCpu,
    cpuAtTarget:
      result.paced.heartbeatsPerSecond > 0
        ? round((result.paced.registryCpu * result.paced.targetPerSecond) / result.paced.heartbeatsPerSecond, 3)
        : null,
    watchP50Ms: result.watch.latencyMs.p50,
    watchP99Ms: result.watch.latencyMs.p99,
    watchSeen: result.watch.seen,
    watchExpected: result.watch.expected,
    rssMb: result.registryPeakRssMb,
    otherCpuAtMax: result.max.otherCpu,
    file,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Profiling

/** ProfiledLoad is what ran under the profiler: the 64-connection chat, or (--only chunks) the first --streams. */
type ProfiledLoad = { readonly chat: ChatRun } | { readonly chunks: ChunksResult; readonly streams: number };

/**
 * runProfile profiles gateway and agent under the mesh's 64-connection chat load, or under its streams when the
 * chunks phase alone is asked for (--only chunks), and summarises the profiles.
 */
async function runProfile(h: Harness, profileDir: string): Promise<{ load: ProfiledLoad; summaries: ProfileSummary[] }> {
  const streamed = h.options.phases.length === 1 && h.options.phases[0] === "chunks";
  h.log(`profile: ${h.options.warmupSeconds}s warm-up, then the mesh ${streamed ? "streaming" : "at 64 connections"}`);
  if (h.options.warmupSeconds > 0) await chatRun(h, "mesh", WARMUP_CONNECTIONS, h.options.warmupSeconds);
  // The summary covers the measured run only, on the clock the profiles use (CLOCK_MONOTONIC, µs).
  let fromUs = Number(process.hrtime.bigint() / 1000n);
  let load: ProfiledLoad;
  if (streamed) {
    const streams = h.options.streams[0] as number;
    const chunks = await heldStreams(h, "mesh", streams, {
      onOpened: () => {
        fromUs = Number(process.hrtime.bigint() / 1000n);
      },
    });
    load = { chunks, streams };
    h.log(`  ${chunks.eventsPerSecond} chunks/s of ${streams} streams under the profiler; stopping gateway and agent`);
  } else {
    const chat = await chatRun(h, "mesh", WARMUP_CONNECTIONS, h.options.seconds);
    load = { chat };
    h.log(`  ${fixed(chat.wrk.requestsPerSecond, 0)} req/s under the profiler; stopping gateway and agent to write the profiles`);
  }
  const window = { fromUs, toUs: Number(process.hrtime.bigint() / 1000n) };
  await h.mesh.stopAll();
  const summaries: ProfileSummary[] = [];
  for (const name of ["gateway", "agent"]) {
    const path = join(profileDir, `${name}.cpuprofile`);
    summaries.push(summarizeCpuProfile(name, JSON.parse(await readFile(path, "utf8")), undefined, window));
  }
  return { load, summaries };
}

function describeProfiledLoad(load: ProfiledLoad): string {
  if ("chunks" in load) return `mesh, ${load.streams} streams, ${load.chunks.eventsPerSecond} chunks/s`;
  const { wrk, cpuUsPerRequest } = load.chat;
  return `mesh at 64 connections, ${fixed(wrk.requestsPerSecond, 0)} req/s, p50 ${fixed(wrk.latencyMs.p50, 3)} ms; cpu µs/req ${JSON.stringify(cpuUsPerRequest)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Main

let registryChild: ReturnType<typeof spawn> | undefined;

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const log = (line: string) => process.stderr.write(`[mesh bench] ${line}\n`);
  const profiling = options.profileDir !== undefined;
  const meshPhases = options.phases.filter((phase) => phase !== "registry");
  const needsMesh = profiling || meshPhases.length > 0;
  const tools = await checkPrerequisites(needsMesh);
  const startedAt = new Date();
  const startedMs = performance.now();

  const plan = needsMesh && options.phases.includes("hold") && !profiling ? await planFileLimit(options.holdStreams) : undefined;
  if (plan?.note) log(plan.note);

  const tempDir = await mkdtemp(join(tmpdir(), "infermesh-mesh-bench-"));
  let mesh: MeshProcesses | undefined;
  let cleaned = false;
  const cleanupSync = () => {
    if (cleaned) return;
    cleaned = true;
    killStreamClients();
    registryChild?.kill("SIGKILL");
    mesh?.killAll();
    rmSync(tempDir, { recursive: true, force: true });
  };
  const cleanup = async () => {
    killStreamClients();
    registryChild?.kill("SIGTERM");
    await mesh?.stopAll();
    if (!cleaned) await rm(tempDir, { recursive: true, force: true });
    cleaned = true;
  };
  process.once("exit", cleanupSync);
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: stopping every child and removing ${tempDir}`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const results: MeshResults = { chat: [], ttfb: [], chunks: [], hold: undefined, registry: undefined };
  let profile: { load: ProfiledLoad; summaries: ProfileSummary[] } | undefined;
  let versions = { nginx: "", wrk: "" };
  let cli: CliCommand | undefined;
  try {
    if (tools) {
      versions = {
        nginx: await commandVersion(tools.nginx, "-v"),
        wrk: (await commandVersion(tools.wrk, "-v")).split(" ").slice(0, 2).join(" "),
      };
      if (options.profileDir !== undefined) await mkdir(options.profileDir, { recursive: true });
      if (!options.tsx) log("compiling the working tree with tsc (--tsx skips this)");
      cli = options.tsx ? SOURCE_CLI : await compileCli(join(tempDir, "build"));
      mesh = await startMeshProcesses({
        cli,
        tempDir,
        nginx: tools.nginx,
        nginxWorkers: options.nginxWorkers,
        openFiles: plan?.openFiles,
        cpuProfileDir: options.profileDir,
        log,
      });
      const m: MeshProcesses = mesh;
      const wrkScript = join(tempDir, "chat.lua");
      const body = JSON.stringify({
        model: m.model,
        messages: [{ role: "user", content: "Say something." }],
        max_tokens: options.completionTokens,
      });
      await writeWrkScript(wrkScript, body, m.apiKey);
      const url = (base: string) => `${base}/v1/chat/completions`;
      const harness: Harness = {
        mesh: m,
        services: [m.simulator, m.nginx, m.gateway, m.agent, m.registry],
        targets: {
          direct: { name: "direct", url: url(m.baseUrls.direct), apiKey: m.apiKey },
          nginx: { name: "nginx", url: url(m.baseUrls.nginx), apiKey: m.apiKey },
          mesh: { name: "mesh", url: url(m.baseUrls.mesh), apiKey: m.apiKey },
        },
        wrkScript,
        wrk: tools.wrk,
        options,
        openFiles: plan?.openFiles,
        log,
      };
      if (options.profileDir !== undefined) {
        profile = await runProfile(harness, options.profileDir);
      } else {
        if (options.phases.includes("chat")) results.chat = await runChat(harness);
        if (options.phases.includes("ttfb")) results.ttfb = await runTtfb(harness);
        if (options.phases.includes("chunks")) results.chunks = await runChunks(harness);
        if (options.phases.includes("hold") && plan && plan.holdStreams > 0) results.hold = await runHold(harness, plan.holdStreams);
      }
      log("stopping the mesh, nginx and the simulator");
      await m.stopAll();
    }
    if (!profiling && options.phases.includes("registry")) results.registry = await runRegistry(options, tempDir, log);
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    await cleanup();
  }

  const { cores, cpuModel } = machine();
  const durationSeconds = round((performance.now() - startedMs) / 1000, 1);
  const header =
    `mesh bench (${cores} cores, ${cpuModel}, Node ${process.version}, ${versions.nginx || "nginx -"} ` +
    `with ${options.nginxWorkers} worker${options.nginxWorkers === 1 ? "" : "s"}, ${versions.wrk || "wrk -"} -t${options.wrkThreads}, ` +
    `${options.seconds}s per run)\nservices: ${cli?.description ?? "-"}`;

  if (profile) {
    process.stdout.write(
      `\n${header}\nprofiled: ${describeProfiledLoad(profile.load)}\n\n` +
        profile.summaries.map((summary) => formatProfileSummary(summary)).join("\n\n") +
        `\n\nprofiles in ${options.profileDir} (open them in Chrome DevTools or speedscope)\n`,
    );
    return;
  }

  const { rows, verdicts } = buildRows(results);
  const noteLines = notes(results, { streamRate: options.streamRate, fileLimitNote: plan?.note });
  process.stdout.write(`\n${formatTable(header, rows)}\n\n${noteLines.join("\n")}\n`);

  const { outDir: _outDir, profileDir: _profileDir, ...reportedOptions } = options;
  await writeBenchReport(options.outDir, "mesh", startedAt, durationSeconds, {
    tools: versions,
    services: cli?.description ?? null,
    options: reportedOptions,
    openFiles: plan ? { soft: plan.soft, hard: plan.hard, children: plan.openFiles ?? null } : null,
    notes: {
      paths:
        "direct: client -> simulator; nginx: client -> nginx -> simulator; mesh: client -> gateway -> agent's link -> agent -> simulator",
      chat: "wrk closed loop, non-streamed chat completions; latencies in ms; cpuUsPerRequest per service; otherCores = machine - services - wrk",
      ttfb: "sequential short streams over one kept-alive connection: ms to the response headers and to the first body byte",
      chunks: "SSE events delivered per second over the window, all streams open and paced by the simulator",
      hold: "slow streams (1 token/s) held open through the mesh; VmRSS in MiB before, once open and after the window",
      registry: "from bench/registry-bench.ts (its own report is saved beside this one)",
      lines: noteLines,
    },
    verdicts,
    results,
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`mesh bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
