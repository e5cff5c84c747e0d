import type { ChildProcess } from "node:child_process";
import { waitFor } from "./wait-for.js";

/** ServerStart is a started server process ready for clients, or the log of one that exited first. */
export type ServerStart = { readonly ok: true; readonly child: ChildProcess } | { readonly ok: false; readonly log: string };

/**
 * awaitServerStart waits until serving() says the child's server answers, or the child exits (ok false, with what it
 * logged, so that the caller can try another port). A server that neither answers nor exits in time is killed, and
 * the wait fails saying what it waited for.
 */
export async function awaitServerStart(
  child: ChildProcess,
  what: string,
  serving: () => Promise<boolean>,
  timeoutMs: number,
): Promise<ServerStart> {
  let log = "";
  const collect = (chunk: string) => {
    log = (log + chunk).slice(-20_000);
  };
  child.stdout?.setEncoding("utf8").on("data", collect);
  child.stderr?.setEncoding("utf8").on("data", collect);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const ready = await waitFor(
    what,
    async () => {
      if (child.exitCode !== null || child.signalCode !== null) return "exited";
      return (await serving()) ? "ready" : undefined;
    },
    timeoutMs,
    20,
  ).catch(async (error: unknown) => {
    child.kill("SIGKILL");
    await exited;
    throw error;
  });
  if (ready === "ready") return { ok: true, child };
  await exited;
  return { ok: false, log };
}
