import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, readdirSync, statSync, type WriteStream } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

/** REPO_ROOT is the repository's root folder, where every process of the mesh runs. */
export const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
const SOURCE_FOLDERS = ["gen", "services", "src"];

/** CliEntry is how the suite runs `infermesh`: node's arguments before the command's, and where the code comes from. */
export interface CliEntry {
  readonly nodeArgs: readonly string[];
  readonly from: "build" | "sources";
}

let entry: CliEntry | undefined;

/**
 * cliEntry runs the compiled build (`npm run build`, which `npm ci` runs) when it is at least as new as every source
 * file it is compiled from, since it starts in half the CPU time; otherwise the TypeScript sources through tsx, as
 * test/support/cli-process.ts does. Either way it is the same code.
 */
export function cliEntry(): CliEntry {
  entry ??= isBuildFresh(REPO_ROOT)
    ? { nodeArgs: [join(REPO_ROOT, "dist", "src", "cli", "main.js")], from: "build" }
    : { nodeArgs: ["--import", "tsx", join(REPO_ROOT, "src", "cli", "main.ts")], from: "sources" };
  return entry;
}

/** isBuildFresh tells whether root's dist/ holds a .js at least as new as each source .ts it is compiled from. */
export function isBuildFresh(root: string): boolean {
  const stale = (dir: string): boolean =>
    readdirSync(dir, { withFileTypes: true }).some((item) => {
      const path = join(dir, item.name);
      if (item.isDirectory()) return item.name !== "test-support" && stale(path);
      if (!item.name.endsWith(".ts") || item.name.endsWith(".test.ts") || item.name.endsWith(".d.ts")) return false;
      const built = join(root, "dist", relative(root, path).replace(/\.ts$/, ".js"));
      try {
        return statSync(built).mtimeMs < statSync(path).mtimeMs;
      } catch {
        return true;
      }
    });
  try {
    return !SOURCE_FOLDERS.some((folder) => stale(join(root, folder)));
  } catch {
    return false;
  }
}
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

/** MeshProcessOptions describes one `infermesh` command run as its own process. */
export interface MeshProcessOptions {
  /** name labels the process in reports and log lines: "registry", "agent-1", "sim-2". */
  readonly name: string;
  readonly args: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  /** readyMsg is the `msg` of the JSON log line that says the process serves. */
  readonly readyMsg: string;
  /** logFile receives the process's stdout and stderr, across restarts. */
  readonly logFile: string;
  readonly readyTimeoutMs?: number;
  /** onCrash hears exits the suite did not cause. */
  readonly onCrash: (crash: Crash) => void;
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
    this.#log.write(`--- ${new Date().toISOString()} start #${this.#starts}: infermesh ${redact(this.#options.args).join(" ")}\n`);
    const child = spawn(process.execPath, [...cliEntry().nodeArgs, ...this.#options.args], {
      cwd: REPO_ROOT,
      env: this.#options.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.#child = child;
    child.stdout?.pipe(this.#log, { end: false });
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
    await new Promise<void>((resolve, reject) => {
      let pending = "";
      let ready = false;
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.name} did not log '${this.#options.readyMsg}' within ${this.#options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS} ms`));
      }, this.#options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
      const onData = (chunk: Buffer) => {
        this.#log.write(chunk);
        if (ready) return;
        pending += chunk.toString("utf8");
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        for (const line of lines) {
          if (!line.startsWith("{")) continue;
          try {
            if ((JSON.parse(line) as { msg?: unknown }).msg === this.#options.readyMsg) {
              ready = true;
              cleanup();
              resolve();
              return;
            }
          } catch {
            // Not one of ours: grpc-js or tsx may print other lines.
          }
        }
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
        cleanup();
        reject(new Error(`${this.name} exited (code ${code}, signal ${signal}) before it was ready; see ${this.#options.logFile}`));
      };
      const cleanup = () => {
        clearTimeout(timer);
        child.removeListener("exit", onExit);
      };
      child.stderr?.on("data", onData);
      child.once("exit", onExit);
    });
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
    child.kill("SIGCONT");
    child.kill("SIGTERM");
    const force = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await this.#exited;
    clearTimeout(force);
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

/** redact hides the values of secret flags in the command line written to the log. */
function redact(args: readonly string[]): string[] {
  return args.map((arg, i) => (/^--(api-key|mesh-token)$/.test(args[i - 1] ?? "") ? "***" : arg));
}
