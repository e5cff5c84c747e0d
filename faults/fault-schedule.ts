import type { Random } from "./seeded-random.js";

/** FaultKind is one way a part of the mesh fails. */
export type FaultKind =
  | "agent-kill"
  | "agent-stop"
  | "sim-kill"
  | "sim-stop"
  | "registry-kill"
  | "registry-stop"
  | "gateway-kill"
  | "gateway-stop";

/** FAULT_KINDS lists every kind; a schedule covers each at least once when it has the time. */
export const FAULT_KINDS: readonly FaultKind[] = [
  "agent-kill",
  "agent-stop",
  "sim-kill",
  "sim-stop",
  "registry-kill",
  "registry-stop",
  "gateway-kill",
  "gateway-stop",
];

/** Range is an inclusive [min, max] in milliseconds. */
export type Range = readonly [number, number];

/** PlannedFault is one fault of a schedule: at atMs (since the load began) target fails for downMs. */
export interface PlannedFault {
  readonly id: number;
  readonly kind: FaultKind;
  /** target is the process's name: "registry", "gateway", "agent-2", "sim-3". */
  readonly target: string;
  readonly atMs: number;
  /** downMs is how long a killed process stays dead before its restart, or a stopped one stays stopped. */
  readonly downMs: number;
}

/** FaultPlanOptions shapes a schedule. */
export interface FaultPlanOptions {
  readonly agents: number;
  /** kinds are the kinds to draw from. */
  readonly kinds: readonly FaultKind[];
  /** startMs is when the first fault may strike (the load warms up first). */
  readonly startMs: number;
  /** endMs is when the last fault must have healed, so that the load also sees the mesh recover. */
  readonly endMs: number;
  /** gapMs is the range of the pause between two faults' starts. */
  readonly gapMs: Range;
  /** killDownMs is how long a killed process stays dead. */
  readonly killDownMs: Range;
  readonly agentStallMs: Range;
  readonly simStallMs: Range;
  readonly registryStallMs: Range;
  readonly gatewayStallMs: Range;
  /**
   * soloTailMs is how long after a gateway fault's healing no other fault strikes: the agents are dialling back then,
   * and an agent that is down itself, or a registry that is away, would hide whether they come back in time.
   */
  readonly soloTailMs: number;
  /** restartAllowanceMs is how long a restart may take; a process is not faulted again before. */
  readonly restartAllowanceMs: number;
  /** maxConcurrent bounds the faults active at once. */
  readonly maxConcurrent: number;
}

/**
 * planFaults draws a fault schedule from random: the kinds in an order that covers each of them first (kills before
 * stalls, shuffled; the gateway's kill first and its stall last), then drawn at random; targets that are healthy at the time; at most maxConcurrent faults at once. A
 * gateway fault has the mesh to itself: it waits until no other fault is active, and none strikes until soloTailMs
 * after it healed. Two runs with the same seed strike the same processes at the same moments.
 */
export function planFaults(random: Random, options: FaultPlanOptions): PlannedFault[] {
  const faults: PlannedFault[] = [];
  const busyUntil = new Map<string, number>();
  const activeAt = (t: number) => faults.filter((f) => f.atMs <= t && t < f.atMs + f.downMs + allowance(f)).length;
  const allowance = (fault: { kind: FaultKind }) => (isKill(fault.kind) ? options.restartAllowanceMs : 0);
  // Kills first: a restart takes longer than a stall, so they are the ones that would not fit late in a short run. A
  // gateway fault holds the mesh alone, so the gateway's kill opens the run, before anything is active it would wait
  // for, and its stall closes it, where its solo time after the healing costs no other fault its place.
  const gateway = options.kinds.filter(isGatewayFault);
  const others = options.kinds.filter((k) => !isGatewayFault(k));
  let covering = [
    ...gateway.filter(isKill),
    ...random.shuffled(others.filter(isKill)),
    ...random.shuffled(others.filter((k) => !isKill(k))),
    ...gateway.filter((k) => !isKill(k)),
  ];
  let t = options.startMs;
  /** soloUntil is when the last gateway fault's solo time ends. */
  let soloUntil = 0;
  const fits = (kind: FaultKind, downMs: number) => t + downMs + allowance({ kind }) <= options.endMs;
  const free = (kind: FaultKind) => targetsOf(kind, options.agents).filter((name) => (busyUntil.get(name) ?? 0) <= t);
  while (options.kinds.length > 0 && t < options.endMs) {
    // Kinds not struck yet come first, in their shuffled order; one whose shortest outage no longer fits is given up.
    covering = covering.filter((kind) => fits(kind, downRange(kind, options)[0]));
    const candidates = covering.length > 0 ? covering : [random.pick(options.kinds)];
    const kind = candidates.find((k) => free(k).length > 0);
    // A gateway fault waits for the others to heal rather than being passed over, or a busy schedule would starve it.
    const waiting = t < soloUntil || (kind !== undefined && isGatewayFault(kind) && activeAt(t) > 0);
    if (kind === undefined || waiting || activeAt(t) >= options.maxConcurrent) {
      t += 250;
      continue;
    }
    const [min, max] = downRange(kind, options);
    const downMs = Math.min(random.int(min, max), options.endMs - t - allowance({ kind }));
    if (downMs < min) {
      t += 250;
      continue;
    }
    const target = random.pick(free(kind));
    faults.push({ id: faults.length + 1, kind, target, atMs: t, downMs });
    busyUntil.set(target, t + downMs + allowance({ kind }) + 500);
    if (isGatewayFault(kind)) soloUntil = t + downMs + allowance({ kind }) + options.soloTailMs;
    covering = covering.filter((k) => k !== kind);
    t += random.int(...options.gapMs);
  }
  return faults;
}

/** isGatewayFault tells the faults of the gateway the agents are attached to, after which the agents must come back. */
export function isGatewayFault(kind: FaultKind): boolean {
  return kind.startsWith("gateway-");
}

/** isKill tells a SIGKILL (then a restart) from a SIGSTOP (then a SIGCONT). */
export function isKill(kind: FaultKind): boolean {
  return kind.endsWith("-kill");
}

function downRange(kind: FaultKind, options: FaultPlanOptions): Range {
  switch (kind) {
    case "agent-stop":
      return options.agentStallMs;
    case "sim-stop":
      return options.simStallMs;
    case "registry-stop":
      return options.registryStallMs;
    case "gateway-stop":
      return options.gatewayStallMs;
    case "agent-kill":
    case "sim-kill":
    case "registry-kill":
    case "gateway-kill":
      return options.killDownMs;
  }
}

function targetsOf(kind: FaultKind, agents: number): string[] {
  const numbered = (prefix: string) => Array.from({ length: agents }, (_, i) => `${prefix}-${i + 1}`);
  switch (kind) {
    case "agent-kill":
    case "agent-stop":
      return numbered("agent");
    case "sim-kill":
    case "sim-stop":
      return numbered("sim");
    case "registry-kill":
    case "registry-stop":
      return ["registry"];
    case "gateway-kill":
    case "gateway-stop":
      return ["gateway"];
  }
}
