import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { Redis } from "ioredis";
import { freeLoopbackPort } from "./prometheus-tools.js";
import { awaitServerStart, type ServerStart } from "./server-start.js";

/**
 * The tests' Redis is Debian's own server (package `redis-server`), without persistence, on a free loopback port. A
 * test file starts one, each test takes a fresh logical database or key prefix of its own, and the file stops it.
 */

/** REDIS_SERVER is the server binary; Debian's package puts it on PATH. */
const REDIS_SERVER = "redis-server";
const READY_TIMEOUT_MS = 10_000;
const START_ATTEMPTS = 5;

/** redisServerInstalled tells whether redis-server can be run here. */
export function redisServerInstalled(): boolean {
  try {
    execFileSync(REDIS_SERVER, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * skipWithoutRedis skips a suite on a machine without Debian's Redis server, saying so; in CI, which installs it
 * (.ci/run), a missing server is a failure instead.
 */
export function skipWithoutRedis(context: Mocha.Context): void {
  if (redisServerInstalled()) return;
  const message = `${REDIS_SERVER} is missing (Debian package 'redis-server')`;
  if (process.env.CI) throw new Error(message);
  console.warn(`      skipped: ${message}`);
  context.skip();
}

/** RedisServer is a running throwaway server on loopback. */
export interface RedisServer {
  readonly port: number;
  /** url is the server's redis:// URL, on logical database db (0 by default). */
  url(db?: number): string;
  /** flush empties every database, so that the next test starts clean. */
  flush(): Promise<void>;
  /** pause freezes the server (SIGSTOP): connections stay open and nothing answers, as in a stalled machine. */
  pause(): void;
  /** resume thaws a paused server (SIGCONT). */
  resume(): void;
  /** kill ends the server at once (SIGKILL); start() on the handle brings it back on the same port, empty. */
  kill(): Promise<void>;
  /** restart starts a killed server again on the same port. */
  restart(): Promise<void>;
  /** stop shuts the server down. */
  stop(): Promise<void>;
}

/** startRedis starts a server on a free loopback port, ready for commands. */
export async function startRedis(): Promise<RedisServer> {
  for (let attempt = 1; ; attempt++) {
    const port = await freeLoopbackPort();
    const started = await startServer(port);
    if (started.ok) return server(started.child, port);
    if (attempt >= START_ATTEMPTS || !/Address already in use|bind/i.test(started.log)) {
      throw new Error(`Redis did not start on port ${port}: ${started.log.trim().slice(-2000)}`);
    }
  }
}

async function startServer(port: number): Promise<ServerStart> {
  // No snapshot, no append-only file: the data is thrown away with the process.
  const child = spawn(
    REDIS_SERVER,
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--databases", "64", "--loglevel", "warning"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  return awaitServerStart(child, `Redis to answer PING on port ${port}`, () => answersPing(port), READY_TIMEOUT_MS);
}

async function answersPing(port: number): Promise<boolean> {
  const client = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on("error", () => {});
  try {
    await client.connect();
    return (await client.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

function server(first: ChildProcess, port: number): RedisServer {
  let child = first;
  const exitedOf = (process: ChildProcess) =>
    new Promise<void>((resolve) =>
      process.exitCode !== null || process.signalCode !== null ? resolve() : process.once("exit", () => resolve()),
    );
  return {
    port,
    url: (db = 0) => `redis://127.0.0.1:${port}/${db}`,
    async flush() {
      const client = new Redis({ host: "127.0.0.1", port, maxRetriesPerRequest: 1 });
      try {
        await client.flushall();
      } finally {
        client.disconnect();
      }
    },
    pause: () => child.kill("SIGSTOP"),
    resume: () => child.kill("SIGCONT"),
    async kill() {
      child.kill("SIGKILL");
      await exitedOf(child);
    },
    async restart() {
      const started = await startServer(port);
      if (!started.ok) throw new Error(`Redis did not start again on port ${port}: ${started.log.trim().slice(-2000)}`);
      child = started.child;
    },
    async stop() {
      child.kill("SIGCONT");
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exitedOf(child);
      clearTimeout(timer);
    },
  };
}
