/**
 * replica-backends starts what registry replicas share for the registry bench, a throwaway PostgreSQL (the store) and
 * Redis (presence), through the test fixtures, and samples what each costs from outside: Redis' own counters (INFO
 * cpu, stats, commandstats, memory), PostgreSQL's (pg_stat_database, pg_stat_statements) and its processes' CPU time
 * in /proc (Linux only). The bench's own sampling queries are left out of the statement counts.
 */
import { readdirSync, readFileSync } from "node:fs";
import { Redis } from "ioredis";
import pg from "pg";
import { type PostgresServer, startPostgres } from "../test/support/postgres-fixture.js";
import { type RedisServer, startRedis } from "../test/support/redis-fixture.js";
import { childPids, sampleProcess } from "./process-stats.js";

/** SAMPLE_MARK tags the bench's own queries so that pg_stat_statements' counts can leave them out. */
const SAMPLE_MARK = "/* registry-bench sample */";

/** RedisSample is Redis' counters at one moment. */
export interface RedisSample {
  /** cpuMs is used_cpu_user + used_cpu_sys, every thread of the server since it started. */
  readonly cpuMs: number;
  readonly commandsProcessed: number;
  /** calls is commandstats' calls by command name (a script's inner commands are counted too). */
  readonly calls: ReadonlyMap<string, number>;
  readonly usedMemoryBytes: number;
  readonly wallMs: number;
}

/** PostgresSample is PostgreSQL's counters for the bench database at one moment. */
export interface PostgresSample {
  /** cpuMs is the postmaster's and its children's (backends, background workers) CPU time, from /proc. */
  readonly cpuMs: number;
  readonly xactCommit: number;
  readonly tupReturned: number;
  readonly tupFetched: number;
  /** statements is pg_stat_statements' calls per normalised statement, the bench's own left out. */
  readonly statements: ReadonlyMap<string, number>;
  readonly wallMs: number;
}

/** ReplicaBackends are the running servers and their samplers. */
export interface ReplicaBackends {
  /** db is the postgres:// URL of the bench database, migrated by the first replica that opens it. */
  readonly db: string;
  readonly redisUrl: string;
  sampleRedis(): Promise<RedisSample>;
  samplePostgres(): Promise<PostgresSample>;
  /** stop closes the samplers' connections and stops both servers. */
  stop(): Promise<void>;
}

/** startReplicaBackends starts PostgreSQL and Redis on free loopback ports and makes the bench database. */
export async function startReplicaBackends(): Promise<ReplicaBackends> {
  let postgres: PostgresServer | undefined;
  let redisServer: RedisServer | undefined;
  let redis: Redis | undefined;
  let client: pg.Client | undefined;
  const stop = async () => {
    redis?.disconnect();
    await client?.end().catch(() => {});
    await Promise.allSettled([postgres?.stop(), redisServer?.stop()]);
  };
  try {
    [postgres, redisServer] = await Promise.all([startPostgres(), startRedis()]);
    const database = await postgres.createDatabase();
    const db = postgres.url(database);
    client = new pg.Client({ connectionString: db });
    await client.connect();
    await client.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    redis = new Redis(redisServer.url(), { maxRetriesPerRequest: 1 });
    const postmasterPid = findPostmaster(postgres.port);
    const sampler = client;
    const info = redis;
    return {
      db,
      redisUrl: redisServer.url(),
      sampleRedis: () => sampleRedis(info),
      samplePostgres: () => samplePostgres(sampler, database, postmasterPid),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function sampleRedis(redis: Redis): Promise<RedisSample> {
  const text = await redis.info("all");
  const wallMs = performance.now();
  const fields = new Map<string, string>();
  const calls = new Map<string, number>();
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1);
    if (name.startsWith("cmdstat_")) {
      const match = /(?:^|,)calls=(\d+)/.exec(value);
      if (match) calls.set(name.slice("cmdstat_".length), Number(match[1]));
    } else {
      fields.set(name, value);
    }
  }
  const number = (name: string) => Number(fields.get(name) ?? Number.NaN);
  return {
    cpuMs: (number("used_cpu_user") + number("used_cpu_sys")) * 1000,
    commandsProcessed: number("total_commands_processed"),
    calls,
    usedMemoryBytes: number("used_memory"),
    wallMs,
  };
}

async function samplePostgres(client: pg.Client, database: string, postmasterPid: number | undefined): Promise<PostgresSample> {
  const [stats, statements] = await Promise.all([
    client.query<{ xact_commit: string; tup_returned: string; tup_fetched: string }>(
      `${SAMPLE_MARK} SELECT xact_commit, tup_returned, tup_fetched FROM pg_stat_database WHERE datname = $1`,
      [database],
    ),
    client.query<{ query: string; calls: string }>(
      `${SAMPLE_MARK} SELECT s.query, s.calls FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1`,
      [database],
    ),
  ]);
  const wallMs = performance.now();
  const row = stats.rows[0];
  const counts = new Map<string, number>();
  for (const { query, calls } of statements.rows) {
    if (query.includes(SAMPLE_MARK) || /pg_stat_statements|CREATE EXTENSION/i.test(query)) continue;
    const key = query.replace(/\s+/g, " ").trim();
    counts.set(key, (counts.get(key) ?? 0) + Number(calls));
  }
  return {
    cpuMs: postmasterPid === undefined ? Number.NaN : processTreeCpuMs(postmasterPid),
    xactCommit: Number(row?.xact_commit ?? Number.NaN),
    tupReturned: Number(row?.tup_returned ?? Number.NaN),
    tupFetched: Number(row?.tup_fetched ?? Number.NaN),
    statements: counts,
    wallMs,
  };
}

/** processTreeCpuMs is the CPU time of a process and its children (a backend that exited takes its time along). */
function processTreeCpuMs(pid: number): number {
  return [pid, ...childPids(pid)].reduce((sum, each) => sum + (sampleProcess(each)?.cpuMs ?? 0), 0);
}

/** findPostmaster finds the server listening on port by its command line (`postgres -D … -p <port>`). */
function findPostmaster(port: number): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\u0000");
      const portAt = argv.indexOf("-p");
      if (argv[0]?.endsWith("/postgres") && portAt > 0 && argv[portAt + 1] === String(port)) return Number(entry);
    } catch {
      // Gone while listing, or not ours to read.
    }
  }
  return undefined;
}
