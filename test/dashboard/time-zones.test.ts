import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect } from "chai";
import { ZONES, type Zone } from "./time-zone.js";

// The usage page's ranges and series are computed in the reader's zone, which a process fixes when it starts: each
// zone gets a mocha of its own, all started at once, that runs the zone-sensitive suites with their exact instants.

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const MOCHA = fileURLToPath(new URL("../../node_modules/mocha/bin/mocha.js", import.meta.url));
const SUITES = ["test/dashboard/usage-range.test.ts", "test/dashboard/usage-series.test.ts"];

/** MochaReport is the part of mocha's JSON reporter output these tests read. */
interface MochaReport {
  readonly stats: { readonly tests: number; readonly passes: number; readonly pending: number; readonly failures: number };
  readonly passes: readonly { readonly fullTitle: string }[];
  readonly failures: readonly { readonly fullTitle: string; readonly err: { readonly message?: string } }[];
}

/** runInZone runs SUITES in a child process whose zone is TZ's, and reads its JSON report. */
function runInZone(zone: Zone): Promise<MochaReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", MOCHA, "--no-config", "--reporter", "json", "--timeout", "20000", ...SUITES],
      { cwd: ROOT, env: { ...process.env, TZ: zone }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => {
      stdout += text;
    });
    child.stderr.setEncoding("utf8").on("data", (text: string) => {
      stderr += text;
    });
    child.on("error", reject);
    child.on("close", (code) => {
      try {
        resolve(JSON.parse(stdout) as MochaReport);
      } catch {
        reject(new Error(`mocha in ${zone} exited with ${code} and no JSON report:\n${stdout}\n${stderr}`));
      }
    });
  });
}

describe("the usage range and series in other time zones", function () {
  // Three processes start TypeScript at once; on a busy two-core machine that takes a while, but nothing waits idle.
  this.timeout(120_000);

  const reports = new Map<Zone, Promise<MochaReport>>();
  before(() => {
    for (const zone of ZONES) {
      const report = runInZone(zone);
      // Each test awaits its own; this keeps an early failure of another from going unhandled meanwhile.
      report.catch(() => {});
      reports.set(zone, report);
    }
  });

  for (const zone of ZONES) {
    it(`pass in ${zone}, the cases pinned to its instants included`, async () => {
      const report = await reports.get(zone);
      expect(report?.failures.map((failure) => `${failure.fullTitle}: ${failure.err.message}`)).to.deep.equal([]);
      expect(report?.stats.pending).to.equal(0);
      expect(report?.stats.passes).to.equal(report?.stats.tests);
      const pinned = report?.passes.filter((test) => test.fullTitle.includes(` in ${zone} `)).length ?? 0;
      expect(pinned, `tests pinned to ${zone} that ran`).to.be.at.least(6);
    });
  }
});
