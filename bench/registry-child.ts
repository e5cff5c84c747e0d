/**
 * registry-child is the registry under test for bench/registry-bench.ts, in a process of its own so that its CPU and
 * memory can be measured apart from the load generator. It is started by the bench with `fork` and driven only over
 * IPC (see registry-child-protocol.ts): `start` opens the store (SQLite or PostgreSQL), creates the bench users and
 * their API keys, joins the other replicas through Redis when asked to, and listens on 127.0.0.1:0; `stats` samples process.cpuUsage() and the resident set; `stop` closes everything and exits.
 * It is not meant to be run by hand.
 */
import { createRegistry, type Registry } from "../services/registry/registry.js";
import { openRegistryStore } from "../services/registry/store/open-registry-store.js";
import type { RegistryStore } from "../services/registry/store/registry-store.js";
import { type ChildMessage, isParentMessage, type ResourceStats, type StartMessage } from "./registry-child-protocol.js";

/** CLOSE_GRACE_MS is how long calls in flight may finish when the bench stops the registry. */
const CLOSE_GRACE_MS = 1_000;

let server: Registry | undefined;
let store: RegistryStore | undefined;
let stopping: Promise<never> | undefined;

function send(message: ChildMessage): void {
  process.send?.(message);
}

async function start(message: StartMessage): Promise<void> {
  store = await openRegistryStore(message.db);
  const apiKeys: string[] = [];
  for (let i = 0; i < message.users; i++) {
    const created = await store.createApiKey(`bench-user-${i}`, "registry bench");
    apiKeys.push(created.apiKey);
  }
  server = createRegistry({
    store,
    meshToken: message.meshToken,
    listen: { host: "127.0.0.1", port: 0 },
    shutdownGraceMs: CLOSE_GRACE_MS,
    ...(message.redis === "" ? {} : { redis: message.redis, redisPrefix: message.redisPrefix }),
  });
  const { port } = (await server.listen()).grpc;
  send({ type: "ready", port, apiKeys });
}

function stats(id: number): ResourceStats {
  const cpu = process.cpuUsage();
  const memory = process.memoryUsage();
  return {
    type: "stats",
    id,
    cpuUserUs: cpu.user,
    cpuSystemUs: cpu.system,
    wallMs: performance.now(),
    rssBytes: memory.rss,
    // resourceUsage reports maxRSS in kilobytes.
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    heapUsedBytes: memory.heapUsed,
  };
}

/** stop closes the registry and the store once, however many times it is asked, then exits. */
function stop(exitCode: number): Promise<never> {
  stopping ??= closeAndExit(exitCode);
  return stopping;
}

async function closeAndExit(exitCode: number): Promise<never> {
  try {
    await server?.close();
    await store?.close();
  } catch (error) {
    process.stderr.write(`registry-child: close failed: ${describe(error)}\n`);
    exitCode = 1;
  }
  // Exit explicitly: the bench waits for this process and must not hang on a handle someone forgot to unref.
  process.exit(exitCode);
}

function fail(error: unknown): void {
  send({ type: "failed", message: describe(error) });
  void stop(1);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

if (process.send === undefined) {
  process.stderr.write("registry-child: run me through bench/registry-bench.ts, which talks to me over IPC\n");
  process.exit(2);
}

process.on("message", (message: unknown) => {
  if (!isParentMessage(message)) return fail(new Error("unexpected IPC message"));
  switch (message.type) {
    case "start":
      return void start(message).catch(fail);
    case "stats":
      return send(stats(message.id));
    case "stop":
      return void stop(0);
  }
});
// A parent that died (or was killed) must not leave the registry running.
process.on("disconnect", () => void stop(0));
