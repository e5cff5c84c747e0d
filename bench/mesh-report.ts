/**
 * mesh-report turns bench/mesh-bench.ts's results into its one table, one row per figure with a column for each way
 * to the simulator (direct, nginx, mesh), what nginx and the mesh add to direct, the mesh/nginx ratio, and for the
 * figures the project sets a performance target for, whether this run met it; and into the notes below the table
 * (noise, errors).
 */
import { cpus } from "node:os";
import { type ChatRun, type MeshResults, TARGET_NAMES, type TargetName, type TtfbRun } from "./mesh-results.js";
import type { WrkResult } from "./wrk-run.js";

// The project's performance targets.
const TARGET_ADDED_P50_MS = 0.5;
const TARGET_ADDED_P99_MS = 2;
const TARGET_REQUESTS_PER_SECOND = 5_000;
const TARGET_CHUNK_RATIO = 0.5;
const TARGET_TTFB_OVERHEAD_MS = 1;
const TARGET_HOLD_STREAMS = 10_000;
const TARGET_HOLD_RSS_MB = 1_024;
const TARGET_REGISTRY_AGENTS = 10_000;
const TARGET_REGISTRY_CORES = 1;
/** CONTENDED_CORES is how much CPU other processes may use during a run before the notes warn about it. */
const CONTENDED_CORES = 0.25;

/** fixed prints a figure with `digits` decimals, or "-" when there is none. */
export function fixed(value: number | null | undefined, digits: number): string {
  return value === null || value === undefined || !Number.isFinite(value) ? "-" : value.toFixed(digits);
}

/** signed prints a difference with its sign. */
function signed(value: number, digits: number): string {
  return `${value >= 0 ? "+" : ""}${value.toFixed(digits)}`;
}

/** errorCount adds up every kind of failed request of a wrk run. */
export function errorCount(wrk: WrkResult): number {
  return wrk.errors.connect + wrk.errors.read + wrk.errors.write + wrk.errors.timeout + wrk.errors.status;
}

/** describeErrors lists failure reasons and their counts, as ", errors: reason xN, ...", or "" without any. */
export function describeErrors(errors: Readonly<Record<string, number>>): string {
  const entries = Object.entries(errors);
  return entries.length === 0 ? "" : `, errors: ${entries.map(([reason, n]) => `${reason} x${n}`).join(", ")}`;
}

/** Verdict is one of the project's performance targets and whether the run met it. */
export interface Verdict {
  readonly target: string;
  readonly measured: string;
  readonly met: boolean | null;
  /** noisy says that other processes loaded the machine during a run the verdict compares, so it may not hold. */
  readonly noisy: boolean;
}

/** Row is one line of the table: a figure for each way to the simulator, the mesh's overhead, the target. */
interface Row {
  readonly label: string;
  readonly direct?: string;
  readonly nginx?: string;
  readonly mesh?: string;
  /** nginxAdded and meshAdded are the figure minus direct's. */
  readonly nginxAdded?: string;
  readonly meshAdded?: string;
  /** ratio is mesh / nginx. */
  readonly ratio?: string;
  readonly verdict?: Verdict;
}

/** verdictText is a Verdict as the table's last column shows it. */
function verdictText(verdict: Verdict | undefined): string {
  if (!verdict) return "";
  return `${verdict.target}: ${verdict.met === null ? "n/a" : verdict.met ? "MET" : "MISSED"}${verdict.noisy ? " (noisy)" : ""}`;
}

/** buildRows lays the results out as table rows and judges the run against the project's performance targets. */
export function buildRows(results: MeshResults): { rows: Row[]; verdicts: Verdict[] } {
  const rows: Row[] = [];
  const verdicts: Verdict[] = [];
  const verdict = (target: string, measured: string, met: boolean | null, noisy = false): Verdict => {
    const v = { target, measured, met, noisy };
    verdicts.push(v);
    return v;
  };
  const latencyRow = (label: string, values: Partial<Record<TargetName, number | null>>, digits: number, v?: Verdict): Row => {
    const { direct, nginx, mesh } = values;
    const added = (x: number | null | undefined) => (x == null || direct == null ? undefined : signed(x - direct, digits));
    const nginxAdded = added(nginx);
    const meshAdded = added(mesh);
    return {
      label,
      direct: fixed(direct, digits),
      nginx: fixed(nginx, digits),
      mesh: fixed(mesh, digits),
      ...(nginxAdded === undefined ? {} : { nginxAdded }),
      ...(meshAdded === undefined ? {} : { meshAdded }),
      ...(mesh != null && nginx != null && nginx > 0 ? { ratio: `${fixed(mesh / nginx, 2)}x` } : {}),
      ...(v ? { verdict: v } : {}),
    };
  };

  const connections = [...new Set(results.chat.map((run) => run.connections))];
  for (const c of connections) {
    const at = (target: TargetName) => results.chat.find((run) => run.connections === c && run.target === target);
    const pick = (f: (run: ChatRun) => number) =>
      Object.fromEntries(TARGET_NAMES.map((t) => [t, at(t) ? f(at(t) as ChatRun) : null])) as Record<TargetName, number | null>;
    const p50 = pick((r) => r.wrk.latencyMs.p50);
    const p99 = pick((r) => r.wrk.latencyMs.p99);
    const rps = pick((r) => r.wrk.requestsPerSecond);
    // A verdict comparing runs during which other processes loaded the machine is flagged: it may not hold.
    const noisy = [at("direct"), at("mesh")].some((run) => run !== undefined && run.otherCores >= CONTENDED_CORES);
    const addedP50 = p50.mesh != null && p50.direct != null ? p50.mesh - p50.direct : null;
    const addedP99 = p99.mesh != null && p99.direct != null ? p99.mesh - p99.direct : null;
    rows.push(
      latencyRow(
        `chat c=${c} p50 ms`,
        p50,
        3,
        c === 1
          ? verdict(
              `added p50 <= ${TARGET_ADDED_P50_MS} ms`,
              `${fixed(addedP50, 3)} ms`,
              addedP50 == null ? null : addedP50 <= TARGET_ADDED_P50_MS,
              noisy,
            )
          : undefined,
      ),
    );
    rows.push(
      latencyRow(
        `chat c=${c} p99 ms`,
        p99,
        3,
        c === 1
          ? verdict(
              `added p99 <= ${TARGET_ADDED_P99_MS} ms`,
              `${fixed(addedP99, 3)} ms`,
              addedP99 == null ? null : addedP99 <= TARGET_ADDED_P99_MS,
              noisy,
            )
          : undefined,
      ),
    );
    const rpsRow: Row = {
      label: `chat c=${c} req/s`,
      direct: fixed(rps.direct, 0),
      nginx: fixed(rps.nginx, 0),
      mesh: fixed(rps.mesh, 0),
      ...(rps.mesh != null && rps.nginx != null && rps.nginx > 0 ? { ratio: `${fixed(rps.mesh / rps.nginx, 2)}x` } : {}),
      ...(c === 64
        ? {
            verdict: verdict(
              `mesh >= ${TARGET_REQUESTS_PER_SECOND} req/s`,
              `${fixed(rps.mesh, 0)} req/s`,
              rps.mesh == null ? null : rps.mesh >= TARGET_REQUESTS_PER_SECOND,
              noisy,
            ),
          }
        : {}),
    };
    rows.push(rpsRow);
  }
  const top = connections.at(-1);
  if (top !== undefined) {
    const at = (target: TargetName) => results.chat.find((run) => run.connections === top && run.target === target);
    // What each way would sustain with the machine to itself: its cores over the CPU all its processes and wrk
    // spent per request. Less moved by other load than req/s, though contention inflates CPU per request too.
    const estimate = (target: TargetName) => {
      const run = at(target);
      if (!run || run.wrk.requests === 0) return undefined;
      const services = Object.values(run.cpuUsPerRequest).reduce((sum, us) => sum + us, 0);
      const wrkUs = (run.wrk.wrkCpuSeconds * 1e6) / run.wrk.requests;
      return (cpus().length * 1e6) / (services + wrkUs);
    };
    const estimates = Object.fromEntries(TARGET_NAMES.map((t) => [t, estimate(t)])) as Record<TargetName, number | undefined>;
    rows.push({
      label: `chat c=${top} est. req/s, quiet machine`,
      direct: fixed(estimates.direct, 0),
      nginx: fixed(estimates.nginx, 0),
      mesh: fixed(estimates.mesh, 0),
      ...(estimates.mesh !== undefined && estimates.nginx !== undefined ? { ratio: `${fixed(estimates.mesh / estimates.nginx, 2)}x` } : {}),
    });
    for (const service of ["gateway", "agent", "simulator", "nginx"]) {
      const value = (target: TargetName) => at(target)?.cpuUsPerRequest[service];
      if (value("mesh") === undefined && value("nginx") === undefined) continue;
      rows.push({
        label: `cpu µs/req c=${top} ${service}`,
        direct: fixed(value("direct"), 0),
        nginx: fixed(value("nginx"), 0),
        mesh: fixed(value("mesh"), 0),
      });
    }
  }

  if (results.ttfb.length > 0) {
    const pick = (f: (run: TtfbRun) => number | null) =>
      Object.fromEntries(TARGET_NAMES.map((t) => [t, f(results.ttfb.find((r) => r.target === t) as TtfbRun) ?? null])) as Record<
        TargetName,
        number | null
      >;
    const p50 = pick((r) => r.firstByteMs.p50);
    const p99 = pick((r) => r.firstByteMs.p99);
    const overhead = p50.mesh != null && p50.direct != null ? p50.mesh - p50.direct : null;
    rows.push(
      latencyRow(
        "stream TTFB p50 ms",
        p50,
        3,
        verdict(
          `TTFB overhead <= ${TARGET_TTFB_OVERHEAD_MS} ms`,
          `${fixed(overhead, 3)} ms`,
          overhead == null ? null : overhead <= TARGET_TTFB_OVERHEAD_MS,
        ),
      ),
    );
    rows.push(latencyRow("stream TTFB p99 ms", p99, 3));
  }

  for (const streams of [...new Set(results.chunks.map((run) => run.streams))]) {
    const at = (target: TargetName) => results.chunks.find((run) => run.streams === streams && run.target === target);
    const rate = (target: TargetName) => at(target)?.result.eventsPerSecond;
    const mesh = rate("mesh");
    const nginx = rate("nginx");
    const ratio = mesh !== undefined && nginx !== undefined && nginx > 0 ? mesh / nginx : null;
    const first = at("mesh") ?? at("nginx") ?? at("direct");
    rows.push({
      label: `stream ${streams} x ${fixed(first?.tokensPerSecondPerStream, 0)} tok/s chunks/s`,
      direct: fixed(rate("direct"), 0),
      nginx: fixed(nginx, 0),
      mesh: fixed(mesh, 0),
      ...(ratio === null ? {} : { ratio: `${fixed(ratio, 2)}x` }),
      verdict: verdict(
        `${streams} streams: mesh >= ${TARGET_CHUNK_RATIO * 100}% of nginx chunks/s`,
        `${fixed(ratio === null ? null : ratio * 100, 0)}%`,
        ratio === null ? null : ratio >= TARGET_CHUNK_RATIO,
      ),
    });
    for (const service of ["gateway", "agent", "simulator", "nginx"]) {
      const value = (target: TargetName) => at(target)?.cpuUsPerChunk[service];
      if (value("mesh") === undefined && value("nginx") === undefined) continue;
      rows.push({
        label: `  cpu µs/chunk ${service}`,
        direct: fixed(value("direct"), 1),
        nginx: fixed(value("nginx"), 1),
        mesh: fixed(value("mesh"), 1),
      });
    }
  }

  if (results.hold) {
    const hold = results.hold;
    const total = hold.rssMb.gateway.held + hold.rssMb.agent.held;
    const allOpen = hold.open !== undefined && hold.open.opened === hold.streams;
    rows.push({
      label: `hold ${hold.streams} streams rss MB gw+agent`,
      mesh: fixed(total, 0),
      verdict: verdict(
        `${TARGET_HOLD_STREAMS} streams: gateway + agent < ${TARGET_HOLD_RSS_MB} MiB`,
        `${fixed(total, 0)} MiB, ${hold.open?.opened ?? 0}/${hold.streams} open`,
        // Fewer streams (--hold-streams, --quick, a low open-file limit) say nothing about the target.
        hold.streams < TARGET_HOLD_STREAMS ? null : allOpen ? total < TARGET_HOLD_RSS_MB : false,
      ),
    });
    rows.push({
      label: "  gateway rss MB (idle -> held)",
      mesh: `${fixed(hold.rssMb.gateway.idle, 0)} -> ${fixed(hold.rssMb.gateway.held, 0)}`,
    });
    rows.push({ label: "  agent rss MB (idle -> held)", mesh: `${fixed(hold.rssMb.agent.idle, 0)} -> ${fixed(hold.rssMb.agent.held, 0)}` });
    rows.push({ label: "  chunks/s delivered while held", mesh: `${hold.eventsPerSecond} of ${hold.streams * hold.tokensPerSecond}` });
  }

  if (results.registry) {
    const r = results.registry;
    rows.push({
      label: `registry ${r.agents} agents cpu@${fixed(r.pacedTargetPerSecond, 0)} hb/s`,
      mesh: `${fixed(r.cpuAtTarget, 3)} cores`,
      verdict: verdict(
        `${TARGET_REGISTRY_AGENTS} agents every 10 s: registry < ${TARGET_REGISTRY_CORES} core`,
        `${fixed(r.cpuAtTarget, 3)} cores at ${fixed(r.pacedTargetPerSecond, 0)} hb/s (measured ${fixed(r.cpuAtPaced, 3)} at ${fixed(r.pacedPerSecond, 0)} hb/s)`,
        r.cpuAtTarget === null || r.agents < TARGET_REGISTRY_AGENTS ? null : r.cpuAtTarget < TARGET_REGISTRY_CORES,
      ),
    });
    rows.push({
      label: "  registry paced hb/s sent (cpu)",
      mesh: `${fixed(r.pacedPerSecond, 0)} of ${fixed(r.pacedTargetPerSecond, 0)} (${fixed(r.cpuAtPaced, 3)})`,
    });
    rows.push({ label: "  registry hb/s max (cpu)", mesh: `${fixed(r.heartbeatsPerSecondMax, 0)} (${fixed(r.cpuAtMax, 2)})` });
    rows.push({ label: "  watch p50 / p99 ms", mesh: `${fixed(r.watchP50Ms, 2)} / ${fixed(r.watchP99Ms, 2)}` });
  }
  return { rows, verdicts };
}

/** formatTable aligns the rows under a header line: labels left, figures right, the verdicts last. */
export function formatTable(header: string, rows: readonly Row[]): string {
  const columns = ["", "direct", "nginx", "mesh", "nginx+", "mesh+", "mesh/nginx", "target"];
  const cells = rows.map((row) => [
    row.label,
    row.direct ?? "",
    row.nginx ?? "",
    row.mesh ?? "",
    row.nginxAdded ?? "",
    row.meshAdded ?? "",
    row.ratio ?? "",
    verdictText(row.verdict),
  ]);
  const widths = columns.map((column, i) => Math.max(column.length, ...cells.map((row) => (row[i] ?? "").length)));
  const line = (values: readonly string[]) =>
    values
      .map((value, i) => (i === 0 || i === values.length - 1 ? value.padEnd(widths[i] ?? 0) : value.padStart(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [header, line(columns), ...cells.map(line)].join("\n");
}

/** NoteContext is what the notes need to know about the run besides its results. */
interface NoteContext {
  /** streamRate is the chunks per second the concurrent streams offered together. */
  readonly streamRate: number;
  /** fileLimitNote says how the open-file limit was handled, when it needed handling. */
  readonly fileLimitNote: string | undefined;
}

/** notes explain the table: noise from other processes, errors, streams that failed to open, the client's CPU. */
export function notes(results: MeshResults, context: NoteContext): string[] {
  const lines: string[] = [];
  const contended = results.chat.filter((run) => run.otherCores >= CONTENDED_CORES);
  if (contended.length > 0) {
    lines.push(
      `noise: other processes kept ${contended.length}/${results.chat.length} chat runs' cores busy ` +
        `(${contended.map((run) => `${run.target}@${run.connections}: ${fixed(run.otherCores, 2)}`).join(", ")}); ` +
        "absolute figures are understated there, ratios from the same level less so",
    );
  } else if (results.chat.length > 0) {
    lines.push(`noise: other processes used < ${CONTENDED_CORES} cores during every chat run`);
  }
  const errors = results.chat.filter((run) => errorCount(run.wrk) > 0);
  for (const run of errors) lines.push(`errors: ${run.target}@${run.connections}: ${JSON.stringify(run.wrk.errors)}`);
  for (const run of results.ttfb)
    if (Object.keys(run.errors).length > 0) lines.push(`ttfb errors: ${run.target}${describeErrors(run.errors)}`);
  for (const run of results.chunks) {
    const open = run.result.open;
    if (open.opened < open.requested || Object.keys(open.errors).length > 0) {
      lines.push(`chunks: ${run.target}@${run.streams}: ${open.opened}/${open.requested} opened${describeErrors(open.errors)}`);
    }
    if (run.result.clientCpu > 0.8)
      lines.push(
        `chunks: ${run.target}@${run.streams}: the stream client used ${fixed(run.result.clientCpu, 2)} cores and may have been the limit`,
      );
  }
  if (results.chunks.length > 0) {
    lines.push(
      `chunks: the streams offer ${context.streamRate} chunks/s together (each paced by the simulator); the client's cpu was ` +
        results.chunks.map((run) => `${run.target}@${run.streams} ${fixed(run.result.clientCpu, 2)}`).join(", "),
    );
  }
  if (results.hold?.open && Object.keys(results.hold.open.errors).length > 0)
    lines.push(`hold: ${describeErrors(results.hold.open.errors).slice(2)}`);
  const registry = results.registry;
  if (registry && registry.pacedPerSecond < registry.pacedTargetPerSecond * 0.9) {
    lines.push(
      `registry: the paced phase sent ${fixed(registry.pacedPerSecond, 0)} of ${fixed(registry.pacedTargetPerSecond, 0)} hb/s ` +
        "(the registry or the machine fell behind); its cpu is scaled to the target rate, and watch latencies include the backlog",
    );
  }
  if (context.fileLimitNote) lines.push(`open files: ${context.fileLimitNote}`);
  return lines;
}
