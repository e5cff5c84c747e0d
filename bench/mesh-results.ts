/**
 * mesh-results are the figures bench/mesh-bench.ts records for each phase, as they go into its JSON report and its
 * table (bench/mesh-report.ts). Latencies are in milliseconds, CPU in cores (CPU seconds per wall second) or in
 * microseconds per request or chunk, memory in MiB.
 */
import type { Percentiles } from "./latency-percentiles.js";
import type { ChunksResult, OpenSummary } from "./stream-client-protocol.js";
import type { WrkResult } from "./wrk-run.js";

/** TARGET_NAMES are the three ways to the simulator, in table order. */
export const TARGET_NAMES = ["direct", "nginx", "mesh"] as const;
/** TargetName is one of TARGET_NAMES. */
export type TargetName = (typeof TARGET_NAMES)[number];

/** CpuWindow is the services' and the machine's CPU over one run. */
export interface CpuWindow {
  /** cores maps each service to the cores it kept busy (CPU seconds per wall second). */
  readonly cores: Readonly<Record<string, number>>;
  /** machineCores is every process on every core. */
  readonly machineCores: number;
  readonly wallMs: number;
}

/** ChatRun is one wrk run against one target. */
export interface ChatRun {
  readonly target: TargetName;
  readonly connections: number;
  readonly wrk: WrkResult;
  readonly cpu: CpuWindow;
  /** cpuUsPerRequest is each service's CPU time per request answered. */
  readonly cpuUsPerRequest: Readonly<Record<string, number>>;
  /** otherCores is the CPU neither the services nor wrk used: other processes on a shared machine. */
  readonly otherCores: number;
}

/** TtfbRun is one target's time to first byte. */
export interface TtfbRun {
  readonly target: TargetName;
  readonly headersMs: Percentiles;
  readonly firstByteMs: Percentiles;
  readonly errors: Readonly<Record<string, number>>;
}

/** ChunksRun is one target's delivered chunks at one stream count. */
export interface ChunksRun {
  readonly target: TargetName;
  readonly streams: number;
  readonly tokensPerSecondPerStream: number;
  readonly offeredPerSecond: number;
  readonly result: ChunksResult;
  /** cpu covers the counting window. */
  readonly cpu: CpuWindow | undefined;
  /** cpuUsPerChunk is each service's CPU time per chunk delivered in the window. */
  readonly cpuUsPerChunk: Readonly<Record<string, number>>;
}

/** HoldRun is the mesh's memory with many slow streams open. */
export interface HoldRun {
  readonly streams: number;
  readonly tokensPerSecond: number;
  readonly open: OpenSummary | undefined;
  readonly windowMs: number;
  readonly eventsPerSecond: number;
  readonly streamsEnded: number;
  readonly clientRssMb: number;
  /** rssMb has each service's resident set before, once the streams were open, and after the window. */
  readonly rssMb: Readonly<
    Record<
      "gateway" | "agent" | "simulator",
      { readonly idle: number; readonly open: number; readonly held: number; readonly peak: number }
    >
  >;
  /** cores is each service's CPU while the streams were held. */
  readonly cores: Readonly<Record<string, number>>;
}

/** RegistryFigures are the registry bench's figures for one agent count (see bench/registry-bench.ts). */
export interface RegistryFigures {
  readonly agents: number;
  readonly heartbeatsPerSecondMax: number;
  readonly cpuAtMax: number;
  readonly cpuUsPerHeartbeat: number | null;
  readonly pacedPerSecond: number;
  /** pacedTargetPerSecond is one heartbeat per agent per interval; pacedPerSecond falls short when the machine did. */
  readonly pacedTargetPerSecond: number;
  readonly cpuAtPaced: number;
  /** cpuAtTarget scales cpuAtPaced to pacedTargetPerSecond (CPU per heartbeat times the target rate). */
  readonly cpuAtTarget: number | null;
  readonly watchP50Ms: number | null;
  readonly watchP99Ms: number | null;
  readonly watchSeen: number;
  readonly watchExpected: number;
  readonly rssMb: number;
  readonly otherCpuAtMax: number;
  readonly file: string;
}

/** round rounds to `digits` decimals, for the JSON report. */
export function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** megabytes converts bytes to MiB with one decimal. */
export function megabytes(bytes: number): number {
  return round(bytes / (1024 * 1024), 1);
}

/** MeshResults is everything one run measured, phase by phase (an empty list for a phase not run). */
export interface MeshResults {
  chat: ChatRun[];
  ttfb: TtfbRun[];
  chunks: ChunksRun[];
  hold: HoldRun | undefined;
  registry: RegistryFigures | undefined;
}
