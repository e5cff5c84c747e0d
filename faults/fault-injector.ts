import { setTimeout as sleep } from "node:timers/promises";
import { isKill, type PlannedFault } from "./fault-schedule.js";
import type { MeshProcess } from "./mesh-process.js";

/** InjectedFault is a fault as it happened: when it struck, when the target was back, and what went wrong doing it. */
export interface InjectedFault extends PlannedFault {
  /** injectedAtMs is when the signal went out (ms since the load began); undefined if it was skipped. */
  readonly injectedAtMs: number | undefined;
  /** healedAtMs is when the target served again: SIGCONT sent, or the restarted process ready. */
  readonly healedAtMs: number | undefined;
  /** pid is the process that received the fault's signal. */
  readonly pid: number | undefined;
  readonly note: string;
}

/** InjectorOptions are what the injector works on. */
export interface InjectorOptions {
  readonly processes: ReadonlyMap<string, MeshProcess>;
  /** now is the suite's clock: ms since the load began. */
  readonly now: () => number;
  /** onEvent hears each step, for the live log. */
  readonly onEvent?: (line: string) => void;
}

/**
 * injectFaults carries out a schedule: each fault strikes at its time (faults overlap when the schedule says so), and
 * each target is healed after its down time: a killed process is restarted with the same command line (same port,
 * same database), a stopped one is continued. It resolves with every fault once all have healed.
 */
export async function injectFaults(plan: readonly PlannedFault[], options: InjectorOptions): Promise<InjectedFault[]> {
  return Promise.all(plan.map((fault) => inject(fault, options)));
}

async function inject(fault: PlannedFault, options: InjectorOptions): Promise<InjectedFault> {
  const { now } = options;
  const say = (text: string) =>
    options.onEvent?.(`+${(now() / 1000).toFixed(1)}s fault #${fault.id} ${fault.kind} ${fault.target}: ${text}`);
  const wait = fault.atMs - now();
  if (wait > 0) await sleep(wait);
  const target = options.processes.get(fault.target);
  // On a loaded machine a restart may outlast the schedule's allowance: strike once the target is back, not never.
  if (target?.state === "starting") {
    say("waiting for the target's restart to finish");
    await target.settled();
  }
  if (target?.state !== "running") {
    const note = `skipped: ${fault.target} is ${target?.state ?? "unknown"}`;
    say(note);
    return { ...fault, injectedAtMs: undefined, healedAtMs: undefined, pid: target?.pid, note };
  }
  const pid = target.pid;
  const injectedAtMs = now();
  const kill = isKill(fault.kind);
  try {
    if (kill) target.kill();
    else target.stop();
    say(`${kill ? "SIGKILL" : "SIGSTOP"} pid ${pid}`);
    await sleep(fault.downMs);
    if (kill) {
      say("restarting");
      await target.start();
    } else {
      target.resume();
    }
    const healedAtMs = now();
    say(kill ? `restarted as pid ${target.pid}` : "SIGCONT");
    return { ...fault, injectedAtMs, healedAtMs, pid, note: kill ? `restarted as pid ${target.pid}` : "continued" };
  } catch (error) {
    const note = `could not heal: ${error instanceof Error ? error.message : String(error)}`;
    say(note);
    return { ...fault, injectedAtMs, healedAtMs: undefined, pid, note };
  }
}
