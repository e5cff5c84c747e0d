import type { ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { join } from "node:path";
import { type CliCommand, REPO_DIR } from "../bench/cli-command.js";
import type { ServiceCommand } from "../bench/mesh-commands.js";
import { launchCli, stopProcess, waitForLogLine } from "../bench/process-launcher.js";

/** DEFAULT_READY_TIMEOUT_MS bounds a start on a loaded 2-core machine, where tsx compiles the sources first. */
export const DEFAULT_READY_TIMEOUT_MS = 60_000;
/** DEFAULT_TERMINATE_GRACE_MS is how long a SIGTERMed process may drain before it is killed. */
export const DEFAULT_TERMINATE_GRACE_MS = 5_000;

/** ProcessState is what the suite last did to a process, or what happened to it. */
export type ProcessState = "idle" | "starting" | "running" | "stopped" | "killed" | "exited";

/** Crash is an exit the suite did not cause: an invariant violation of its own. */
export interface Crash {
  readonly name: string;
  readonly atMs: number;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** MeshProcessOptions describes one `infermesh` service run as its own process. */
export interface MeshProcessOptions {
  /** name labels the process in reports and log lines: "registry", "agent-1", "sim-2". */
  readonly name: string;
  readonly cli: CliCommand;
  readonly command: ServiceCommand;
  /** env is the environment besides the command's own secrets. */
  readonly env: NodeJS.ProcessEnv;
  /** logFile receives the process's stdout and stderr, across restarts. */
  readonly logFile: string;
  readonly readyTimeoutMs?: number;
  /** onCrash hears exits the suite did not cause. */
  readonly onCrash: (crash: Crash) => void;
}

/**
 * meshProcesses makes a run's processes, all from one cli and environment, each logging to runDir/NAME.log, and
 * each crash told to onCrash.
 */
export function meshProcesses(run: {
  readonly runDir: string;
  readonly cli: CliCommand;
  readonly env: NodeJS.ProcessEnv;
  readonly onCrash: (crash: Crash) => void;
}): (name: string, command: ServiceCommand) => MeshProcess {
  const { runDir, ...shared } = run;
  return (name, command) => new MeshProcess({ ...shared, name, command, logFile: join(runDir, `${name}.log`) });
}

/**
 * MeshProcess is one real `infermesh` process that the suite starts, SIGKILLs, SIGSTOPs, SIGCONTs and restarts with
 * the same command line (so on the same ports and files). Its output goes to a log file, for diagnosis.
 */
export class MeshProcess {
  readonly name: string;
  readonly #options: MeshProcessOptions;
  readonly #log: WriteStream;
  #child: ChildProcess | undefined;
  #state: ProcessState = "idle";
  #exited: Promise<void> = Promise.resolve();
  #starting: Promise<void> = Promise.resolve();
  #starts = 0;

  constructor(options: MeshProcessOptions) {
    this.name = options.name;
    this.#options = options;
    this.#log = createWriteStream(options.logFile, { flags: "a" });
    // A log that cannot be written must not take the suite down; the report still stands.
    this.#log.on("error", () => {});
  }

  get state(): ProcessState {
    return this.#state;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** exited resolves once the process last started has exited and its output is drained. */
  get exited(): Promise<void> {
    return this.#exited;
  }

  /** start spawns the process and resolves once it logged its ready line. */
  start(): Promise<void> {
    if (this.#state === "starting" || this.#state === "running" || this.#state === "stopped") {
      return Promise.reject(new Error(`${this.name} is already ${this.#state}`));
    }
    this.#starting = this.#start();
    return this.#starting;
  }

  /** settled resolves once a start under way has ended, whichever way. */
  async settled(): Promise<void> {
    await this.#starting.catch(() => undefined);
  }

  async #start(): Promise<void> {
    this.#starts++;
    this.#state = "starting";
    const { cli, command, env, logFile } = this.#options;
    this.#log.write(`--- ${new Date().toISOString()} start #${this.#starts}: infermesh ${redact(command.args).join(" ")}\n`);
    const child = launchCli(cli, command.args, { cwd: REPO_DIR, env: { ...env, ...command.env } });
    this.#child = child;
    child.stdout?.pipe(this.#log, { end: false });
    child.stderr?.pipe(this.#log, { end: false });
    // "close", not "exit": it comes once the output is drained too, so nothing is written to a closed log.
    this.#exited = new Promise((resolve) =>
      child.once("close", (code, signal) => {
        this.#log.write(`--- ${new Date().toISOString()} exit code=${code} signal=${signal}\n`);
        if (this.#child === child && (this.#state === "running" || this.#state === "starting")) {
          this.#state = "exited";
          this.#options.onCrash({ name: this.name, atMs: Date.now(), code, signal });
        }
        resolve();
      }),
    );
    const readyTimeoutMs = this.#options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    try {
      await waitForLogLine(child, child.stderr as NonNullable<ChildProcess["stderr"]>, command.readyMsg, readyTimeoutMs, this.name);
    } catch (error) {
      throw new Error(`${(error as Error).message}; see ${logFile}`);
    }
    this.#state = "running";
  }

  /** kill sends SIGKILL: the process vanishes without a word, as a machine that loses power. */
  kill(): void {
    this.#signal("SIGKILL", "killed");
  }

  /** stop sends SIGSTOP: the process stalls with its sockets open, as a machine that freezes. */
  stop(): void {
    if (this.#state !== "running") throw new Error(`cannot stop ${this.name}: it is ${this.#state}`);
    this.#signal("SIGSTOP", "stopped");
  }

  /** resume sends SIGCONT to a stopped process. */
  resume(): void {
    if (this.#state !== "stopped") throw new Error(`cannot resume ${this.name}: it is ${this.#state}`);
    this.#signal("SIGCONT", "running");
  }

  /** terminate ends the process for good: SIGCONT, SIGTERM, and SIGKILL if it has not exited within graceMs. */
  async terminate(graceMs = DEFAULT_TERMINATE_GRACE_MS): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      this.#state = this.#state === "idle" ? "idle" : "exited";
      this.#log.end();
      return;
    }
    this.#state = "exited";
    await stopProcess(child, graceMs, () => {
      child.kill("SIGCONT");
      child.kill("SIGTERM");
    });
    await this.#exited;
    this.#log.end();
  }

  #signal(signal: NodeJS.Signals, next: ProcessState): void {
    const child = this.#child;
    if (!child?.pid) throw new Error(`${this.name} has no process to send ${signal}`);
    this.#state = next;
    // By pid, never by name: only the process this object started receives it.
    process.kill(child.pid, signal);
  }
}

/** redact hides the values of secret flags (given as extra flags of a run) in the command line written to the log. */
function redact(args: readonly string[]): string[] {
  return args.map((arg, i) => (/^--(api-key|mesh-token)$/.test(args[i - 1] ?? "") ? "***" : arg));
}
