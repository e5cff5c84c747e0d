/**
 * registry-child-process starts bench/registry-child.ts, the registry under test, in a process of its own and talks
 * to it over IPC (registry-child-protocol.ts).
 */
import { fileURLToPath } from "node:url";
import { forkTsx, stopProcess } from "./process-launcher.js";
import { isChildMessage, type ParentMessage, type ResourceStats } from "./registry-child-protocol.js";

/** CHILD_READY_TIMEOUT_MS bounds the registry child's start (tsx compiles it on the fly). */
const CHILD_READY_TIMEOUT_MS = 30_000;
/** CHILD_STATS_TIMEOUT_MS bounds one resource sample over IPC. */
const CHILD_STATS_TIMEOUT_MS = 5_000;
/** CHILD_EXIT_TIMEOUT_MS is how long the child may take to close before it is killed. */
const CHILD_EXIT_TIMEOUT_MS = 5_000;

const CHILD_PATH = fileURLToPath(new URL("./registry-child.ts", import.meta.url));

/** RegistryChildOptions configures startRegistryChild. */
export interface RegistryChildOptions {
  /** db is the SQLite file, ":memory:" or a postgres:// URL. */
  readonly db: string;
  readonly meshToken: string;
  /** users is how many users the child creates, one API key each (0 when another replica made them). */
  readonly users: number;
  /** redis, when set, makes the child a replica sharing presence there under redisPrefix. */
  readonly redis?: { readonly url: string; readonly prefix: string };
}

/** RegistryChild is the registry process under test, listening on 127.0.0.1:port. */
export interface RegistryChild {
  readonly port: number;
  readonly pid: number;
  /** apiKeys[i] is user i's key; never printed. */
  readonly apiKeys: readonly string[];
  /** stats samples the child's CPU time and memory. */
  stats(): Promise<ResourceStats>;
  /** stop asks the child to close and exit, and kills it if it does not in time. */
  stop(): Promise<void>;
}

/** startRegistryChild forks bench/registry-child.ts under tsx and resolves once its registry listens. */
export async function startRegistryChild(options: RegistryChildOptions): Promise<RegistryChild> {
  const profileDir = process.env.REGISTRY_CPU_PROF;
  const child = forkTsx(CHILD_PATH, { execArgv: profileDir ? ["--cpu-prof", "--cpu-prof-dir", profileDir] : [] });
  const pendingStats = new Map<number, { resolve: (stats: ResourceStats) => void; reject: (error: Error) => void }>();
  let nextStatsId = 1;
  let failure: Error | undefined;
  let onReady: ((ready: { port: number; apiKeys: readonly string[] }) => void) | undefined;
  let onFailure: ((error: Error) => void) | undefined;

  const failAll = (error: Error) => {
    failure ??= error;
    onFailure?.(failure);
    for (const pending of pendingStats.values()) pending.reject(failure);
    pendingStats.clear();
  };
  child.on("message", (message: unknown) => {
    if (!isChildMessage(message)) return failAll(new Error("registry child sent an unexpected IPC message"));
    switch (message.type) {
      case "ready":
        return onReady?.(message);
      case "stats": {
        const pending = pendingStats.get(message.id);
        pendingStats.delete(message.id);
        return pending?.resolve(message);
      }
      case "failed":
        return failAll(new Error(`registry child failed: ${message.message}`));
    }
  });
  child.once("exit", (code, signal) => failAll(new Error(`registry child exited (${signal ?? `code ${code}`})`)));
  child.once("error", (error) => failAll(new Error(`registry child: ${error.message}`, { cause: error })));

  const send = (message: ParentMessage) => {
    if (child.connected) child.send(message);
  };

  const stop = () => stopProcess(child, CHILD_EXIT_TIMEOUT_MS, () => send({ type: "stop" }));

  try {
    const ready = await withTimeout(
      new Promise<{ port: number; apiKeys: readonly string[] }>((resolveReady, rejectReady) => {
        if (failure) return rejectReady(failure);
        onReady = resolveReady;
        onFailure = rejectReady;
        send({
          type: "start",
          meshToken: options.meshToken,
          db: options.db,
          users: options.users,
          redis: options.redis?.url ?? "",
          redisPrefix: options.redis?.prefix ?? "",
        });
      }),
      CHILD_READY_TIMEOUT_MS,
      "registry child did not report ready",
    );
    onFailure = undefined;
    return {
      port: ready.port,
      pid: child.pid ?? 0,
      apiKeys: ready.apiKeys,
      stop,
      stats: () =>
        withTimeout(
          new Promise<ResourceStats>((resolveStats, rejectStats) => {
            if (failure) return rejectStats(failure);
            const id = nextStatsId++;
            pendingStats.set(id, { resolve: resolveStats, reject: rejectStats });
            send({ type: "stats", id });
          }),
          CHILD_STATS_TIMEOUT_MS,
          "registry child did not answer a stats request",
        ),
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rejectTimeout) => {
    timer = setTimeout(() => rejectTimeout(new Error(`${message} within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
