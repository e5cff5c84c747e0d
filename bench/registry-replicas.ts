/**
 * registry-replicas is the registry bench's replicas mode (`--replicas 2` and more): registry replicas in child
 * processes share one PostgreSQL store and one Redis for presence (bench/replica-backends.ts), agents are relayed by
 * gateways split between the replicas, and each replica has a watcher, as gateways hold one. For N agents:
 *
 * 1. registration: every agent's first heartbeat, to its gateway's replica, until every watcher has seen N changes
 *    (its own replica's and the others', mirrored through Redis);
 * 2. idle: a quiet spell, for the baseline of every process (the shared sweep runs on each replica), then one
 *    interval of steady heartbeats, unmeasured, so that agents whose registration is older than the TTL (on a slow or
 *    busy machine) are back online before the steady phase;
 * 3. steady: N / interval heartbeats a second that change nothing, the common case: each moves its provider's deadline
 *    in Redis and should cost PostgreSQL nothing, the settings being cached;
 * 4. changing: the same rate, a --change-share of them (all by default, the worst case) changing their provider's
 *    load. Each change is timed from the heartbeat being sent until it arrives on the watcher of the replica it was
 *    sent to ("same") and on the watchers of the others ("cross", through Redis).
 *
 * Registration and the paced phases keep up to half a second's heartbeats in flight (or --concurrency, if more): 10,000 agents send
 * independently, and a tighter bound would cap the rate at the bound over the round trip. Each phase reports every
 * replica's CPU (a fraction of a core, process.cpuUsage() in the child; "µs/hb" is all replicas' CPU time per
 * heartbeat, the figure least moved by other load) and resident set, Redis' CPU, commands (per second, per heartbeat and by command) and memory, PostgreSQL's CPU (its processes in
 * /proc), transactions and statements (pg_stat_statements), and the heartbeats' round trips.
 */
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type * as grpc from "@grpc/grpc-js";
import {
  type Agent,
  type CallTally,
  type ChangeObserver,
  channelReady,
  loadChannel,
  makeAgents,
  runClosedLoop,
  runPaced,
} from "./heartbeat-load.js";
import { type Percentiles, percentiles } from "./latency-percentiles.js";
import { openWatch, type ProviderWatch } from "./provider-watch.js";
import { type RegistryChild, startRegistryChild } from "./registry-child-process.js";
import type { ResourceStats } from "./registry-child-protocol.js";
import { type PostgresSample, type RedisSample, type ReplicaBackends, startReplicaBackends } from "./replica-backends.js";

/** IDLE_MS is the quiet spell: long enough for a few of every replica's shared sweeps. */
const IDLE_MS = 3_000;
/** WATCH_SETTLE_MS is how long changes still in transit may arrive after the changing phase ends. */
const WATCH_SETTLE_MS = 3_000;
/** REGISTRATION_WATCH_TIMEOUT_MS bounds the wait for every watcher to see every registration. */
const REGISTRATION_WATCH_TIMEOUT_MS = 30_000;
/** CHANNEL_READY_TIMEOUT_MS bounds connecting the channel pools and receiving the watch snapshots. */
const CHANNEL_READY_TIMEOUT_MS = 10_000;
/** TOP_STATEMENTS is how many of PostgreSQL's busiest statements a phase lists. */
const TOP_STATEMENTS = 4;

/** ReplicasPlan is what the replicas mode needs of the bench's flags. */
export interface ReplicasPlan {
  readonly replicas: number;
  readonly pacedSeconds: number;
  readonly intervalSeconds: number;
  readonly changeShare: number;
  readonly channels: number;
  readonly concurrency: number;
  readonly users: number;
}

/** ReplicaFigures are one replica's costs over a phase. */
export interface ReplicaFigures {
  /** cpu is the replica's CPU seconds per wall second (1 = one core). */
  readonly cpu: number;
  readonly rssMb: number;
  readonly heartbeats: number;
}

/** RedisFigures are Redis' costs over a phase. */
export interface RedisFigures {
  readonly cpu: number;
  readonly commandsPerSecond: number;
  /** commandsPerHeartbeat is total_commands_processed per accepted heartbeat (sweeps and watchers included). */
  readonly commandsPerHeartbeat: number | null;
  /** callsPerHeartbeat is commandstats' calls per heartbeat by command, inner script commands included. */
  readonly callsPerHeartbeat: Readonly<Record<string, number>>;
  readonly usedMemoryMb: number;
}

/** PostgresFigures are PostgreSQL's costs over a phase. */
export interface PostgresFigures {
  readonly cpu: number;
  readonly transactionsPerSecond: number;
  readonly statementsPerSecond: number;
  readonly statementsPerHeartbeat: number | null;
  readonly tuplesReadPerSecond: number;
  readonly topStatements: readonly { readonly query: string; readonly callsPerSecond: number }[];
}

/** PhaseFigures are one phase's heartbeats and what they cost every process. */
export interface PhaseFigures {
  readonly seconds: number;
  readonly heartbeats: number;
  readonly heartbeatsPerSecond: number;
  readonly changing: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly latencyMs: Percentiles;
  readonly replicas: readonly ReplicaFigures[];
  /** replicaCpuUsPerHeartbeat is all replicas' CPU time per accepted heartbeat, less moved by the rate reached. */
  readonly replicaCpuUsPerHeartbeat: number | null;
  readonly redis: RedisFigures;
  readonly postgres: PostgresFigures;
  /** expiries counts the providers the first replica's watcher saw go offline during the phase (none expected). */
  readonly expiries: number;
  readonly clientCpu: number;
  /** otherCpu is the cores busy with none of the measured processes (other work on a shared machine). */
  readonly otherCpu: number;
}

/** WatchFigures are the changes one kind of watcher was expected to see, those it saw and how long they took. */
export interface WatchFigures {
  readonly expected: number;
  readonly seen: number;
  readonly latencyMs: Percentiles;
}

/** ReplicasResult is everything measured for one agent count. */
export interface ReplicasResult {
  readonly agents: number;
  readonly replicas: number;
  readonly registration: PhaseFigures & { readonly watchChangesSeen: readonly number[] };
  readonly idle: PhaseFigures;
  /** settling is the unmeasured interval between idle and steady, reported for its heartbeats and expiries. */
  readonly settling: PhaseFigures & { readonly targetPerSecond: number };
  readonly steady: PhaseFigures & { readonly targetPerSecond: number };
  readonly changing: PhaseFigures & { readonly targetPerSecond: number; readonly changeShare: number };
  /** watch.same is from the replica a heartbeat went to, watch.cross from the others, through Redis. */
  readonly watch: { readonly same: WatchFigures; readonly cross: WatchFigures };
  readonly peakRssMb: readonly number[];
}

/** Sample is every process' counters taken together. */
interface Sample {
  readonly replicas: readonly ResourceStats[];
  readonly redis: RedisSample;
  readonly postgres: PostgresSample;
  readonly clientCpuUs: number;
  readonly wallMs: number;
  readonly machineBusyMs: number;
  /** offline is the first replica's watcher's count of providers gone offline. */
  readonly offline: number;
}

/** Resources are what measureReplicas must release, whatever happens. */
interface Resources {
  backends?: ReplicaBackends;
  children: RegistryChild[];
  clients: grpc.Client[];
  watches: ProviderWatch[];
}

/** ReplicasRun is a started measurement that can be released early (on a signal). */
export interface ReplicasRun {
  readonly result: Promise<ReplicasResult>;
  release(): Promise<void>;
}

/** measureReplicas runs every phase for `count` agents against plan.replicas fresh replicas, then releases them. */
export function measureReplicas(count: number, plan: ReplicasPlan, machineBusyMs: () => number): ReplicasRun {
  const resources: Resources = { children: [], clients: [], watches: [] };
  let released: Promise<void> | undefined;
  const release = () => {
    released ??= releaseAll(resources);
    return released;
  };
  const result = run(count, plan, machineBusyMs, resources).finally(release);
  return { result, release };
}

async function releaseAll(resources: Resources): Promise<void> {
  for (const watch of resources.watches) watch.close();
  for (const client of resources.clients) client.close();
  await Promise.allSettled(resources.children.map((child) => child.stop()));
  await resources.backends?.stop();
}

async function run(count: number, plan: ReplicasPlan, machineBusyMs: () => number, resources: Resources): Promise<ReplicasResult> {
  const log = (line: string) => process.stderr.write(`[${count} agents, ${plan.replicas} replicas] ${line}\n`);
  const meshToken = randomBytes(32).toString("base64url");
  log("starting PostgreSQL and Redis");
  const backends = await startReplicaBackends();
  resources.backends = backends;
  const redis = { url: backends.redisUrl, prefix: `infermesh:bench:${randomBytes(4).toString("hex")}:` };

  log("starting the registry replicas");
  // One after the other: the first migrates the database and creates the users, the others find them there.
  const children: RegistryChild[] = [];
  for (let i = 0; i < plan.replicas; i++) {
    const child = await startRegistryChild({ db: backends.db, meshToken, users: i === 0 ? plan.users : 0, redis });
    resources.children.push(child);
    children.push(child);
  }
  const apiKeys = children[0]?.apiKeys ?? [];
  const client = (port: number) => {
    const made = loadChannel(`127.0.0.1:${port}`);
    resources.clients.push(made);
    return made;
  };
  const channelsEach = Math.max(1, Math.ceil(plan.channels / plan.replicas));
  const pools = children.map((child) => Array.from({ length: channelsEach }, () => client(child.port)));
  const watchClients = children.map((child) => client(child.port));
  await Promise.all(resources.clients.map((each) => channelReady(each, CHANNEL_READY_TIMEOUT_MS)));
  const watches = await Promise.all(watchClients.map((each) => openWatch(each, meshToken, CHANNEL_READY_TIMEOUT_MS)));
  resources.watches.push(...watches);
  const agents = makeAgents(count, meshToken, apiKeys, pools);

  const take = async (): Promise<Sample> => {
    const [replicas, redisSample, postgres] = await Promise.all([
      Promise.all(children.map((child) => child.stats())),
      backends.sampleRedis(),
      backends.samplePostgres(),
    ]);
    const cpu = process.cpuUsage();
    return {
      replicas,
      redis: redisSample,
      postgres,
      clientCpuUs: cpu.user + cpu.system,
      wallMs: performance.now(),
      machineBusyMs: machineBusyMs(),
      offline: watches[0]?.offline ?? 0,
    };
  };

  const ratePerSecond = count / plan.intervalSeconds;
  const durationMs = plan.pacedSeconds * 1000;
  const concurrency = Math.max(plan.concurrency, Math.ceil(ratePerSecond / 2));
  log("registering");
  const registrationFrom = await take();
  // As many in flight as paced: registering must take well under a TTL, or the first agents expire before the rest.
  const registration = await runClosedLoop(agents, { concurrency, count });
  const registrationTo = await take();
  if (registration.ok === 0) throw new Error(`no heartbeat was accepted: ${registration.firstError ?? "?"}`);
  for (const watch of watches) await watch.waitUntil((w) => w.changes >= registration.ok, REGISTRATION_WATCH_TIMEOUT_MS);
  const watchChangesSeen = watches.map((watch) => watch.changes);

  log("idle");
  const idleFrom = await take();
  await sleep(IDLE_MS);
  const idleTo = await take();

  const ignore: ChangeObserver = { expect() {}, forget() {} };
  log(`settling: one interval (${plan.intervalSeconds}s) of steady heartbeats, unmeasured`);
  const settled = await runPaced(agents, ignore, { ratePerSecond, durationMs: plan.intervalSeconds * 1000, concurrency, changeShare: 0 });
  const settledTo = await take();
  log(`steady: ${ratePerSecond} heartbeats/s for ${plan.pacedSeconds}s, none changing anything`);
  const steadyFrom = await take();
  const steady = await runPaced(agents, ignore, { ratePerSecond, durationMs, concurrency, changeShare: 0 });
  const steadyTo = await take();

  log(`changing: ${ratePerSecond} heartbeats/s for ${plan.pacedSeconds}s, ${plan.changeShare * 100}% changing the load`);
  const fanOut = watchFanOut(agents, watches);
  const changingFrom = await take();
  const changing = await runPaced(agents, fanOut, { ratePerSecond, durationMs, concurrency, changeShare: plan.changeShare });
  const changingTo = await take();
  for (const watch of watches) await watch.waitUntil((w) => w.pending === 0, WATCH_SETTLE_MS);
  const watch = fanOut.results();
  const end = await take();

  const figures = (tally: CallTally & { readonly changing?: number }, from: Sample, to: Sample, byReplica: readonly number[]) =>
    phaseFigures(tally, from, to, byReplica);
  return {
    agents: count,
    replicas: plan.replicas,
    registration: {
      ...figures(registration, registrationFrom, registrationTo, perReplica(agents, plan.replicas, count)),
      watchChangesSeen,
    },
    idle: figures(
      emptyTally(),
      idleFrom,
      idleTo,
      children.map(() => 0),
    ),
    settling: { ...figures(settled, idleTo, settledTo, perReplica(agents, plan.replicas, settled.ok)), targetPerSecond: ratePerSecond },
    steady: {
      ...figures(steady, steadyFrom, steadyTo, perReplica(agents, plan.replicas, steady.ok)),
      targetPerSecond: ratePerSecond,
    },
    changing: {
      ...figures(changing, changingFrom, changingTo, perReplica(agents, plan.replicas, changing.ok)),
      targetPerSecond: ratePerSecond,
      changeShare: plan.changeShare,
    },
    watch,
    peakRssMb: end.replicas.map((stats) => megabytes(stats.maxRssBytes)),
  };
}

/** perReplica splits `heartbeats` sent round robin over the agents by the replica each agent's gateway uses. */
function perReplica(agents: readonly Agent[], replicas: number, heartbeats: number): number[] {
  const counts = Array.from({ length: replicas }, () => 0);
  const rounds = Math.floor(heartbeats / agents.length);
  agents.forEach((agent, i) => {
    counts[agent.replica] = (counts[agent.replica] ?? 0) + rounds + (i < heartbeats % agents.length ? 1 : 0);
  });
  return counts;
}

/** WatchFanOut tells every replica's watcher of each change to expect and sorts what they saw into same and cross. */
interface WatchFanOut extends ChangeObserver {
  results(): { readonly same: WatchFigures; readonly cross: WatchFigures };
}

function watchFanOut(agents: readonly Agent[], watches: readonly ProviderWatch[]): WatchFanOut {
  const replicaOf = new Map(agents.map((agent) => [agent.id, agent.replica]));
  const expected = { same: 0, cross: 0 };
  const kind = (providerId: string, watcher: number) => (replicaOf.get(providerId) === watcher ? "same" : "cross");
  return {
    expect(providerId, inFlight, sentAtMs) {
      watches.forEach((watch, watcher) => {
        watch.expect(providerId, inFlight, sentAtMs);
        expected[kind(providerId, watcher)]++;
      });
    },
    forget(providerId, inFlight) {
      watches.forEach((watch, watcher) => {
        const before = watch.pending;
        watch.forget(providerId, inFlight);
        if (watch.pending < before) expected[kind(providerId, watcher)]--;
      });
    },
    results() {
      const latencies = { same: [] as number[], cross: [] as number[] };
      watches.forEach((watch, watcher) => {
        const taken = watch.takeResults();
        taken.latenciesMs.forEach((latencyMs, i) => {
          latencies[kind(taken.providerIds[i] ?? "", watcher)].push(latencyMs);
        });
      });
      const figures = (which: "same" | "cross"): WatchFigures => ({
        expected: expected[which],
        seen: latencies[which].length,
        latencyMs: percentiles(latencies[which]),
      });
      return { same: figures("same"), cross: figures("cross") };
    },
  };
}

function phaseFigures(
  tally: CallTally & { readonly changing?: number },
  from: Sample,
  to: Sample,
  byReplica: readonly number[],
): PhaseFigures {
  const wallMs = to.wallMs - from.wallMs;
  const seconds = wallMs / 1000;
  const perHeartbeat = (value: number) => (tally.ok > 0 ? round(value / tally.ok, 3) : null);
  const replicas = to.replicas.map((stats, i): ReplicaFigures => {
    const before = from.replicas[i];
    const cpuUs = before ? stats.cpuUserUs + stats.cpuSystemUs - before.cpuUserUs - before.cpuSystemUs : 0;
    const childWallMs = before ? stats.wallMs - before.wallMs : 1;
    return { cpu: round(cpuUs / (childWallMs * 1000), 3), rssMb: megabytes(stats.rssBytes), heartbeats: byReplica[i] ?? 0 };
  });
  const redisCpu = (to.redis.cpuMs - from.redis.cpuMs) / (to.redis.wallMs - from.redis.wallMs);
  const commands = to.redis.commandsProcessed - from.redis.commandsProcessed;
  const calls: Record<string, number> = {};
  for (const [name, total] of [...to.redis.calls].sort(([a], [b]) => a.localeCompare(b))) {
    const delta = total - (from.redis.calls.get(name) ?? 0);
    // INFO itself is the bench's, not the registry's.
    if (delta > 0 && name !== "info") calls[name] = tally.ok > 0 ? round(delta / tally.ok, 3) : delta;
  }
  const postgresSeconds = (to.postgres.wallMs - from.postgres.wallMs) / 1000;
  const postgresCpu = (to.postgres.cpuMs - from.postgres.cpuMs) / (to.postgres.wallMs - from.postgres.wallMs);
  const statementDeltas = [...to.postgres.statements]
    .map(([query, total]) => ({ query, calls: total - (from.postgres.statements.get(query) ?? 0) }))
    .filter(({ calls: n }) => n > 0)
    .sort((a, b) => b.calls - a.calls);
  const statements = statementDeltas.reduce((sum, { calls: n }) => sum + n, 0);
  const clientCpu = (to.clientCpuUs - from.clientCpuUs) / (wallMs * 1000);
  const measured = replicas.reduce((sum, r) => sum + r.cpu, 0) + redisCpu + (Number.isNaN(postgresCpu) ? 0 : postgresCpu) + clientCpu;
  return {
    seconds: round(seconds, 3),
    heartbeats: tally.ok,
    heartbeatsPerSecond: round(tally.ok / seconds, 1),
    changing: tally.changing ?? 0,
    errors: Object.fromEntries(tally.errors),
    latencyMs: percentiles(tally.latenciesMs),
    replicas,
    replicaCpuUsPerHeartbeat: tally.ok > 0 ? round((replicas.reduce((sum, r) => sum + r.cpu, 0) * 1e6 * seconds) / tally.ok, 0) : null,
    expiries: to.offline - from.offline,
    redis: {
      cpu: round(redisCpu, 3),
      commandsPerSecond: round(commands / seconds, 1),
      commandsPerHeartbeat: perHeartbeat(commands),
      callsPerHeartbeat: calls,
      usedMemoryMb: megabytes(to.redis.usedMemoryBytes),
    },
    postgres: {
      cpu: round(postgresCpu, 3),
      transactionsPerSecond: round((to.postgres.xactCommit - from.postgres.xactCommit) / postgresSeconds, 1),
      statementsPerSecond: round(statements / postgresSeconds, 1),
      statementsPerHeartbeat: perHeartbeat(statements),
      tuplesReadPerSecond: round(
        (to.postgres.tupReturned + to.postgres.tupFetched - from.postgres.tupReturned - from.postgres.tupFetched) / postgresSeconds,
        1,
      ),
      topStatements: statementDeltas
        .slice(0, TOP_STATEMENTS)
        .map(({ query, calls: n }) => ({ query: query.slice(0, 160), callsPerSecond: round(n / postgresSeconds, 1) })),
    },
    clientCpu: round(clientCpu, 3),
    otherCpu: round(Math.max(0, (to.machineBusyMs - from.machineBusyMs) / wallMs - measured), 3),
  };
}

function emptyTally(): CallTally {
  return { ok: 0, errors: new Map(), latenciesMs: [], firstError: undefined };
}

// ---------------------------------------------------------------------------------------------------------------
// Reporting

/** formatReplicasTable prints one row per phase, then the watch latencies and what Redis and PostgreSQL did. */
export function formatReplicasTable(header: string, results: readonly ReplicasResult[]): string {
  const lines: string[] = [header];
  for (const r of results) {
    const replicaColumns = Array.from({ length: r.replicas }, (_, i) => [`cpu ${letter(i)}`, `rss ${letter(i)} MB`]).flat();
    const columns = [
      "phase",
      "hb/s",
      "hb p50 ms",
      "hb p99 ms",
      ...replicaColumns,
      "µs/hb",
      "redis cpu",
      "redis cmd/s",
      "cmd/hb",
      "redis MB",
      "pg cpu",
      "pg xact/s",
      "pg stmt/hb",
      "expired",
      "other cpu",
    ];
    const fixed = (value: number | null, digits: number) => (value === null || Number.isNaN(value) ? "-" : value.toFixed(digits));
    const row = (name: string, p: PhaseFigures) => [
      name,
      fixed(p.heartbeatsPerSecond, 0),
      fixed(p.latencyMs.p50, 2),
      fixed(p.latencyMs.p99, 2),
      ...p.replicas.flatMap((replica) => [fixed(replica.cpu, 3), fixed(replica.rssMb, 0)]),
      fixed(p.replicaCpuUsPerHeartbeat, 0),
      fixed(p.redis.cpu, 3),
      fixed(p.redis.commandsPerSecond, 0),
      fixed(p.redis.commandsPerHeartbeat, 2),
      fixed(p.redis.usedMemoryMb, 1),
      fixed(p.postgres.cpu, 3),
      fixed(p.postgres.transactionsPerSecond, 0),
      fixed(p.postgres.statementsPerHeartbeat, 2),
      String(p.expiries),
      fixed(p.otherCpu, 2),
    ];
    const rows = [
      row("registration", r.registration),
      row("idle", r.idle),
      row("settling", r.settling),
      row("steady", r.steady),
      row(`changing ${Math.round(r.changing.changeShare * 100)}%`, r.changing),
    ];
    const widths = columns.map((column, i) => Math.max(column.length, ...rows.map((cells) => (cells[i] ?? "").length)));
    const line = (cells: readonly string[]) =>
      cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join("  ");
    const watch = (name: string, w: WatchFigures) =>
      `${name} p50/p99/max ${fixed(w.latencyMs.p50, 2)}/${fixed(w.latencyMs.p99, 2)}/${fixed(w.latencyMs.max, 2)} ms` +
      ` (${w.seen}/${w.expected} seen)`;
    const calls = (p: PhaseFigures) =>
      Object.entries(p.redis.callsPerHeartbeat)
        .map(([name, n]) => `${name} ${n}`)
        .join(", ");
    const top = (p: PhaseFigures) =>
      p.postgres.topStatements.map((s) => `${s.callsPerSecond}/s ${s.query.slice(0, 90)}`).join("\n    ") || "none";
    const errors = [r.registration, r.settling, r.steady, r.changing]
      .flatMap((p) => Object.entries(p.errors))
      .map(([name, n]) => `${name} ${n}`)
      .join(", ");
    lines.push(
      `${r.agents} agents on ${r.replicas} replicas (gateways split between them):`,
      line(columns),
      ...rows.map(line),
      "",
      `watch latency, changing phase: ${watch("same replica", r.watch.same)}; ${watch("cross replica", r.watch.cross)}`,
      `registration changes seen by each replica's watcher: ${r.registration.watchChangesSeen.join(" / ")}`,
      `peak rss MB per replica: ${r.peakRssMb.join(" / ")}; client cpu steady/changing ${fixed(r.steady.clientCpu, 2)}/${fixed(r.changing.clientCpu, 2)}`,
      `redis calls per heartbeat, steady: ${calls(r.steady)}`,
      `redis calls per heartbeat, changing: ${calls(r.changing)}`,
      `postgres, steady (${fixed(r.steady.postgres.statementsPerSecond, 0)} statements/s, ${fixed(r.steady.postgres.tuplesReadPerSecond, 0)} tuples read/s):\n    ${top(r.steady)}`,
      `errors: ${errors || "none"}`,
      "",
    );
  }
  return lines.join("\n");
}

function letter(index: number): string {
  return String.fromCharCode("A".charCodeAt(0) + index);
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function megabytes(bytes: number): number {
  return round(bytes / (1024 * 1024), 1);
}
