/**
 * mesh-processes starts what bench/mesh-bench.ts measures, each in a process of its own so that CPU time and resident
 * memory can be read per process from /proc: the llama-server simulator, and in front of it the mesh (registry,
 * gateway and agent, the real `infermesh` commands) and nginx, the reference proxy. Everything listens on loopback.
 * Secrets (the mesh token, the API key) reach the children through INFERMESH_* variables, never argv, and are never
 * printed. stopAll stops them in an order that lets each drain; killAll is the synchronous last resort on exit.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { access, copyFile, mkdir, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { nginxConfig } from "./nginx-config.js";
import { childPids, sampleProcess, type ProcessSample } from "./process-stats.js";

/** REPO_DIR is the repository the bench belongs to. */
const REPO_DIR = fileURLToPath(new URL("../", import.meta.url));
/** READY_TIMEOUT_MS bounds the start of one service (tsx compiles the sources on the fly). */
const READY_TIMEOUT_MS = 60_000;
/** STOP_TIMEOUT_MS is how long a service may take to drain and exit after SIGTERM before it is killed. */
const STOP_TIMEOUT_MS = 10_000;
/** LOG_TAIL_LINES is how much of a service's stderr is kept to explain a failure. */
const LOG_TAIL_LINES = 40;
/** MODEL is the simulator's model, named exactly so the gateway can pass the client's bytes through. */
export const MODEL = "sim-llama";
/** AGENT_MAX_CONCURRENCY lets the agent hold as many calls as the bench opens (its flag's maximum). */
const AGENT_MAX_CONCURRENCY = 10_000;
/** NGINX_UPSTREAM_KEEPALIVE is the idle connections each nginx worker keeps to the simulator. */
const NGINX_UPSTREAM_KEEPALIVE = 1024;

/**
 * CliCommand is how a service is started: `node ...execArgv script`. compileCli makes one from the working tree
 * compiled to plain JavaScript, as production runs it; SOURCE_CLI runs the TypeScript sources through tsx (whose
 * loader and source maps cost a little at run time, mostly when errors are created).
 */
export interface CliCommand {
  readonly execArgv: readonly string[];
  readonly script: string;
  /** env is added to each service's environment. */
  readonly env: Readonly<Record<string, string>>;
  readonly description: string;
}

/** SOURCE_CLI runs infermesh's CLI from its sources through tsx, with the repository's tsconfig. */
export const SOURCE_CLI: CliCommand = {
  execArgv: ["--import", import.meta.resolve("tsx")],
  script: join(REPO_DIR, "src", "cli", "main.ts"),
  env: { TSX_TSCONFIG_PATH: join(REPO_DIR, "tsconfig.json") },
  description: "TypeScript sources through tsx",
};

/**
 * compileCli compiles the working tree (tsconfig.build.json) into dir with tsc, beside a link to the repository's
 * node_modules and a copy of its package.json, so that the build resolves its dependencies and loads as ESM; the
 * repository's own dist/ is left alone. Type errors do not stop it (tsc still emits); a missing output does.
 */
export async function compileCli(dir: string): Promise<CliCommand> {
  const outDir = join(dir, "dist");
  const tsc = join(REPO_DIR, "node_modules", "typescript", "bin", "tsc");
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [tsc, "-p", join(REPO_DIR, "tsconfig.build.json"), "--outDir", outDir, "--sourceMap", "false"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let text = "";
    child.stdout.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
    child.once("error", reject);
    child.once("exit", () => resolve(text));
  });
  await symlink(join(REPO_DIR, "node_modules"), join(dir, "node_modules"), "dir");
  await copyFile(join(REPO_DIR, "package.json"), join(dir, "package.json"));
  const script = join(outDir, "src", "cli", "main.js");
  try {
    await access(script);
  } catch {
    throw new Error(`compiling the CLI with tsc produced no ${script}:\n${output.trim()}`);
  }
  const errors = output.split("\n").filter((line) => line.includes("error TS")).length;
  return {
    execArgv: [],
    script,
    env: {},
    description: `compiled with tsc${errors > 0 ? ` (${errors} type errors in the working tree, emitted anyway)` : ""}`,
  };
}

/** ServiceProcess is one running service. */
export interface ServiceProcess {
  readonly name: string;
  readonly pid: number;
  /** sample reads the process's CPU and memory; nginx's includes its workers. */
  sample(): ProcessSample | undefined;
  /** logTail is the last lines the service wrote to stderr and stdout. */
  logTail(): string;
}

/** MeshProcesses is everything the bench started. */
export interface MeshProcesses {
  readonly simulator: ServiceProcess;
  readonly registry: ServiceProcess;
  readonly gateway: ServiceProcess;
  readonly agent: ServiceProcess;
  readonly nginx: ServiceProcess;
  /** baseUrls are the three ways to the same simulator. */
  readonly baseUrls: { readonly direct: string; readonly nginx: string; readonly mesh: string };
  /** apiKey is a mesh API key for the bench user (never printed). */
  readonly apiKey: string;
  readonly model: string;
  /** stopAll stops every service (SIGTERM, then SIGKILL after a grace period), clients first. */
  stopAll(): Promise<void>;
  /** killAll sends SIGKILL to every service still running, synchronously (for process exit). */
  killAll(): void;
}

/** MeshProcessOptions configures startMeshProcesses. */
export interface MeshProcessOptions {
  /** tempDir is the run's private folder: the registry's database, nginx's prefix, CPU profiles. */
  readonly tempDir: string;
  /** nginx is nginx's path. */
  readonly nginx: string;
  readonly nginxWorkers: number;
  /** openFiles is the RLIMIT_NOFILE the services get (through prlimit), enough for the stream phases. */
  readonly openFiles: number | undefined;
  /** cli is how the infermesh commands are run. */
  readonly cli: CliCommand;
  /** cpuProfileDir, when set, runs gateway and agent with --cpu-prof, writing there when they exit. */
  readonly cpuProfileDir: string | undefined;
  readonly log: (line: string) => void;
}

/** freePorts asks the kernel for n distinct free loopback ports (the services take ports on their command line). */
async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => createServer());
  // All stay bound until every port is known, so the kernel cannot hand out one port twice.
  await Promise.all(
    servers.map(
      (server) =>
        new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen(0, "127.0.0.1", resolve);
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as { port: number }).port);
  await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  return ports;
}

interface Spawned extends ServiceProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  readonly running: () => boolean;
}

/**
 * startMeshProcesses starts simulator, registry, gateway, agent and nginx, and resolves once a chat request routes
 * through each way; on failure it stops what it started and throws with the failing service's log.
 */
export async function startMeshProcesses(options: MeshProcessOptions): Promise<MeshProcesses> {
  const started: Spawned[] = [];
  const meshToken = randomBytes(24).toString("base64url");
  const dbPath = join(options.tempDir, "infermesh.db");
  const baseEnv: NodeJS.ProcessEnv = { ...withoutInfermeshVariables(process.env), ...options.cli.env, NODE_ENV: "production" };

  const nodeService = (name: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, profile = false): Spawned => {
    const nodeArgs = [
      ...options.cli.execArgv,
      ...(profile && options.cpuProfileDir !== undefined
        ? ["--cpu-prof", "--cpu-prof-dir", options.cpuProfileDir, "--cpu-prof-name", `${name}.cpuprofile`]
        : []),
      options.cli.script,
      ...args,
    ];
    const spawned = spawnService(name, process.execPath, nodeArgs, options.tempDir, { ...baseEnv, ...env }, options.openFiles);
    started.push(spawned);
    return spawned;
  };

  const stopAll = async () => {
    // Clients before servers: gateway, then the agent (which deregisters from the registry), then the rest.
    const order = ["gateway", "agent", "nginx", "simulator", "registry"];
    const ordered = [...started].sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
    for (const service of ordered) await stopService(service);
  };

  try {
    const [simPort, registryPort, gatewayPort, agentPort, nginxPort] = (await freePorts(5)) as [number, number, number, number, number];
    const direct = `http://127.0.0.1:${simPort}`;

    options.log(`starting the simulator on ${direct}`);
    // Non-streamed answers are immediate; streams set their own pace per request (the request's `sim` field).
    const simulator = nodeService("simulator", [
      "sim",
      "--listen", `127.0.0.1:${simPort}`,
      "--tokens-per-second", "0",
      "--ttft-ms", "0",
      "--model", MODEL,
    ]);

    options.log("creating the bench user's API key");
    const apiKey = await runCli(options.cli, ["keys", "create", "--user", "bench", "--label", "mesh bench", "--db", dbPath], options.tempDir, baseEnv);

    options.log(`starting the registry on 127.0.0.1:${registryPort}`);
    const registry = nodeService(
      "registry",
      ["registry", "--listen", `127.0.0.1:${registryPort}`, "--db", dbPath, "--log-level", "warn"],
      { INFERMESH_MESH_TOKEN: meshToken },
    );

    options.log(`starting the gateway on 127.0.0.1:${gatewayPort}`);
    const gateway = nodeService(
      "gateway",
      [
        "gateway",
        "--listen", `127.0.0.1:${gatewayPort}`,
        "--grpc-listen", "127.0.0.1:0",
        "--registry", `http://127.0.0.1:${registryPort}`,
        // The bench's one API key stands for many clients: per-key limits would measure the limiter, not the path.
        "--rate-limit-rpm", "0",
        "--models-rate-limit-rpm", "0",
        "--max-concurrent-streams", "0",
        "--log-level", "warn",
      ],
      { INFERMESH_MESH_TOKEN: meshToken },
      true,
    );

    options.log(`starting the agent on 127.0.0.1:${agentPort}`);
    const agent = nodeService(
      "agent",
      [
        "agent",
        "--registry", `http://127.0.0.1:${registryPort}`,
        "--listen", `127.0.0.1:${agentPort}`,
        "--name", "bench-agent",
        "--upstream", `llm=${direct}`,
        "--max-concurrency", String(AGENT_MAX_CONCURRENCY),
        "--max-queue", String(AGENT_MAX_CONCURRENCY),
        "--log-level", "warn",
      ],
      { INFERMESH_API_KEY: apiKey },
      true,
    );

    options.log(`starting nginx on 127.0.0.1:${nginxPort} (${options.nginxWorkers} worker${options.nginxWorkers === 1 ? "" : "s"})`);
    const nginxDir = join(options.tempDir, "nginx");
    await mkdir(nginxDir, { recursive: true });
    const configPath = join(nginxDir, "nginx.conf");
    await writeFile(
      configPath,
      nginxConfig({
        dir: nginxDir,
        listenPort: nginxPort,
        upstreamPort: simPort,
        workers: options.nginxWorkers,
        workerConnections: Math.max(4096, options.openFiles ?? 0),
        keepalive: NGINX_UPSTREAM_KEEPALIVE,
        runAsRoot: process.getuid?.() === 0,
      }),
    );
    const nginx = spawnService(
      "nginx",
      options.nginx,
      ["-p", nginxDir, "-c", configPath, "-e", join(nginxDir, "error.log")],
      options.tempDir,
      baseEnv,
      options.openFiles,
      true,
    );
    started.push(nginx);

    const processes: MeshProcesses = {
      simulator,
      registry,
      gateway,
      agent,
      nginx,
      baseUrls: { direct, nginx: `http://127.0.0.1:${nginxPort}`, mesh: `http://127.0.0.1:${gatewayPort}` },
      apiKey,
      model: MODEL,
      stopAll,
      killAll: () => {
        for (const service of started) if (service.running()) service.child.kill("SIGKILL");
      },
    };
    await waitUntilRouted(processes, started);
    return processes;
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** withoutInfermeshVariables drops the caller's INFERMESH_* settings, so that only the bench's flags apply. */
function withoutInfermeshVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith("INFERMESH_")));
}

/**
 * spawnService starts a process, through `prlimit` when it needs a higher open-file limit than the bench's own (prlimit
 * execs the command, so the pid is the service's). With `withChildren`, samples add up the process's children.
 */
function spawnService(
  name: string,
  command: string,
  args: readonly string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
  openFiles: number | undefined,
  withChildren = false,
): Spawned {
  const [file, argv] =
    openFiles === undefined ? [command, args] : ["prlimit", [`--nofile=${openFiles}:${openFiles}`, "--", command, ...args]];
  // The temp dir as working directory: whatever a service writes to its cwd is removed with it.
  const child = spawn(file, argv, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  const tail: string[] = [];
  const keep = (chunk: Buffer) => {
    tail.push(...chunk.toString("utf8").split("\n").filter((line) => line.length > 0));
    if (tail.length > LOG_TAIL_LINES) tail.splice(0, tail.length - LOG_TAIL_LINES);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let running = true;
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      running = false;
      resolve();
    }),
  );
  child.once("error", (error) => {
    running = false;
    tail.push(`cannot start ${command}: ${error.message}`);
  });
  const pid = child.pid ?? -1;
  return {
    name,
    pid,
    child,
    exited,
    running: () => running,
    logTail: () => tail.join("\n"),
    sample: () => {
      const own = sampleProcess(pid);
      if (!own || !withChildren) return own;
      return childPids(pid)
        .map(sampleProcess)
        .reduce<ProcessSample>(
          (sum, sample) =>
            sample
              ? {
                  cpuMs: sum.cpuMs + sample.cpuMs,
                  rssBytes: sum.rssBytes + sample.rssBytes,
                  peakRssBytes: sum.peakRssBytes + sample.peakRssBytes,
                }
              : sum,
          own,
        );
    },
  };
}

async function stopService(service: Spawned): Promise<void> {
  if (!service.running()) return;
  // nginx stops gracefully on SIGQUIT, and at once on SIGTERM; the services drain on SIGTERM.
  service.child.kill(service.name === "nginx" ? "SIGQUIT" : "SIGTERM");
  const timer = setTimeout(() => service.child.kill("SIGKILL"), STOP_TIMEOUT_MS);
  await service.exited;
  clearTimeout(timer);
}

/** runCli runs one short infermesh command and resolves its stdout, trimmed. */
function runCli(cli: CliCommand, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...cli.execArgv, cli.script, ...args], {
      cwd,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0 ? resolve(stdout.trim()) : reject(new Error(`infermesh ${args[0]} ${args[1] ?? ""} failed: ${stderr.trim()}`)),
    );
  });
}

/**
 * waitUntilRouted polls until a chat request answers 200 directly, through nginx and through the mesh (the agent
 * registered and the gateway's routing table has its model); a service that exits meanwhile fails the start at once.
 */
async function waitUntilRouted(processes: MeshProcesses, services: readonly Spawned[]): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  const body = JSON.stringify({ model: processes.model, messages: [{ role: "user", content: "ready?" }], max_tokens: 1 });
  for (const [name, base] of Object.entries(processes.baseUrls)) {
    for (;;) {
      const dead = services.find((service) => !service.running());
      if (dead) throw new Error(`${dead.name} exited during start-up:\n${dead.logTail()}`);
      const status = await fetch(`${base}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${processes.apiKey}` },
        body,
        signal: AbortSignal.timeout(2_000),
      }).then(
        async (response) => {
          await response.arrayBuffer();
          return response.status;
        },
        () => 0,
      );
      if (status === 200) break;
      if (Date.now() > deadline) {
        const logs = services.map((service) => `--- ${service.name}\n${service.logTail()}`).join("\n");
        throw new Error(`the ${name} way to the simulator did not answer 200 within ${READY_TIMEOUT_MS} ms (last status ${status})\n${logs}`);
      }
      await sleep(100);
    }
  }
}
