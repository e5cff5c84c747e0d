import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { waitFor } from "./wait-for.js";

/** REPO_ROOT is the repository's root folder. */
export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CLI = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));

/**
 * START_DEADLINE_MS bounds the start of one `infermesh` process: tsx compiles its sources first, which on a loaded
 * 2-core machine running the whole suite takes many seconds.
 */
export const START_DEADLINE_MS = 45_000;

/** CliResult is how a finished `infermesh` run ended. */
export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** CliProcess is a running `infermesh` command whose output is collected as it comes. */
export interface CliProcess {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** exited resolves when the process ends. */
  readonly exited: Promise<CliResult>;
  /**
   * waitForLog waits for a JSON log line on stderr whose msg matches, and returns it parsed; it fails at once, with
   * the end of stderr, when the process ends without having logged it.
   */
  waitForLog(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

/**
 * spawnCli starts `infermesh ARGS` from the TypeScript sources, as `npm run build` would compile them. The command
 * sees only the INFERMESH_* variables env gives: one the test runner's shell exported must not change what a test
 * proves.
 */
export function spawnCli(args: readonly string[], env: NodeJS.ProcessEnv = {}, cwd = REPO_ROOT): CliProcess {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("INFERMESH_")));
  const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], {
    cwd,
    env: { ...inherited, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  let ended: string | undefined;
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
  // "close", not "exit": it comes once stderr is read to its end, so a line logged just before the exit is seen.
  const exited = new Promise<CliResult>((resolve) =>
    child.once("close", (code, signal) => {
      ended = signal === null ? `code ${code}` : `signal ${signal}`;
      resolve({ code, stdout: out, stderr: err });
    }),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForLog: (msg, timeoutMs = START_DEADLINE_MS) =>
      waitFor(
        `log '${msg}'`,
        () => {
          for (const line of err.split("\n")) {
            if (!line.startsWith("{")) continue;
            const entry = JSON.parse(line) as Record<string, unknown>;
            if (entry.msg === msg) return entry;
          }
          if (ended !== undefined) throw new Error(`infermesh ${args[0]} ended (${ended}) before logging '${msg}':\n${err.slice(-1_000)}`);
          return undefined;
        },
        timeoutMs,
        20,
      ),
  };
}

/** runCli runs `infermesh ARGS` to completion. */
export function runCli(args: readonly string[], env: NodeJS.ProcessEnv = {}, cwd = REPO_ROOT): Promise<CliResult> {
  return spawnCli(args, env, cwd).exited;
}
