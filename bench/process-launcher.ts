/**
 * process-launcher starts and stops the processes of the bench and of the fault suite: the mesh's services run with
 * `infermesh` (see cli-command.ts and mesh-commands.ts), the bench's own children forked under tsx, and nginx. Every
 * one listens on loopback ports found by freePorts; secrets reach them through INFERMESH_* variables, never argv.
 */
import { type ChildProcess, type ForkOptions, fork, type StdioOptions, spawn } from "node:child_process";
import { createServer } from "node:net";
import type { Readable } from "node:stream";
import type { CliCommand } from "./cli-command.js";

/** LaunchOptions are where and how a process runs. */
export interface LaunchOptions {
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  /** openFiles raises the process's RLIMIT_NOFILE through prlimit (for thousands of streams). */
  readonly openFiles?: number | undefined;
}

/** freePorts asks the kernel for count distinct free loopback ports, for services that take theirs on the command line. */
export async function freePorts(count: number, host = "127.0.0.1"): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  // All stay bound until every port is known, so the kernel cannot hand out one port twice.
  await Promise.all(
    servers.map(
      (server) =>
        new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen(0, host, resolve);
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as { port: number }).port);
  await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  return ports;
}

/** withoutInfermeshVariables drops the caller's INFERMESH_* settings, so that only the launcher's flags apply. */
export function withoutInfermeshVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith("INFERMESH_")));
}

/**
 * launch spawns command with its output piped, through `prlimit` when it needs a higher open-file limit than the
 * launcher's own (prlimit execs the command, so the pid is the command's).
 */
export function launch(command: string, args: readonly string[], options: LaunchOptions): ChildProcess {
  const [file, argv] = withFileLimit(command, args, options.openFiles);
  return spawn(file, argv, { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
}

/** launchCli runs `infermesh args` with cli, node's nodeArgs (such as --cpu-prof) before the script. */
export function launchCli(
  cli: CliCommand,
  args: readonly string[],
  options: LaunchOptions,
  nodeArgs: readonly string[] = [],
): ChildProcess {
  return launch(process.execPath, [...cli.execArgv, ...nodeArgs, cli.script, ...args], { ...options, env: { ...options.env, ...cli.env } });
}

/** TSX_EXEC_ARGV loads tsx into a forked child, so that it runs a TypeScript file. */
const TSX_EXEC_ARGV = ["--import", import.meta.resolve("tsx")];

/**
 * forkTsx forks script (a TypeScript file) under tsx with an IPC channel, its output inherited. Through prlimit when
 * openFiles is given: prlimit execs node, so the IPC channel the fork set up carries on.
 */
export function forkTsx(script: string, options: { openFiles?: number | undefined; execArgv?: readonly string[] } = {}): ChildProcess {
  const execArgv = [...TSX_EXEC_ARGV, ...(options.execArgv ?? [])];
  const stdio: StdioOptions = ["ignore", "inherit", "inherit", "ipc"];
  const forkOptions: ForkOptions =
    options.openFiles === undefined
      ? { execArgv, stdio }
      : {
          execPath: "prlimit",
          execArgv: [`--nofile=${options.openFiles}:${options.openFiles}`, "--", process.execPath, ...execArgv],
          stdio,
        };
  return fork(script, [], forkOptions);
}

function withFileLimit(command: string, args: readonly string[], openFiles: number | undefined): [string, readonly string[]] {
  return openFiles === undefined ? [command, args] : ["prlimit", [`--nofile=${openFiles}:${openFiles}`, "--", command, ...args]];
}

/** hasExited tells whether child is gone, or never started (a spawn error leaves no pid and no exit). */
export function hasExited(child: ChildProcess): boolean {
  return child.pid === undefined || child.exitCode !== null || child.signalCode !== null;
}

/**
 * stopProcess stops child the way it drains (ask: SIGTERM unless told otherwise; nginx takes SIGQUIT, an IPC child a
 * message), SIGKILLs it when it has not exited within graceMs, and resolves once it has exited.
 */
export async function stopProcess(
  child: ChildProcess,
  graceMs: number,
  ask: (child: ChildProcess) => void = (c) => c.kill("SIGTERM"),
): Promise<void> {
  if (hasExited(child)) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  ask(child);
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * waitForLogLine resolves once a process writes the JSON log line whose `msg` is readyMsg to output, and rejects when
 * the process exits first or timeoutMs passes.
 */
export function waitForLogLine(child: ChildProcess, output: Readable, readyMsg: string, timeoutMs: number, name: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let pending = "";
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${name} did not log '${readyMsg}' within ${timeoutMs} ms`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      pending += chunk.toString("utf8");
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      if (!lines.some((line) => logMessage(line) === readyMsg)) return;
      cleanup();
      resolve();
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      cleanup();
      reject(new Error(`${name} exited (code ${code}, signal ${signal}) before it was ready`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      output.off("data", onData);
      child.off("exit", onExit);
    };
    output.on("data", onData);
    child.once("exit", onExit);
  });
}

/** logMessage is the `msg` of a JSON log line; undefined for other lines (grpc-js or tsx may print some). */
function logMessage(line: string): unknown {
  if (!line.startsWith("{")) return undefined;
  try {
    return (JSON.parse(line) as { msg?: unknown }).msg;
  } catch {
    return undefined;
  }
}

/**
 * createApiKey runs `infermesh keys create` on the registry's database file, as an operator would, and resolves the
 * key (never printed).
 */
export function createApiKey(
  cli: CliCommand,
  key: { readonly dbPath: string; readonly user: string; readonly label: string },
  options: LaunchOptions,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = launchCli(cli, ["keys", "create", "--db", key.dbPath, "--user", key.user, "--label", key.label], options);
    let out = "";
    let err = "";
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
    child.once("error", reject);
    child.once("close", (code) => {
      const apiKey = out.trim();
      if (code === 0 && /^im_\S+$/.test(apiKey)) resolve(apiKey);
      else reject(new Error(`infermesh keys create failed (exit ${code}): ${err.trim().split("\n")[0] ?? ""}`));
    });
  });
}
