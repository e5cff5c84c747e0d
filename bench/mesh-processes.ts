/**
 * mesh-processes starts what bench/mesh-bench.ts measures, each in a process of its own so that CPU time and resident
 * memory can be read per process from /proc: the llama-server simulator, and in front of it the mesh (registry,
 * gateway and agent, the real `infermesh` commands) and nginx, the reference proxy. Everything listens on loopback;
 * the agent listens nowhere: it dials the gateway's public port and holds its one link there.
 * Secrets (the mesh token, the API key) reach the children through INFERMESH_* variables, never argv, and are never
 * printed. stopAll stops them in an order that lets each drain; killAll is the synchronous last resort on exit.
 */

import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { CliCommand } from "./cli-command.js";
import { agentCommand, gatewayCommand, registryCommand, type ServiceCommand, simCommand } from "./mesh-commands.js";
import { nginxConfig } from "./nginx-config.js";
import {
  createApiKey,
  freePorts,
  hasExited,
  type LaunchOptions,
  launch,
  launchCli,
  stopProcess,
  withoutInfermeshVariables,
} from "./process-launcher.js";
import { childPids, type ProcessSample, sampleProcess } from "./process-stats.js";

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
/** SERVICE_LOG_LEVEL keeps the services quiet: only warnings and errors reach the log tail. */
const SERVICE_LOG_LEVEL = "warn";

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

interface Spawned extends ServiceProcess {
  readonly child: ChildProcess;
}

/**
 * startMeshProcesses starts simulator, registry, gateway, agent and nginx, and resolves once a chat request routes
 * through each way; on failure it stops what it started and throws with the failing service's log.
 */
export async function startMeshProcesses(options: MeshProcessOptions): Promise<MeshProcesses> {
  const started: Spawned[] = [];
  const meshToken = randomBytes(24).toString("base64url");
  const dbPath = join(options.tempDir, "infermesh.db");
  // The temp dir as working directory: whatever a service writes to its cwd is removed with it.
  const launchOptions: LaunchOptions = {
    cwd: options.tempDir,
    env: { ...withoutInfermeshVariables(process.env), NODE_ENV: "production" },
    openFiles: options.openFiles,
  };

  const nodeService = (name: string, command: ServiceCommand, profile = false): Spawned => {
    const nodeArgs =
      profile && options.cpuProfileDir !== undefined
        ? ["--cpu-prof", "--cpu-prof-dir", options.cpuProfileDir, "--cpu-prof-name", `${name}.cpuprofile`]
        : [];
    const env = { ...launchOptions.env, ...command.env };
    const spawned = watchService(name, launchCli(options.cli, command.args, { ...launchOptions, env }, nodeArgs));
    started.push(spawned);
    return spawned;
  };

  const stopAll = async () => {
    // Clients before servers: the agent first (it is the gateway's client now; closing its link takes it offline),
    // then the gateway, then the rest.
    const order = ["agent", "gateway", "nginx", "simulator", "registry"];
    const ordered = [...started].sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
    // nginx stops gracefully on SIGQUIT, and at once on SIGTERM; the services drain on SIGTERM.
    for (const service of ordered) {
      await stopProcess(service.child, STOP_TIMEOUT_MS, (child) => child.kill(service.name === "nginx" ? "SIGQUIT" : "SIGTERM"));
    }
  };

  try {
    const [simPort, registryPort, gatewayPort, nginxPort] = (await freePorts(4)) as [number, number, number, number];
    const direct = `http://127.0.0.1:${simPort}`;
    const registryUrl = `http://127.0.0.1:${registryPort}`;

    options.log(`starting the simulator on ${direct}`);
    // Non-streamed answers are immediate; streams set their own pace per request (the request's `sim` field).
    const simulator = nodeService(
      "simulator",
      simCommand({ port: simPort, model: MODEL, extraArgs: ["--tokens-per-second", "0", "--ttft-ms", "0"] }),
    );

    options.log(`starting the registry on 127.0.0.1:${registryPort}`);
    const registry = nodeService("registry", registryCommand({ port: registryPort, dbPath, meshToken, logLevel: SERVICE_LOG_LEVEL }));

    options.log("creating the bench user's API key");
    // `keys create` refuses a database that does not exist yet: the registry makes it as it starts.
    await waitForFile(dbPath, START_FILE_TIMEOUT_MS);
    const apiKey = await createApiKey(
      options.cli,
      { dbPath, user: "bench", label: "mesh bench" },
      { ...launchOptions, openFiles: undefined },
    );

    options.log(`starting the gateway on 127.0.0.1:${gatewayPort}`);
    const gateway = nodeService(
      "gateway",
      gatewayCommand({
        port: gatewayPort,
        registryUrl,
        meshToken,
        logLevel: SERVICE_LOG_LEVEL,
        // The bench's one API key stands for many clients: per-key limits would measure the limiter, not the path.
        extraArgs: ["--rate-limit-rpm", "0", "--models-rate-limit-rpm", "0", "--max-concurrent-streams", "0"],
      }),
      true,
    );

    // The agent dials the gateway: it starts once the gateway listens, as an agent joins a running mesh.
    await waitUntilListening(gateway, `http://127.0.0.1:${gatewayPort}/health`);
    options.log(`starting the agent, attaching to the gateway at 127.0.0.1:${gatewayPort}`);
    const agent = nodeService(
      "agent",
      agentCommand({
        meshUrl: `http://127.0.0.1:${gatewayPort}`,
        apiKey,
        name: "bench-agent",
        upstreamUrl: direct,
        logLevel: SERVICE_LOG_LEVEL,
        extraArgs: ["--max-concurrency", String(AGENT_MAX_CONCURRENCY), "--max-queue", String(AGENT_MAX_CONCURRENCY)],
      }),
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
    const nginx = watchService(
      "nginx",
      launch(options.nginx, ["-p", nginxDir, "-c", configPath, "-e", join(nginxDir, "error.log")], launchOptions),
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
        for (const service of started) if (!hasExited(service.child)) service.child.kill("SIGKILL");
      },
    };
    await waitUntilRouted(processes, started);
    return processes;
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/**
 * watchService keeps the last lines a service writes, to explain a failure, and samples its CPU and memory; with
 * `withChildren`, samples add up the process's children (nginx's workers).
 */
function watchService(name: string, child: ChildProcess, withChildren = false): Spawned {
  const tail: string[] = [];
  const keep = (chunk: Buffer) => {
    tail.push(
      ...chunk
        .toString("utf8")
        .split("\n")
        .filter((line) => line.length > 0),
    );
    if (tail.length > LOG_TAIL_LINES) tail.splice(0, tail.length - LOG_TAIL_LINES);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  child.once("error", (error) => tail.push(`cannot start ${name}: ${error.message}`));
  const pid = child.pid ?? -1;
  return {
    name,
    pid,
    child,
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

/** waitUntilListening polls a service's health URL until it answers at all; a service that exits meanwhile fails the start. */
async function waitUntilListening(service: Spawned, url: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (hasExited(service.child)) throw new Error(`${service.name} exited during start-up:\n${service.logTail()}`);
    const answered = await fetch(url, { signal: AbortSignal.timeout(2_000) }).then(
      async (response) => {
        await response.arrayBuffer();
        return true;
      },
      () => false,
    );
    if (answered) return;
    if (Date.now() > deadline) throw new Error(`${service.name} did not listen within ${READY_TIMEOUT_MS} ms:\n${service.logTail()}`);
    await sleep(100);
  }
}

/**
 * waitUntilRouted polls until a chat request answers 200 directly, through nginx and through the mesh (the agent
 * attached to the gateway, and the gateway's routing table has its model); a service that exits meanwhile fails the
 * start at once.
 */
async function waitUntilRouted(processes: MeshProcesses, services: readonly Spawned[]): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  const body = JSON.stringify({ model: processes.model, messages: [{ role: "user", content: "ready?" }], max_tokens: 1 });
  for (const [name, base] of Object.entries(processes.baseUrls)) {
    for (;;) {
      const dead = services.find((service) => hasExited(service.child));
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
        throw new Error(
          `the ${name} way to the simulator did not answer 200 within ${READY_TIMEOUT_MS} ms (last status ${status})\n${logs}`,
        );
      }
      await sleep(100);
    }
  }
}

/** START_FILE_TIMEOUT_MS bounds the wait for the registry to make its database. */
const START_FILE_TIMEOUT_MS = 60_000;

/** waitForFile resolves once path exists, or rejects after timeoutMs. */
async function waitForFile(path: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`${path} did not appear within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
