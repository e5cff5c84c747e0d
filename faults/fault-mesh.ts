import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { type CliCommand, freshestCli, REPO_DIR } from "../bench/cli-command.js";
import { agentCommand, gatewayCommand, registryCommand, simCommand } from "../bench/mesh-commands.js";
import { createApiKey, freePorts, withoutInfermeshVariables } from "../bench/process-launcher.js";
import { type Crash, type MeshProcess, meshProcesses } from "./mesh-process.js";

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
  /** cli is how the processes run `infermesh`; the fresher of the build and the sources when absent. */
  readonly cli?: CliCommand;
}

/** FaultMesh is the mesh under test: real processes on loopback ports the OS gave out. */
export interface FaultMesh {
  readonly registry: MeshProcess;
  readonly gateway: MeshProcess;
  readonly agents: readonly MeshProcess[];
  readonly sims: readonly MeshProcess[];
  /** gatewayUrl is the gateway's HTTP base URL, without "/v1"; the agents dial it too. */
  readonly gatewayUrl: string;
  /** metricsUrl is where the gateway serves its metrics, the operator's port. */
  readonly metricsUrl: string;
  /** gatewayGrpc is the gateway's internal gRPC address, where peers call AgentService.Infer with the mesh token. */
  readonly gatewayGrpc: string;
  /** registryUrl is the registry's gRPC base URL. */
  readonly registryUrl: string;
  readonly simUrls: readonly string[];
  readonly apiKey: string;
  readonly meshToken: string;
  readonly dbPath: string;
  /** cli is how the processes run `infermesh`. */
  readonly cli: CliCommand;
  /** agentIds are the agents' provider ids, in the order of agents. */
  readonly agentIds: readonly string[];
  /** crashes are the exits the suite did not cause, so far. */
  readonly crashes: readonly Crash[];
  all(): MeshProcess[];
  close(): Promise<void>;
}

/**
 * startFaultMesh starts, each as its own `infermesh` process: one registry (short heartbeat and TTL, so failures are
 * noticed quickly), one gateway on fixed ports (a restart comes back on the same ones), and per agent one simulator;
 * all agents serve the same model for one user, with a key made by `infermesh keys create`, and attach to the gateway
 * through its public URL. It resolves once every process logged that it is ready.
 */
export async function startFaultMesh(options: FaultMeshOptions): Promise<FaultMesh> {
  const n = options.agents;
  const [registryPort, gatewayPort, gatewayGrpcPort, metricsPort, ...simPorts] = (await freePorts(4 + n)) as [
    number,
    number,
    number,
    number,
    ...number[],
  ];
  const meshToken = randomBytes(24).toString("base64url");
  const dbPath = join(options.runDir, "infermesh.db");
  const crashes: Crash[] = [];
  const cli = options.cli ?? freshestCli();
  const env = withoutInfermeshVariables(process.env);
  const make = meshProcesses({ runDir: options.runDir, cli, env, onCrash: (crash) => crashes.push(crash) });

  const registryUrl = `http://127.0.0.1:${registryPort}`;
  const sims = simPorts.map((port, i) => make(`sim-${i + 1}`, simCommand({ port, model: FAULT_MODEL, extraArgs: options.simArgs })));
  const simUrls = simPorts.map((port) => `http://127.0.0.1:${port}`);
  const { heartbeatIntervalMs, ttlMs, logLevel } = options;
  const registry = make("registry", registryCommand({ port: registryPort, dbPath, meshToken, logLevel, heartbeatIntervalMs, ttlMs }));
  const gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
  const gateway = make(
    "gateway",
    gatewayCommand({
      port: gatewayPort,
      grpcPort: gatewayGrpcPort,
      metricsPort,
      registryUrl,
      meshToken,
      logLevel,
      extraArgs: options.gatewayArgs,
    }),
  );
  const agentIds = Array.from({ length: n }, (_, i) => `fault-agent-${i + 1}`);
  const all = () => [registry, gateway, ...agents, ...sims];
  let agents: MeshProcess[] = [];
  try {
    // Stages, each in parallel where it can be: on a loaded 2-core machine every start costs seconds of compiling and
    // loading. `keys create` needs the database the registry makes; the gateway reaches the registry by itself once it
    // listens. The agents dial the gateway once it is ready.
    await Promise.all([registry.start(), gateway.start(), ...sims.map((sim) => sim.start())]);
    const apiKey = await createApiKey(cli, { dbPath, user: FAULT_USER, label: "fault suite" }, { cwd: REPO_DIR, env });
    agents = agentIds.map((id, i) => {
      const upstreamUrl = simUrls[i] as string;
      return make(
        `agent-${i + 1}`,
        agentCommand({ meshUrl: gatewayUrl, apiKey, id, name: id, upstreamUrl, logLevel, extraArgs: options.agentArgs }),
      );
    });
    await Promise.all(agents.map((agent) => agent.start()));
    return {
      registry,
      gateway,
      agents,
      sims,
      gatewayUrl,
      metricsUrl: `http://127.0.0.1:${metricsPort}`,
      gatewayGrpc: `127.0.0.1:${gatewayGrpcPort}`,
      registryUrl,
      simUrls,
      apiKey,
      meshToken,
      dbPath,
      cli,
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
