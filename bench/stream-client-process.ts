/**
 * stream-client-process runs one job of bench/stream-client.ts in a fresh child process and resolves its result; a
 * hold job calls back when its streams are open and again after its counting window, and is told to close once those
 * callbacks (which sample the services' memory) are done.
 */
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { forkTsx } from "./process-launcher.js";
import {
  type ChunksResult,
  type HeldMessage,
  isChildMessage,
  type Job,
  type OpenedMessage,
  type ParentMessage,
  type TtfbResult,
} from "./stream-client-protocol.js";

const CHILD_PATH = fileURLToPath(new URL("./stream-client.ts", import.meta.url));

/** live holds the children running now, so that the bench can kill them when it exits abruptly. */
const live = new Set<ChildProcess>();

/** StreamJobOptions tunes one run. */
export interface StreamJobOptions {
  /** openFiles raises the child's RLIMIT_NOFILE through prlimit (for thousands of streams). */
  readonly openFiles: number | undefined;
  /** timeoutMs bounds the whole job; the child is killed after it. */
  readonly timeoutMs: number;
  readonly onOpened?: (message: OpenedMessage) => void | Promise<void>;
  readonly onHeld?: (message: HeldMessage) => void | Promise<void>;
}

/** runStreamJob forks a stream client, runs job and resolves what it reports. */
export function runStreamJob(job: Job & { type: "ttfb" }, options: StreamJobOptions): Promise<TtfbResult>;
export function runStreamJob(job: Job & { type: "chunks" }, options: StreamJobOptions): Promise<ChunksResult>;
export function runStreamJob(job: Job & { type: "hold" }, options: StreamJobOptions): Promise<undefined>;
export function runStreamJob(job: Job, options: StreamJobOptions): Promise<TtfbResult | ChunksResult | undefined> {
  const child = forkTsx(CHILD_PATH, { openFiles: options.openFiles });
  live.add(child);
  return new Promise<TtfbResult | ChunksResult | undefined>((resolve, reject) => {
    let settled = false;
    const settle = (error: Error | undefined, result?: TtfbResult | ChunksResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) {
        child.kill("SIGKILL");
        reject(error);
      } else {
        resolve(result);
      }
    };
    const timer = setTimeout(
      () => settle(new Error(`the stream client did not finish its ${job.type} job within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    const send = (message: ParentMessage) => {
      if (child.connected) child.send(message);
    };
    child.on("message", (message: unknown) => {
      if (!isChildMessage(message)) return settle(new Error("the stream client sent an unexpected message"));
      switch (message.type) {
        case "opened":
          return void Promise.resolve(options.onOpened?.(message)).catch((error: unknown) => settle(asError(error)));
        case "held":
          return void Promise.resolve(options.onHeld?.(message)).then(
            () => send({ type: "close" }),
            (error: unknown) => settle(asError(error)),
          );
        case "done":
          return settle(undefined, message.result.type === "hold" ? undefined : message.result);
        case "failed":
          return settle(new Error(`the stream client failed: ${message.message}`));
      }
    });
    child.once("error", (error) => settle(error));
    child.once("exit", (code, signal) => {
      live.delete(child);
      // Messages still in the IPC pipe are delivered after 'exit'; give them a moment before calling it a failure.
      setTimeout(() => settle(new Error(`the stream client exited before reporting (${signal ?? `code ${code}`})`)), 200);
    });
    send({ type: "job", job });
  });
}

/** killStreamClients kills every stream client still running, synchronously. */
export function killStreamClients(): void {
  for (const child of live) child.kill("SIGKILL");
  live.clear();
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
