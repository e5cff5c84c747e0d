/**
 * registry-bench measures what the registry costs for N simulated agents (N = 1,000 and 10,000 by default). For each
 * N it starts a fresh registry (createRegistry on a SQLite store in a temp dir) in a child process,
 * bench/registry-child.ts, so that the registry's CPU and memory are measured apart from this load generator, then:
 *
 * Agents heartbeat through the gateway their link is attached to, which relays each heartbeat to the registry with the
 * mesh token and the agent's key (bench/heartbeat-load.ts sends them as 8 such gateways would):
 *
 * 1. registration: every agent sends its first heartbeat (N providers claimed, N changes on the watch stream);
 * 2. idle: one second without calls, for the registry's baseline CPU with N live TTL timers;
 * 3. max: heartbeats for the N provider ids, round robin, over a pool of grpc-js channels with a bounded number of
 *    calls in flight, as fast as the registry answers, for --seconds after a --warmup-seconds warm-up. The payload is
 *    a steady one (2-3 models with capabilities, unchanged load), the common case, which emits no watch change;
 * 4. paced: exactly N / --interval-seconds heartbeats per second, the load of N agents heartbeating at the registry's
 *    interval, for --paced-seconds. Every paced heartbeat changes its provider's load, the worst case, and a watcher
 *    holding the mesh token (WatchProviders, connected before registration) times each change from the moment the
 *    heartbeat is sent until the change with that provider id and load arrives on the stream.
 *
 * It prints one table and writes every figure to bench/results/registry-<timestamp>.json. CPU is a fraction of one
 * core (registry CPU seconds per wall second, from process.cpuUsage() in the child); "cpu µs/hb" is registry CPU time
 * per heartbeat at max, the figure least moved by other load on the machine (which the bench measures and reports as
 * otherCpu); "rss MB" is the registry's peak resident set. It is a benchmark, not a test: nothing is asserted.
 * Everything is on loopback, every phase is bounded in time, and the mesh token and API keys are random per run and
 * never printed.
 *
 * With --replicas 2 (or more) it measures registry replicas instead: they share a PostgreSQL store and Redis for
 * presence, started for the run; gateways are split between them; the phases are registration, idle, steady paced
 * heartbeats and changing ones, with watchers on every replica (bench/registry-replicas.ts says what each measures).
 * The figures then include every replica's CPU and memory and what Redis and PostgreSQL did; the JSON goes to
 * bench/results/registry-replicas-<timestamp>.json. It needs Debian's `postgresql` and `redis-server` packages.
 *
 * Run:    npx tsx bench/registry-bench.ts
 *         npx tsx bench/registry-bench.ts --agents 1000,10000 --seconds 10 --paced-seconds 5
 *         npm run bench:registry -- --replicas 2 --agents 10000 --paced-seconds 20
 * Flags:  --agents, --seconds, --warmup-seconds, --paced-seconds, --interval-seconds, --channels, --concurrency,
 *         --users, --store file|memory, --replicas, --change-share, --out DIR (see --help).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type * as grpc from "@grpc/grpc-js";
import { DEFAULT_HEARTBEAT_INTERVAL_MS } from "../services/registry/registry.js";
import { machine, writeBenchReport } from "./bench-report.js";
import { type CallTally, channelReady, loadChannel, makeAgents, runClosedLoop, runPaced } from "./heartbeat-load.js";
import { type Percentiles, percentiles } from "./latency-percentiles.js";
import { openWatch, type ProviderWatch } from "./provider-watch.js";
import { type RegistryChild, startRegistryChild } from "./registry-child-process.js";
import type { ResourceStats } from "./registry-child-protocol.js";
import { formatReplicasTable, measureReplicas, type ReplicasResult, type ReplicasRun } from "./registry-replicas.js";

/** DEFAULT_AGENTS are the agent counts measured, one fresh registry each. */
const DEFAULT_AGENTS: readonly number[] = [1_000, 10_000];
/** DEFAULT_MAX_SECONDS is how long the max-throughput phase is measured. */
const DEFAULT_MAX_SECONDS = 10;
/** DEFAULT_WARMUP_SECONDS runs the max phase unmeasured first, so the JIT and the HTTP/2 windows settle. */
const DEFAULT_WARMUP_SECONDS = 1;
/** DEFAULT_PACED_SECONDS is how long the paced phase lasts. */
const DEFAULT_PACED_SECONDS = 5;
/** DEFAULT_INTERVAL_SECONDS is the agents' heartbeat interval: the paced rate is N / interval. */
const DEFAULT_INTERVAL_SECONDS = DEFAULT_HEARTBEAT_INTERVAL_MS / 1000;
/** DEFAULT_CHANNELS is the grpc-js channel pool; one channel per agent would measure the client, not the registry. */
const DEFAULT_CHANNELS = 16;
/** DEFAULT_CONCURRENCY bounds the heartbeats in flight across the pool. */
const DEFAULT_CONCURRENCY = 64;
/** DEFAULT_USERS is how many users own the agents, N / users each, one API key per user. */
const DEFAULT_USERS = 10;
/** DEFAULT_REPLICAS_AGENTS is the agent count measured with replicas. */
const DEFAULT_REPLICAS_AGENTS: readonly number[] = [10_000];
/** DEFAULT_REPLICAS_PACED_SECONDS is how long each paced phase lasts with replicas: two intervals and more. */
const DEFAULT_REPLICAS_PACED_SECONDS = 20;
/** DEFAULT_CHANGE_SHARE is the share of the changing phase's heartbeats that change their provider: the worst case. */
const DEFAULT_CHANGE_SHARE = 1;
/** DEFAULT_OUT_DIR is where the JSON results go. */
const DEFAULT_OUT_DIR = fileURLToPath(new URL("./results/", import.meta.url));

/** IDLE_MS is the quiet spell that measures the registry's baseline CPU. */
const IDLE_MS = 1_000;
/** WATCH_SETTLE_MS is how long changes still in transit may arrive after the paced phase ends. */
const WATCH_SETTLE_MS = 2_000;
/** REGISTRATION_WATCH_TIMEOUT_MS bounds the wait for the watcher to see every registration. */
const REGISTRATION_WATCH_TIMEOUT_MS = 15_000;
/** CHANNEL_READY_TIMEOUT_MS bounds connecting the channel pool and receiving the watch snapshot. */
const CHANNEL_READY_TIMEOUT_MS = 10_000;
/** CONTENDED_CORES is how much CPU other processes may use during the max phase before the table warns about it. */
const CONTENDED_CORES = 0.25;

/** BenchOptions are the parsed flags, frozen. */
interface BenchOptions {
  readonly agents: readonly number[];
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly pacedSeconds: number;
  readonly intervalSeconds: number;
  readonly channels: number;
  readonly concurrency: number;
  readonly users: number;
  readonly store: "file" | "memory";
  /** replicas is 1 for a registry on SQLite alone, 2 or more for replicas on PostgreSQL and Redis. */
  readonly replicas: number;
  readonly changeShare: number;
  readonly outDir: string;
}

const USAGE = `usage: npx tsx bench/registry-bench.ts [flags]
  --agents LIST            agent counts, comma-separated (default ${DEFAULT_AGENTS.join(",")}; ${DEFAULT_REPLICAS_AGENTS.join(",")} with replicas)
  --seconds S              measured seconds of the max-throughput phase (default ${DEFAULT_MAX_SECONDS})
  --warmup-seconds S       unmeasured seconds before it (default ${DEFAULT_WARMUP_SECONDS})
  --paced-seconds S        seconds of the paced phase (default ${DEFAULT_PACED_SECONDS}; ${DEFAULT_REPLICAS_PACED_SECONDS} each with replicas)
  --interval-seconds S     agents' heartbeat interval; paced rate = agents / S (default ${DEFAULT_INTERVAL_SECONDS})
  --channels N             grpc-js channels in the pool (default ${DEFAULT_CHANNELS})
  --concurrency N          heartbeats in flight at most (default ${DEFAULT_CONCURRENCY})
  --users N                users owning the agents, one API key each (default ${DEFAULT_USERS})
  --store file|memory      SQLite in a temp dir or in memory (default file; replicas use PostgreSQL)
  --replicas N             1: one registry on SQLite; 2 or more: replicas sharing PostgreSQL and Redis (default 1)
  --change-share S         with replicas, share (0..1) of the changing phase's heartbeats that change (default ${DEFAULT_CHANGE_SHARE})
  --out DIR                results folder (default bench/results)`;

/** parseOptions reads the flags once; a bad value stops the bench with a message naming the flag and its unit. */
function parseOptions(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      agents: { type: "string" },
      seconds: { type: "string" },
      "warmup-seconds": { type: "string" },
      "paced-seconds": { type: "string" },
      "interval-seconds": { type: "string" },
      channels: { type: "string" },
      concurrency: { type: "string" },
      users: { type: "string" },
      store: { type: "string" },
      replicas: { type: "string" },
      "change-share": { type: "string" },
      out: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const replicas = values.replicas === undefined ? 1 : positiveInteger("--replicas", "registry replicas", values.replicas);
  const changeShare =
    values["change-share"] === undefined ? DEFAULT_CHANGE_SHARE : positiveNumber("--change-share", "a share", values["change-share"], 0);
  if (changeShare > 1) throw new Error(`--change-share: expected a share from 0 to 1, got ${changeShare}`);
  const agents =
    values.agents === undefined
      ? replicas > 1
        ? DEFAULT_REPLICAS_AGENTS
        : DEFAULT_AGENTS
      : values.agents.split(",").map((part) => positiveInteger("--agents", "agents", part.trim()));
  const users = values.users === undefined ? DEFAULT_USERS : positiveInteger("--users", "users", values.users);
  for (const count of agents) {
    if (count < users) throw new Error(`--agents: ${count} agents is fewer than --users (${users} users)`);
  }
  const store = values.store ?? "file";
  if (store !== "file" && store !== "memory") throw new Error(`--store: expected "file" or "memory", got "${store}"`);
  const seconds = (flag: string, value: string | undefined, fallback: number, min: number): number =>
    value === undefined ? fallback : positiveNumber(flag, "seconds", value, min);
  return Object.freeze({
    agents: Object.freeze(agents),
    seconds: seconds("--seconds", values.seconds, DEFAULT_MAX_SECONDS, 0.1),
    warmupSeconds: seconds("--warmup-seconds", values["warmup-seconds"], DEFAULT_WARMUP_SECONDS, 0),
    pacedSeconds: seconds(
      "--paced-seconds",
      values["paced-seconds"],
      replicas > 1 ? DEFAULT_REPLICAS_PACED_SECONDS : DEFAULT_PACED_SECONDS,
      0.1,
    ),
    intervalSeconds: seconds("--interval-seconds", values["interval-seconds"], DEFAULT_INTERVAL_SECONDS, 0.01),
    channels: values.channels === undefined ? DEFAULT_CHANNELS : positiveInteger("--channels", "channels", values.channels),
    concurrency:
      values.concurrency === undefined ? DEFAULT_CONCURRENCY : positiveInteger("--concurrency", "calls in flight", values.concurrency),
    users,
    store,
    replicas,
    changeShare,
    outDir: resolve(values.out ?? DEFAULT_OUT_DIR),
  });
}

function positiveInteger(flag: string, unit: string, text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    throw new Error(`${flag}: expected a whole number of ${unit} (1 or more), got "${text}"`);
  }
  return value;
}

function positiveNumber(flag: string, unit: string, text: string, min: number): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || value < min) {
    throw new Error(`${flag}: expected a number of ${unit} (${min} or more), got "${text}"`);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------------------
// Measuring one agent count

/** PhaseResult is one load phase's heartbeats and what they cost the registry. */
interface PhaseResult {
  readonly seconds: number;
  readonly heartbeats: number;
  readonly heartbeatsPerSecond: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly latencyMs: Percentiles;
  /** registryCpu is registry CPU seconds per wall second (1 = one core busy). */
  readonly registryCpu: number;
  /** registryCpuUsPerHeartbeat is registry CPU time per accepted heartbeat, less moved by other load than the rate. */
  readonly registryCpuUsPerHeartbeat: number | null;
  /** clientCpu is the same for this load generator, to tell when it, not the registry, was the limit. */
  readonly clientCpu: number;
  /** otherCpu is the cores other processes used meanwhile (0 on a quiet machine). */
  readonly otherCpu: number;
  readonly registryRssMb: number;
}

/** AgentsResult is everything measured for one agent count. */
interface AgentsResult {
  readonly agents: number;
  readonly users: number;
  /** registryStartRssMb is the registry's resident set when ready, before any provider (includes tsx's loader). */
  readonly registryStartRssMb: number;
  readonly registryPeakRssMb: number;
  readonly registryHeapUsedMb: number;
  readonly registration: PhaseResult & { readonly watchChangesSeen: number };
  readonly idle: { readonly seconds: number; readonly registryCpu: number; readonly otherCpu: number };
  readonly max: PhaseResult;
  readonly paced: PhaseResult & { readonly targetPerSecond: number };
  readonly watch: { readonly expected: number; readonly seen: number; readonly latencyMs: Percentiles };
}

/** Sample is a set of resource samples taken together: the registry's, ours and the whole machine's. */
interface Sample {
  readonly registry: ResourceStats;
  readonly clientCpuUs: number;
  readonly clientWallMs: number;
  /** machineBusyMs is CPU time spent by every process on every core, from os.cpus(). */
  readonly machineBusyMs: number;
}

async function sample(child: RegistryChild): Promise<Sample> {
  const registry = await child.stats();
  const cpu = process.cpuUsage();
  return {
    registry,
    clientCpuUs: cpu.user + cpu.system,
    clientWallMs: performance.now(),
    machineBusyMs: machineBusyMs(),
  };
}

function machineBusyMs(): number {
  return cpus().reduce((sum, { times }) => sum + times.user + times.nice + times.sys + times.irq, 0);
}

function registryCpu(from: Sample, to: Sample): number {
  const cpuUs = to.registry.cpuUserUs + to.registry.cpuSystemUs - from.registry.cpuUserUs - from.registry.cpuSystemUs;
  return cpuUs / ((to.registry.wallMs - from.registry.wallMs) * 1000);
}

function clientCpu(from: Sample, to: Sample): number {
  return (to.clientCpuUs - from.clientCpuUs) / ((to.clientWallMs - from.clientWallMs) * 1000);
}

/**
 * otherCpu is the cores busy with neither the registry nor this bench: on a shared machine it tells how far the
 * throughput figures are understated.
 */
function otherCpu(from: Sample, to: Sample): number {
  const machine = (to.machineBusyMs - from.machineBusyMs) / (to.clientWallMs - from.clientWallMs);
  return Math.max(0, machine - registryCpu(from, to) - clientCpu(from, to));
}

function phaseResult(tally: CallTally, from: Sample, to: Sample, elapsedMs?: number): PhaseResult {
  const seconds = (elapsedMs ?? to.clientWallMs - from.clientWallMs) / 1000;
  const cpu = registryCpu(from, to);
  const perSecond = tally.ok / seconds;
  return {
    seconds: round(seconds, 3),
    heartbeats: tally.ok,
    heartbeatsPerSecond: round(perSecond, 1),
    errors: Object.fromEntries(tally.errors),
    latencyMs: percentiles(tally.latenciesMs),
    registryCpu: round(cpu, 3),
    registryCpuUsPerHeartbeat: perSecond > 0 ? round((cpu * 1e6) / perSecond, 1) : null,
    clientCpu: round(clientCpu(from, to), 3),
    otherCpu: round(otherCpu(from, to), 3),
    registryRssMb: megabytes(to.registry.rssBytes),
  };
}

/** Resources are what measureAgents must release, whatever happens. */
interface Resources {
  child?: RegistryChild;
  clients: grpc.Client[];
  watch?: ProviderWatch;
  tempDir?: string;
}

async function release(resources: Resources): Promise<void> {
  resources.watch?.close();
  for (const client of resources.clients) client.close();
  resources.clients = [];
  await resources.child?.stop();
  if (resources.tempDir !== undefined) await rm(resources.tempDir, { recursive: true, force: true });
  delete resources.watch;
  delete resources.child;
  delete resources.tempDir;
}

/** measureAgents runs every phase against a fresh registry for `count` agents. */
async function measureAgents(count: number, options: BenchOptions, resources: Resources): Promise<AgentsResult> {
  const log = (line: string) => process.stderr.write(`[${count} agents] ${line}\n`);
  const meshToken = randomBytes(32).toString("base64url");
  resources.tempDir = await mkdtemp(join(tmpdir(), "infermesh-registry-bench-"));
  const storePath = options.store === "memory" ? ":memory:" : join(resources.tempDir, "registry.db");

  log("starting the registry child");
  const child = await startRegistryChild({ db: storePath, meshToken, users: options.users });
  resources.child = child;
  const address = `127.0.0.1:${child.port}`;
  const start = await sample(child);

  const pool = Array.from({ length: options.channels }, () => {
    const client = loadChannel(address);
    resources.clients.push(client);
    return client;
  });
  const watchClient = loadChannel(address);
  resources.clients.push(watchClient);
  await Promise.all([...pool, watchClient].map((client) => channelReady(client, CHANNEL_READY_TIMEOUT_MS)));
  const watch = await openWatch(watchClient, meshToken, CHANNEL_READY_TIMEOUT_MS);
  resources.watch = watch;
  const agents = makeAgents(count, meshToken, child.apiKeys, [pool]);

  log("registering");
  const registrationFrom = await sample(child);
  const registration = await runClosedLoop(agents, { concurrency: options.concurrency, count });
  const registrationTo = await sample(child);
  if (registration.ok === 0) throw new Error(`no heartbeat was accepted: ${registration.firstError ?? "?"}`);
  await watch.waitUntil((w) => w.changes >= registration.ok, REGISTRATION_WATCH_TIMEOUT_MS);
  const watchChangesSeen = watch.changes;

  log("idle");
  const idleFrom = await sample(child);
  await sleep(IDLE_MS);
  const idleTo = await sample(child);

  log(`max throughput: ${options.warmupSeconds}s warm-up, ${options.seconds}s measured`);
  if (options.warmupSeconds > 0) {
    await runClosedLoop(agents, { concurrency: options.concurrency, durationMs: options.warmupSeconds * 1000 });
  }
  const maxFrom = await sample(child);
  const max = await runClosedLoop(agents, { concurrency: options.concurrency, durationMs: options.seconds * 1000 });
  const maxTo = await sample(child);

  const ratePerSecond = count / options.intervalSeconds;
  log(`paced: ${ratePerSecond} heartbeats/s for ${options.pacedSeconds}s, each changing its provider's load`);
  const pacedFrom = await sample(child);
  const paced = await runPaced(agents, watch, {
    ratePerSecond,
    durationMs: options.pacedSeconds * 1000,
    concurrency: options.concurrency,
  });
  const pacedTo = await sample(child);
  await watch.waitUntil((w) => w.pending === 0, WATCH_SETTLE_MS);
  const watched = watch.takeResults();
  const end = await sample(child);

  return {
    agents: count,
    users: options.users,
    registryStartRssMb: megabytes(start.registry.rssBytes),
    registryPeakRssMb: megabytes(end.registry.maxRssBytes),
    registryHeapUsedMb: megabytes(end.registry.heapUsedBytes),
    registration: { ...phaseResult(registration, registrationFrom, registrationTo), watchChangesSeen },
    idle: {
      seconds: round(IDLE_MS / 1000, 3),
      registryCpu: round(registryCpu(idleFrom, idleTo), 3),
      otherCpu: round(otherCpu(idleFrom, idleTo), 3),
    },
    max: phaseResult(max, maxFrom, maxTo),
    paced: { ...phaseResult(paced, pacedFrom, pacedTo, paced.elapsedMs), targetPerSecond: ratePerSecond },
    watch: { expected: watched.expected, seen: watched.seen, latencyMs: percentiles(watched.latenciesMs) },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Reporting

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function megabytes(bytes: number): number {
  return round(bytes / (1024 * 1024), 1);
}

function formatTable(header: string, results: readonly AgentsResult[]): string {
  const columns = [
    "agents",
    "hb/s max",
    "p50 ms",
    "p99 ms",
    "cpu@max",
    "cpu µs/hb",
    "paced hb/s",
    "cpu@paced",
    "rss MB",
    "watch p50 ms",
    "watch p99 ms",
    "watch max ms",
    "seen/sent",
  ];
  const fixed = (value: number | null, digits: number) => (value === null ? "-" : value.toFixed(digits));
  const rows = results.map((r) => [
    String(r.agents),
    fixed(r.max.heartbeatsPerSecond, 0),
    fixed(r.max.latencyMs.p50, 2),
    fixed(r.max.latencyMs.p99, 2),
    fixed(r.max.registryCpu, 2),
    fixed(r.max.registryCpuUsPerHeartbeat, 0),
    fixed(r.paced.heartbeatsPerSecond, 0),
    fixed(r.paced.registryCpu, 3),
    fixed(r.registryPeakRssMb, 0),
    fixed(r.watch.latencyMs.p50, 2),
    fixed(r.watch.latencyMs.p99, 2),
    fixed(r.watch.latencyMs.max, 2),
    `${r.watch.seen}/${r.watch.expected}`,
  ]);
  const widths = columns.map((column, i) => Math.max(column.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join("  ");
  const notes = results.map(
    (r) =>
      `${r.agents} agents: registration ${r.registration.heartbeatsPerSecond.toFixed(0)} hb/s` +
      ` (cpu ${r.registration.registryCpu.toFixed(2)}), idle cpu ${r.idle.registryCpu.toFixed(3)},` +
      ` client cpu@max ${r.max.clientCpu.toFixed(2)}, other processes' cpu@max ${r.max.otherCpu.toFixed(2)},` +
      ` paced hb p50/p99 ${fixed(r.paced.latencyMs.p50, 2)}/` +
      `${fixed(r.paced.latencyMs.p99, 2)} ms, rss at start ${r.registryStartRssMb.toFixed(0)} MB` +
      `, errors ${errorCount(r)}`,
  );
  const contended = results.filter((r) => r.max.otherCpu >= CONTENDED_CORES);
  if (contended.length > 0) {
    notes.push(
      `note: other processes kept ${contended.map((r) => r.max.otherCpu.toFixed(2)).join(" / ")} cores busy during` +
        ` the max phase of ${contended.map((r) => r.agents).join(" / ")} agents, so "hb/s max" is understated;` +
        ` "cpu µs/hb" is less affected`,
    );
  }
  return [header, line(columns), ...rows.map(line), "", ...notes].join("\n");
}

function errorCount(result: AgentsResult): number {
  return [result.registration.errors, result.max.errors, result.paced.errors]
    .flatMap((errors) => Object.values(errors))
    .reduce((sum, n) => sum + n, 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options.replicas > 1) return mainReplicas(options);
  const startedAt = new Date();
  const startedMs = performance.now();
  const resources: Resources = { clients: [] };
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`registry bench: ${signal}, cleaning up\n`);
    void release(resources).finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const results: AgentsResult[] = [];
  try {
    for (const count of options.agents) {
      try {
        results.push(await measureAgents(count, options, resources));
      } finally {
        await release(resources);
      }
    }
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  }

  const { cores, cpuModel } = machine();
  const header =
    `registry bench (${cores} cores, ${cpuModel}, Node ${process.version}, ` +
    `store ${options.store}, ${options.channels} channels, ${options.concurrency} in flight)`;
  const durationSeconds = round((performance.now() - startedMs) / 1000, 1);
  process.stdout.write(`\n${formatTable(header, results)}\n`);

  const { outDir: _outDir, ...reportedOptions } = options;
  await writeBenchReport(options.outDir, "registry", startedAt, durationSeconds, {
    options: reportedOptions,
    notes: {
      registryCpu: "registry CPU seconds per wall second (1 = one core)",
      max: "steady heartbeats (unchanged load, no watch change), closed loop",
      paced: "agents / intervalSeconds heartbeats per second, each changing its provider's load",
      watch: "from sending a paced heartbeat to receiving its change on WatchProviders (mesh token)",
    },
    results,
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`registry bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});

/** mainReplicas is main with --replicas 2 or more: one measurement per agent count, one table, one JSON file. */
async function mainReplicas(options: BenchOptions): Promise<void> {
  const startedAt = new Date();
  const startedMs = performance.now();
  let current: ReplicasRun | undefined;
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`registry bench: ${signal}, cleaning up\n`);
    void (current?.release() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const results: ReplicasResult[] = [];
  try {
    for (const count of options.agents) {
      current = measureReplicas(count, options, machineBusyMs);
      results.push(await current.result);
    }
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  }

  const { cores, cpuModel } = machine();
  const header =
    `registry bench, replicas (${cores} cores, ${cpuModel}, Node ${process.version}, PostgreSQL + Redis, ` +
    `${options.channels} channels, ${options.concurrency} in flight, paced ${options.pacedSeconds}s per phase)`;
  const durationSeconds = round((performance.now() - startedMs) / 1000, 1);
  process.stdout.write(`\n${formatReplicasTable(header, results)}\n`);

  const { outDir: _outDir, store: _store, seconds: _seconds, warmupSeconds: _warmup, ...reportedOptions } = options;
  await writeBenchReport(options.outDir, "registry-replicas", startedAt, durationSeconds, {
    options: reportedOptions,
    notes: {
      cpu: "CPU seconds per wall second (1 = one core): replicas from process.cpuUsage(), Redis from INFO cpu, PostgreSQL from /proc",
      steady: "agents / intervalSeconds heartbeats per second, none changing anything",
      changing: "the same rate, changeShare of them changing their provider's load",
      watch:
        "from sending a changing heartbeat to its replica until the change arrives on a watcher of that replica (same) or another (cross)",
      redis: "commandsPerHeartbeat from total_commands_processed; callsPerHeartbeat from commandstats, a script's inner commands included",
      postgres:
        "statements from pg_stat_statements and transactions from pg_stat_database for the bench database, the bench's own queries excepted",
    },
    results,
  });
}
