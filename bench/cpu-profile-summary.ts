/**
 * cpu-profile-summary reads a V8 .cpuprofile (node --cpu-prof) and tells where the time went: self time by function
 * and by module (a package under node_modules, a Node internal, a project file, or V8's own "(garbage collector)" and
 * "(program)"), and total (inclusive) time by function. Idle time is left out of the shares, so they are shares of
 * the CPU the process used. bench/mesh-bench.ts --profile uses it; it also runs alone:
 *
 *   npx tsx bench/cpu-profile-summary.ts gateway.cpuprofile agent.cpuprofile [--top N]
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";

/** CpuProfile is the part of V8's profile format read here. */
export interface CpuProfile {
  readonly nodes: readonly {
    readonly id: number;
    readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
    readonly children?: readonly number[];
  }[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
  readonly startTime: number;
  readonly endTime: number;
}

/** Cost is a function's or a module's time, in milliseconds and as a share of the busy time. */
export interface Cost {
  readonly name: string;
  readonly ms: number;
  readonly share: number;
}

/** ProfileSummary is one profile's top costs. */
export interface ProfileSummary {
  readonly name: string;
  readonly wallMs: number;
  /** busyMs is the sampled time that was not idle. */
  readonly busyMs: number;
  readonly selfByFunction: readonly Cost[];
  readonly selfByModule: readonly Cost[];
  readonly totalByFunction: readonly Cost[];
}

/** DEFAULT_TOP is how many entries each list keeps. */
const DEFAULT_TOP = 25;
const IDLE = "(idle)";
const PROJECT_DIRS = ["/services/", "/src/", "/gen/", "/bench/"];

/** moduleOf names where a function lives: a package, a Node internal, a project file, or a V8 pseudo-function. */
export function moduleOf(url: string, functionName: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)";
  if (url.startsWith("node:"))
    return `node:${url.slice(5).split("/")[0] === "internal" ? url.slice(5).split("/").slice(0, 2).join("/") : url.slice(5)}`;
  const modules = url.lastIndexOf("/node_modules/");
  if (modules !== -1) {
    const parts = url.slice(modules + "/node_modules/".length).split("/");
    return parts[0]?.startsWith("@") ? `${parts[0]}/${parts[1] ?? ""}` : (parts[0] ?? url);
  }
  for (const dir of PROJECT_DIRS) {
    const at = url.lastIndexOf(dir);
    if (at !== -1) return url.slice(at + 1);
  }
  return url;
}

function functionLabel(frame: { functionName: string; url: string; lineNumber: number }): string {
  const name = frame.functionName || "(anonymous)";
  if (frame.url === "") return name;
  return `${name} ${moduleOf(frame.url, frame.functionName)}:${frame.lineNumber + 1}`;
}

/**
 * ProfileWindow limits a summary to the samples taken between fromUs and toUs, on the profile's clock: V8's monotonic
 * clock, in microseconds, which on Linux is CLOCK_MONOTONIC, the clock of process.hrtime in any process.
 */
export interface ProfileWindow {
  readonly fromUs: number;
  readonly toUs: number;
}

/**
 * summarizeCpuProfile attributes every sample's time to its function (self) and to each caller on its stack (total),
 * only within window when one is given (to leave start-up and shutdown out).
 */
export function summarizeCpuProfile(name: string, profile: CpuProfile, top = DEFAULT_TOP, window?: ProfileWindow): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const selfMs = new Map<number, number>();
  let atUs = profile.startTime;
  profile.samples.forEach((id, i) => {
    // timeDeltas[i] is the time since the previous sample; the interval up to the next one belongs to this one.
    atUs += profile.timeDeltas[i] ?? 0;
    if (window && (atUs < window.fromUs || atUs > window.toUs)) return;
    const delta = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    selfMs.set(id, (selfMs.get(id) ?? 0) + delta);
  });

  const selfByFunction = new Map<string, number>();
  const selfByModule = new Map<string, number>();
  const totalByFunction = new Map<string, number>();
  let busyMs = 0;
  for (const [id, ms] of selfMs) {
    const node = byId.get(id);
    if (!node) continue;
    const frame = node.callFrame;
    if (frame.functionName === IDLE) continue;
    busyMs += ms;
    add(selfByFunction, functionLabel(frame), ms);
    add(selfByModule, moduleOf(frame.url, frame.functionName), ms);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const ancestor = byId.get(at);
      if (!ancestor || ancestor.callFrame.functionName === "(root)") continue;
      const label = functionLabel(ancestor.callFrame);
      if (seen.has(label)) continue;
      seen.add(label);
      add(totalByFunction, label, ms);
    }
  }
  const ranked = (costs: Map<string, number>) =>
    [...costs.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([label, ms]) => ({ name: label, ms: Math.round(ms), share: busyMs > 0 ? Math.round((ms / busyMs) * 1000) / 10 : 0 }));
  return {
    name,
    wallMs: Math.round(
      ((window ? Math.min(window.toUs, profile.endTime) : profile.endTime) -
        (window ? Math.max(window.fromUs, profile.startTime) : profile.startTime)) /
        1000,
    ),
    busyMs: Math.round(busyMs),
    selfByFunction: ranked(selfByFunction),
    selfByModule: ranked(selfByModule),
    totalByFunction: ranked(totalByFunction),
  };
}

function add(costs: Map<string, number>, key: string, ms: number): void {
  costs.set(key, (costs.get(key) ?? 0) + ms);
}

/** formatProfileSummary renders a summary as three ranked lists. */
export function formatProfileSummary(summary: ProfileSummary, lines = 15): string {
  const list = (title: string, costs: readonly Cost[]) =>
    [
      `  ${title}`,
      ...costs.slice(0, lines).map((cost) => `    ${cost.share.toFixed(1).padStart(5)}%  ${String(cost.ms).padStart(6)} ms  ${cost.name}`),
    ].join("\n");
  return [
    `${summary.name}: ${summary.busyMs} ms busy of ${summary.wallMs} ms profiled`,
    list("self time by module", summary.selfByModule),
    list("self time by function", summary.selfByFunction),
    list("total time by function (inclusive)", summary.totalByFunction),
  ].join("\n");
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const topAt = args.indexOf("--top");
  const top = topAt === -1 ? DEFAULT_TOP : Number(args[topAt + 1]);
  const files = args.filter((_, i) => i !== topAt && i !== topAt + 1);
  if (files.length === 0 || !Number.isInteger(top) || top < 1) {
    process.stderr.write("usage: npx tsx bench/cpu-profile-summary.ts FILE.cpuprofile ... [--top N]\n");
    process.exit(2);
  }
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
    process.stdout.write(`${formatProfileSummary(summarizeCpuProfile(basename(file), profile, top), top)}\n\n`);
  }
}
