import { mkdir, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join, relative } from "node:path";

/** Machine is what a benchmark's figures were measured on. */
export interface Machine {
  readonly cores: number;
  readonly cpuModel: string;
  readonly platform: string;
  readonly arch: string;
}

/** machine describes this machine for a report. */
export function machine(): Machine {
  const cpuList = cpus();
  return { cores: cpuList.length, cpuModel: cpuList[0]?.model.trim() ?? "unknown CPU", platform: process.platform, arch: process.arch };
}

/**
 * writeBenchReport saves a benchmark's figures as outDir/<bench>-<start time>.json, under the fields every report
 * shares (bench, start, duration, machine, Node), and says where on stdout.
 */
export async function writeBenchReport(
  outDir: string,
  bench: string,
  startedAt: Date,
  durationSeconds: number,
  body: Readonly<Record<string, unknown>>,
): Promise<void> {
  await mkdir(outDir, { recursive: true });
  const file = join(outDir, `${bench}-${startedAt.toISOString().replace(/[:.]/g, "-")}.json`);
  const report = { bench, startedAt: startedAt.toISOString(), durationSeconds, machine: machine(), node: process.version, ...body };
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`\nwrote ${relative(process.cwd(), file)} in ${durationSeconds} s\n`);
}
