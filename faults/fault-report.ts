import { AGENT_RETURN_LIMIT_MS, type AgentReturn, lateAgents } from "./agent-return.js";
import { OUTCOMES, type Outcome } from "./answer-classifier.js";
import type { InjectedFault } from "./fault-injector.js";
import { isKill } from "./fault-schedule.js";
import { GATEWAY_KILLED } from "./gateway-cuts.js";
import type { RequestRecord } from "./load-driver.js";
import type { Check } from "./mesh-checks.js";
import type { Crash } from "./mesh-process.js";

/** OutcomeCounts counts requests by outcome. */
export type OutcomeCounts = Record<Outcome, number>;

/** WindowSummary is what happened to the requests that overlapped one fault's window. */
export interface WindowSummary {
  readonly label: string;
  readonly fault: InjectedFault | undefined;
  readonly fromMs: number;
  readonly toMs: number;
  readonly counts: OutcomeCounts;
  readonly sent: number;
  /** errors counts the clean errors by "STATUS type". */
  readonly errors: ReadonlyMap<string, number>;
  /** longestWaitMs is the longest wait for a response head (queued at an agent, failover, waiting for the model). */
  readonly longestWaitMs: number;
  /** longestStallMs is the longest silence after a response head (a stream that stalled mid-way). */
  readonly longestStallMs: number;
}

/** FaultSummary is the outcome of a run: the figures, the windows, the problems, and the verdict. */
export interface FaultSummary {
  readonly sent: number;
  readonly counts: OutcomeCounts;
  readonly lostStreams: number;
  readonly lostBodies: number;
  /** cutByGatewayKill counts the clean errors that were connections refused or cut by the killed gateway. */
  readonly cutByGatewayKill: number;
  readonly errors: ReadonlyMap<string, number>;
  readonly anomalies: ReadonlyMap<string, number>;
  readonly windows: readonly WindowSummary[];
  /** calm are the requests that overlapped no fault window. */
  readonly calm: WindowSummary;
  /** problems are the hung and lost requests, each with the faults whose windows it overlapped. */
  readonly problems: readonly { readonly record: RequestRecord; readonly faults: readonly number[] }[];
  readonly faults: readonly InjectedFault[];
  /** returns are the agents' returns after each gateway fault. */
  readonly returns: readonly AgentReturn[];
  readonly checks: readonly Check[];
  readonly crashes: readonly Crash[];
  /** failures say why the run failed; empty when it passed. */
  readonly failures: readonly string[];
}

/**
 * summarize folds a run into a FaultSummary; a fault's window lasts from its signal to tailMs after its healing. The
 * records are read as attributeGatewayCuts left them.
 */
export function summarize(
  records: readonly RequestRecord[],
  faults: readonly InjectedFault[],
  returns: readonly AgentReturn[],
  checks: readonly Check[],
  crashes: readonly Crash[],
  tailMs: number,
  endMs: number,
): FaultSummary {
  const struck = faults.filter((f) => f.injectedAtMs !== undefined);
  const windowOf = (f: InjectedFault) => ({ fromMs: f.injectedAtMs ?? 0, toMs: (f.healedAtMs ?? endMs) + tailMs });
  const overlaps = (r: RequestRecord, w: { fromMs: number; toMs: number }) => r.startMs < w.toMs && r.endMs > w.fromMs;
  const windows = struck.map((fault) => {
    const w = windowOf(fault);
    return window(
      `#${fault.id} ${fault.kind} ${fault.target}`,
      fault,
      w.fromMs,
      w.toMs,
      records.filter((r) => overlaps(r, w)),
    );
  });
  const calmRecords = records.filter((r) => !struck.some((f) => overlaps(r, windowOf(f))));
  const problems = records
    .filter((r) => r.outcome === "hung" || r.outcome === "lost")
    .map((record) => ({ record, faults: struck.filter((f) => overlaps(record, windowOf(f))).map((f) => f.id) }));
  const all = window("all", undefined, 0, endMs, records);
  const anomalies = tally(records.flatMap((r) => r.anomalies.map((a) => a.replace(/: .*/, ""))));
  const lostStreams = records.filter((r) => r.outcome === "lost" && r.stream).length;
  const lostBodies = all.counts.lost - lostStreams;
  const failures: string[] = [];
  if (records.length === 0) failures.push("no request was sent");
  if (all.counts.hung > 0) failures.push(`${all.counts.hung} hung requests`);
  if (lostStreams > 0) failures.push(`${lostStreams} lost streams`);
  if (lostBodies > 0) failures.push(`${lostBodies} lost non-streamed requests`);
  for (const crash of crashes) failures.push(`${crash.name} exited by itself (code ${crash.code}, signal ${crash.signal})`);
  for (const fault of faults) {
    if (fault.injectedAtMs !== undefined && fault.healedAtMs === undefined) failures.push(`fault #${fault.id}: ${fault.note}`);
  }
  for (const back of returns) {
    for (const agent of lateAgents(back)) {
      const when = agent.backAfterMs === undefined ? `not back (${agent.detail})` : `back after ${agent.backAfterMs} ms`;
      failures.push(`${agent.name} ${when} after #${back.fault.id} ${back.fault.kind}, more than ${AGENT_RETURN_LIMIT_MS} ms`);
    }
  }
  for (const check of checks) if (!check.ok) failures.push(`check failed: ${check.name} (${check.detail})`);
  return {
    sent: records.length,
    counts: all.counts,
    lostStreams,
    lostBodies,
    cutByGatewayKill: records.filter((r) => r.outcome === "clean_error" && r.error?.startsWith(GATEWAY_KILLED)).length,
    errors: all.errors,
    anomalies,
    windows,
    calm: window("no fault", undefined, 0, endMs, calmRecords),
    problems,
    faults,
    returns,
    checks,
    crashes,
    failures,
  };
}

/** RunDescription is what the report's header says about the run. */
export interface RunDescription {
  readonly seed: number;
  readonly concurrency: number;
  readonly loadMs: number;
  readonly clientTimeoutMs: number;
  readonly tailMs: number;
  readonly mesh: string;
  readonly runDir: string;
}

/** WIDTHS are the widths of the window table's number columns. */
const WIDTHS = [6, 6, 7, 6, 6, 7, 7];

/** formatReport renders a FaultSummary for a terminal: figures first, then windows, problems and checks. */
export function formatReport(summary: FaultSummary, run: RunDescription): string {
  const lines: string[] = [];
  const s = (ms: number) => `${(ms / 1000).toFixed(1)}s`;
  const { counts } = summary;
  lines.push(
    `infermesh fault suite: seed ${run.seed}, ${run.concurrency} clients, ${s(run.loadMs)} of load, ` +
      `client timeout ${s(run.clientTimeoutMs)}`,
  );
  lines.push(`mesh: ${run.mesh}`);
  lines.push(`logs: ${run.runDir}`);
  lines.push("");
  lines.push("faults injected (times since the load began):");
  for (const f of summary.faults) {
    const when = f.injectedAtMs === undefined ? "   -   " : `+${s(f.injectedAtMs).padStart(6)}`;
    const kill = isKill(f.kind);
    const healed = f.healedAtMs === undefined ? f.note : `${kill ? "back" : "SIGCONT"} at +${s(f.healedAtMs)} (${f.note})`;
    const action = kill ? `SIGKILL, down ${s(f.downMs)}` : `SIGSTOP for ${s(f.downMs)}`;
    lines.push(`  #${String(f.id).padEnd(3)}${when}  ${f.kind.padEnd(14)}${f.target.padEnd(10)}pid ${f.pid ?? "-"}, ${action}, ${healed}`);
  }
  lines.push("");
  const row = (label: string, value: number, note = "") =>
    lines.push(`  ${label.padEnd(48)}${String(value).padStart(6)}${note ? `   ${note}` : ""}`);
  row("requests sent", summary.sent);
  row("succeeded", counts.succeeded);
  row("failed with a clean error", counts.clean_error, formatTally(summary.errors));
  if (summary.cutByGatewayKill > 0) row("  of which refused or cut by the killed gateway", summary.cutByGatewayKill);
  row("hung (must be 0)", counts.hung);
  row("lost streams without an error frame (must be 0)", summary.lostStreams);
  row("lost non-streamed answers (must be 0)", summary.lostBodies);
  if (summary.anomalies.size > 0) {
    const total = [...summary.anomalies.values()].reduce((a, b) => a + b, 0);
    row("anomalies (not counted as failures)", total, formatTally(summary.anomalies));
  }
  if (summary.returns.length > 0) {
    lines.push("");
    lines.push(`agents back on a link after each gateway fault (from its restart or SIGCONT; limit ${s(AGENT_RETURN_LIMIT_MS)}):`);
    for (const back of summary.returns) {
      const each = back.agents.map((a) => `${a.name} ${a.backAfterMs === undefined ? `not back (${a.detail})` : s(a.backAfterMs)}`);
      const late = lateAgents(back).length;
      lines.push(`  ${late === 0 ? "ok  " : "FAIL"} #${back.fault.id} ${back.fault.kind}: ${each.join(", ")}`);
      for (const agent of lateAgents(back)) {
        for (const failure of agent.failures.slice(0, 5)) lines.push(`         ${agent.name} probe failed, first at ${failure}`);
      }
    }
  }
  lines.push("");
  lines.push(`by fault window (from the signal to ${s(run.tailMs)} after the target is back; windows overlap; wait: longest wait`);
  lines.push("for a response head; stall: longest silence after it):");
  const columns = (cells: readonly (string | number)[]) =>
    cells.map((cell, i) => (i < 2 ? String(cell).padEnd(i === 0 ? 34 : 16) : String(cell).padStart(WIDTHS[i - 2] ?? 7))).join("");
  lines.push(`  ${columns(["window", "span", "sent", "ok", "clean", "hung", "lost", "wait", "stall"])}  clean errors`);
  for (const w of [...summary.windows, summary.calm]) {
    const span = w.fault ? `+${s(w.fromMs)}..+${s(w.toMs)}` : "";
    const { succeeded, clean_error, hung, lost } = w.counts;
    const cells = [w.label, span, w.sent, succeeded, clean_error, hung, lost, s(w.longestWaitMs), s(w.longestStallMs)];
    lines.push(`  ${columns(cells)}  ${formatTally(w.errors)}`);
  }
  if (summary.problems.length > 0) {
    lines.push("");
    lines.push("hung and lost requests:");
    for (const { record: r, faults } of summary.problems.slice(0, 50)) {
      const head = r.headersMs === undefined ? "-" : `+${s(r.headersMs)}`;
      const during = faults.map((id) => `#${id}`).join(" ") || "none";
      lines.push(
        `  ${r.outcome.padEnd(5)} ${r.id} ${r.stream ? "stream" : "plain "} +${s(r.startMs)}..+${s(r.endMs)} status ${r.status ?? "-"} ` +
          `head at ${head}, ${r.events} events, phase "${r.phase}", faults ${during}: ${r.detail}`,
      );
    }
    if (summary.problems.length > 50) lines.push(`  … and ${summary.problems.length - 50} more`);
  }
  lines.push("");
  lines.push("end checks:");
  for (const check of summary.checks) lines.push(`  ${check.ok ? "ok  " : "FAIL"} ${check.name}: ${check.detail}`);
  const crashed = summary.crashes.map((c) => c.name).join(", ");
  lines.push(`  ${crashed === "" ? "ok  " : "FAIL"} no process exited by itself${crashed === "" ? "" : `: ${crashed}`}`);
  lines.push("");
  lines.push(summary.failures.length === 0 ? "PASS" : `FAIL: ${summary.failures.join("; ")}`);
  return lines.join("\n");
}

function window(
  label: string,
  fault: InjectedFault | undefined,
  fromMs: number,
  toMs: number,
  records: readonly RequestRecord[],
): WindowSummary {
  const counts = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as OutcomeCounts;
  for (const r of records) counts[r.outcome]++;
  return {
    label,
    fault,
    fromMs,
    toMs,
    counts,
    sent: records.length,
    errors: tally(records.filter((r) => r.outcome === "clean_error").map((r) => r.error ?? "?")),
    longestWaitMs: records.reduce((max, r) => Math.max(max, (r.headersMs ?? r.endMs) - r.startMs), 0),
    longestStallMs: records.reduce((max, r) => Math.max(max, r.maxGapMs), 0),
  };
}

function tally(items: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(item, (counts.get(item) ?? 0) + 1);
  return new Map([...counts].sort((a, b) => b[1] - a[1]));
}

function formatTally(counts: ReadonlyMap<string, number>): string {
  return [...counts].map(([what, n]) => `${what} ×${n}`).join(", ");
}
