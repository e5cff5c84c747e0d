/**
 * registry-child-protocol is the IPC contract between bench/registry-bench.ts (the load generator) and
 * bench/registry-child.ts (the registry under test). Secrets (the mesh token, the users' API keys) travel only over
 * this channel, never through argv, the environment or stdout.
 */

/** StartMessage asks the child to open its store, create the bench users and start listening. */
export interface StartMessage {
  readonly type: "start";
  /** meshToken is the registry's mesh token, random per run. */
  readonly meshToken: string;
  /**
   * db is the store as `--db` takes it: a SQLite file (inside a temp dir the parent owns and removes), ":memory:",
   * or a postgres:// URL.
   */
  readonly db: string;
  /** users is how many users to create, each with one API key; 0 for a replica whose store another one filled. */
  readonly users: number;
  /** redis, a redis:// URL, makes the registry a replica sharing presence there; "" for a registry on its own. */
  readonly redis: string;
  /** redisPrefix starts the presence keys, per run, so that runs never see each other's providers. */
  readonly redisPrefix: string;
}

/** StatsRequest asks the child for a ResourceStats sample. */
export interface StatsRequest {
  readonly type: "stats";
  /** id pairs the request with its reply. */
  readonly id: number;
}

/** StopMessage asks the child to close the registry and its store and exit. */
export interface StopMessage {
  readonly type: "stop";
}

/** ParentMessage is anything the parent sends. */
export type ParentMessage = StartMessage | StatsRequest | StopMessage;

/** ReadyMessage says the registry listens on 127.0.0.1:port; apiKeys[i] is the key of user i. */
export interface ReadyMessage {
  readonly type: "ready";
  readonly port: number;
  readonly apiKeys: readonly string[];
}

/** ResourceStats is one sample of the child's own resource use. */
export interface ResourceStats {
  readonly type: "stats";
  readonly id: number;
  /** cpuUserUs and cpuSystemUs are process.cpuUsage(), all threads, since the child started. */
  readonly cpuUserUs: number;
  readonly cpuSystemUs: number;
  /** wallMs is the child's performance.now(), the clock the CPU fraction is divided by. */
  readonly wallMs: number;
  readonly rssBytes: number;
  /** maxRssBytes is the peak resident set since the child started. */
  readonly maxRssBytes: number;
  readonly heapUsedBytes: number;
}

/** FailedMessage reports a failure that makes the child exit. */
export interface FailedMessage {
  readonly type: "failed";
  readonly message: string;
}

/** ChildMessage is anything the child sends. */
export type ChildMessage = ReadyMessage | ResourceStats | FailedMessage;

/** isParentMessage narrows an IPC message to a ParentMessage. */
export function isParentMessage(message: unknown): message is ParentMessage {
  if (!isRecord(message)) return false;
  switch (message["type"]) {
    case "start":
      return (
        typeof message["meshToken"] === "string" &&
        typeof message["db"] === "string" &&
        typeof message["users"] === "number" &&
        typeof message["redis"] === "string" &&
        typeof message["redisPrefix"] === "string"
      );
    case "stats":
      return typeof message["id"] === "number";
    case "stop":
      return true;
    default:
      return false;
  }
}

/** isChildMessage narrows an IPC message to a ChildMessage. */
export function isChildMessage(message: unknown): message is ChildMessage {
  if (!isRecord(message)) return false;
  switch (message["type"]) {
    case "ready":
      return (
        typeof message["port"] === "number" &&
        Array.isArray(message["apiKeys"]) &&
        message["apiKeys"].every((key) => typeof key === "string")
      );
    case "stats":
      return ["id", "cpuUserUs", "cpuSystemUs", "wallMs", "rssBytes", "maxRssBytes", "heapUsedBytes"].every(
        (field) => typeof message[field] === "number",
      );
    case "failed":
      return typeof message["message"] === "string";
    default:
      return false;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}
