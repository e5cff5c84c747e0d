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
  /**
   * onHealed hears of each fault as soon as its target serves again, and returns what must follow the healing (an
   * exclusive fault is over only once that has settled).
   */
  readonly onHealed?: (fault: InjectedFault & { readonly healedAtMs: number }) => Promise<unknown> | undefined;
  /** exclusive tells the faults that must strike alone: after every other has healed, and before any other strikes. */
  readonly exclusive?: (fault: PlannedFault) => boolean;
}

/**
 * injectFaults carries out a schedule: each fault strikes at its time (faults overlap when the schedule says so), and
 * each target is healed after its down time: a killed process is restarted with the same command line (same port,
 * same database), a stopped one is continued. An exclusive fault keeps the mesh to itself even when restarts take
 * longer than the schedule allowed: it waits for the faults under way to be over, and later faults wait for it and
 * for what follows its healing. It resolves with every fault once all have healed.
 */
export async function injectFaults(plan: readonly PlannedFault[], options: InjectorOptions): Promise<InjectedFault[]> {
  const { now } = options;
  /** active are the lifetimes of the faults that struck and are not over. */
  const active = new Set<Promise<void>>();
  /** solo is the lifetime of the exclusive fault that struck or is next to strike, while it is not over. */
  let solo: Promise<void> | undefined;
  return Promise.all(
    plan.map(async (fault) => {
      const wait = fault.atMs - now();
      if (wait > 0) await sleep(wait);
      let over = () => {};
      const lifetime = new Promise<void>((resolve) => {
        over = resolve;
      });
      const say = sayer(fault, options);
      if (options.exclusive?.(fault)) {
        const before = solo;
        solo = lifetime;
        void lifetime.then(() => {
          if (solo === lifetime) solo = undefined;
        });
        if (before || active.size > 0) say("waiting for the faults under way to be over");
        await before;
        while (active.size > 0) await Promise.all([...active]);
      } else if (solo) {
        say("waiting for an exclusive fault to be over");
        while (solo) await solo;
      }
      active.add(lifetime);
      try {
        const injected = await inject(fault, options, say);
        if (injected.healedAtMs !== undefined) await options.onHealed?.({ ...injected, healedAtMs: injected.healedAtMs });
        return injected;
      } finally {
        active.delete(lifetime);
        over();
      }
    }),
  );
}

function sayer(fault: PlannedFault, options: InjectorOptions): (text: string) => void {
  return (text) => options.onEvent?.(`+${(options.now() / 1000).toFixed(1)}s fault #${fault.id} ${fault.kind} ${fault.target}: ${text}`);
}

async function inject(fault: PlannedFault, options: InjectorOptions, say: (text: string) => void): Promise<InjectedFault> {
  const { now } = options;
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
