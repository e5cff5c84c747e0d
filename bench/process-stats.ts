/**
 * process-stats reads what the mesh bench measures of each service from outside it, in /proc (Linux only): CPU time,
 * resident set (VmRSS) and its peak (VmHWM), and the whole machine's busy time, so that load from other processes on
 * a shared machine can be told apart from the services' own.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { cpus } from "node:os";

/** CLOCK_TICKS_PER_SECOND converts /proc/<pid>/stat times to seconds (USER_HZ, 100 on every common Linux). */
const CLOCK_TICKS_PER_SECOND = clockTicks();

function clockTicks(): number {
  try {
    const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
}

/** ProcessSample is one process's counters at one moment. */
export interface ProcessSample {
  /** cpuMs is user plus system CPU time since the process started, all threads. */
  readonly cpuMs: number;
  readonly rssBytes: number;
  /** peakRssBytes is the highest resident set since the process started. */
  readonly peakRssBytes: number;
}

/** sampleProcess reads /proc/<pid>/stat and /proc/<pid>/status; undefined once the process is gone. */
export function sampleProcess(pid: number): ProcessSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are plain.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return {
      cpuMs: (ticks * 1000) / CLOCK_TICKS_PER_SECOND,
      rssBytes: statusKilobytes(status, "VmRSS") * 1024,
      peakRssBytes: statusKilobytes(status, "VmHWM") * 1024,
    };
  } catch {
    return undefined;
  }
}

function statusKilobytes(status: string, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  return match ? Number(match[1]) : 0;
}

/** childPids lists the processes whose parent is pid (nginx's workers under its master). */
export function childPids(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (parent === pid) children.push(Number(entry));
    } catch {
      // Gone while listing.
    }
  }
  return children;
}

/** machineBusyMs is the CPU time every process has spent on every core, from os.cpus(). */
export function machineBusyMs(): number {
  return cpus().reduce((sum, { times }) => sum + times.user + times.nice + times.sys + times.irq, 0);
}

/** openFileLimit reads this process's soft and hard limits on open files (RLIMIT_NOFILE). */
export function openFileLimit(): { soft: number; hard: number } {
  const limits = readFileSync("/proc/self/limits", "utf8");
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
  const parse = (text: string | undefined) => (text === undefined || text === "unlimited" ? Number.POSITIVE_INFINITY : Number(text));
  return { soft: parse(match?.[1]), hard: parse(match?.[2]) };
}
