import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { freePorts } from "./free-port.js";
import { cliEntry, MeshProcess, REPO_ROOT, type Crash } from "./mesh-process.js";

/** FAULT_MODEL is the model every simulator serves, so that the gateway can fail over between the three agents. */
export const FAULT_MODEL = "sim-llama";
/** FAULT_USER owns the API key of the run and every agent. */
export const FAULT_USER = "faults";

/** FaultMeshOptions sizes and tunes the mesh under test. */
export interface FaultMeshOptions {
  /** runDir holds the database and one log file per process. */
  readonly runDir: string;
  readonly agents: number;
  readonly heartbeatIntervalMs: number;
  readonly ttlMs: number;
  readonly logLevel: string;
  /** gatewayArgs, agentArgs and simArgs are appended to those commands' flags. */
  readonly gatewayArgs: readonly string[];
  readonly agentArgs: readonly string[];
  readonly simArgs: readonly string[];
}

/** FaultMesh is the mesh under test: real processes on loopback ports the OS gave out. */
export interface FaultMesh {
  readonly registry: MeshProcess;
  readonly gateway: MeshProcess;
  readonly agents: readonly MeshProcess[];
  readonly sims: readonly MeshProcess[];
  /** gatewayUrl is the gateway's HTTP base URL, without "/v1". */
  readonly gatewayUrl: string;
  /** registryUrl is the registry's gRPC base URL. */
  readonly registryUrl: string;
  readonly simUrls: readonly string[];
  readonly apiKey: string;
  readonly meshToken: string;
  readonly dbPath: string;
  /** agentIds are the agents' provider ids, in the order of agents. */
  readonly agentIds: readonly string[];
  /** crashes are the exits the suite did not cause, so far. */
  readonly crashes: readonly Crash[];
  all(): MeshProcess[];
  close(): Promise<void>;
}

/**
 * startFaultMesh starts, each as its own `infermesh` process: one registry (short heartbeat and TTL, so failures are
 * noticed quickly), one gateway, and per agent one simulator; all agents serve the same model for one user, with a
 * key made by `infermesh keys create`. It resolves once every process logged that it is ready.
 */
export async function startFaultMesh(options: FaultMeshOptions): Promise<FaultMesh> {
  const n = options.agents;
  const [registryPort, gatewayPort, ...rest] = await freePorts(2 + 2 * n);
  const agentPorts = rest.slice(0, n);
  const simPorts = rest.slice(n);
  const meshToken = randomBytes(24).toString("base64url");
  const dbPath = join(options.runDir, "infermesh.db");
  const crashes: Crash[] = [];
  const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("INFERMESH_")));
  const make = (name: string, args: string[], readyMsg: string, env: NodeJS.ProcessEnv = {}) =>
    new MeshProcess({
      name,
      args,
      env: { ...baseEnv, ...env },
      readyMsg,
      logFile: join(options.runDir, `${name}.log`),
      onCrash: (crash) => crashes.push(crash),
    });

  const registryUrl = `http://127.0.0.1:${registryPort}`;
  const sims = simPorts.map((port, i) =>
    make(`sim-${i + 1}`, ["sim", "--listen", `127.0.0.1:${port}`, "--model", FAULT_MODEL, ...options.simArgs], "simulator ready"),
  );
  const simUrls = simPorts.map((port) => `http://127.0.0.1:${port}`);
  const registry = make(
    "registry",
    [
      "registry",
      "--listen", `127.0.0.1:${registryPort}`,
      "--db", dbPath,
      "--heartbeat-interval-ms", String(options.heartbeatIntervalMs),
      "--ttl-ms", String(options.ttlMs),
      "--log-level", options.logLevel,
    ],
    "registry ready",
    { INFERMESH_MESH_TOKEN: meshToken },
  );
  const gateway = make(
    "gateway",
    [
      "gateway",
      "--listen", `127.0.0.1:${gatewayPort}`,
      "--grpc-listen", "127.0.0.1:0",
      "--registry", registryUrl,
      "--log-level", options.logLevel,
      ...options.gatewayArgs,
    ],
    "gateway ready",
    { INFERMESH_MESH_TOKEN: meshToken },
  );
  const agentIds = agentPorts.map((_, i) => `fault-agent-${i + 1}`);
  const all = () => [registry, gateway, ...agents, ...sims];
  let agents: MeshProcess[] = [];
  try {
    // Two stages, each in parallel: on a loaded 2-core machine every start costs seconds of compiling and loading.
    // The store waits on SQLite's busy timeout, so `keys create` and the registry may open the new file together;
    // the gateway and the agents reach the registry by themselves once it listens.
    const [apiKey] = await Promise.all([createKey(dbPath, baseEnv), registry.start(), gateway.start(), ...sims.map((sim) => sim.start())]);
    agents = agentPorts.map((port, i) =>
      make(
        `agent-${i + 1}`,
        [
          "agent",
          "--registry", registryUrl,
          "--listen", `127.0.0.1:${port}`,
          "--id", agentIds[i] as string,
          "--name", agentIds[i] as string,
          "--upstream", `llm=${simUrls[i]}`,
          "--log-level", options.logLevel,
          ...options.agentArgs,
        ],
        "agent ready",
        // The key travels in the environment, never on a command line that `ps` shows.
        { INFERMESH_API_KEY: apiKey },
      ),
    );
    await Promise.all(agents.map((agent) => agent.start()));
    return {
      registry,
      gateway,
      agents,
      sims,
      gatewayUrl: `http://127.0.0.1:${gatewayPort}`,
      registryUrl,
      simUrls,
      apiKey,
      meshToken,
      dbPath,
      agentIds,
      crashes,
      all,
      close: () => closeAll(all()),
    };
  } catch (error) {
    await closeAll(all());
    throw error;
  }
}

async function closeAll(processes: readonly MeshProcess[]): Promise<void> {
  await Promise.all(processes.map((p) => p.terminate()));
}

/** createKey runs `infermesh keys create` on the database file, as an operator would, and returns the key. */
function createKey(dbPath: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...cliEntry().nodeArgs, "keys", "create", "--db", dbPath, "--user", FAULT_USER, "--label", "fault suite"], {
      cwd: REPO_ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
    child.once("error", reject);
    child.once("close", (code) => {
      const key = out.trim();
      if (code === 0 && /^im_\S+$/.test(key)) resolve(key);
      else reject(new Error(`infermesh keys create failed (exit ${code}): ${err.trim().split("\n")[0] ?? ""}`));
    });
  });
}
