import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { type CliCommand, freshestCli } from "../bench/cli-command.js";
import { agentCommand, gatewayCommand, type ServiceCommand, simCommand } from "../bench/mesh-commands.js";
import { freePorts, withoutInfermeshVariables } from "../bench/process-launcher.js";
import { openRegistryStore } from "../services/registry/store/open-registry-store.js";
import { type NginxProxy, startNginx } from "../test/support/nginx-fixture.js";
import { type PostgresServer, startPostgres } from "../test/support/postgres-fixture.js";
import { type RedisServer, startRedis } from "../test/support/redis-fixture.js";
import { testCertificates } from "../test/support/test-certificates.js";
import { FAULT_MODEL, FAULT_USER } from "./fault-mesh.js";
import { type Crash, type MeshProcess, meshProcesses } from "./mesh-process.js";

/** DeploymentOptions size and tune the deployment under test. */
export interface DeploymentOptions {
  /** runDir holds one log file per process. */
  readonly runDir: string;
  readonly agents: number;
  /** clients is the number of load clients, each with an API key of its own. */
  readonly clients: number;
  readonly heartbeatIntervalMs: number;
  readonly ttlMs: number;
  readonly logLevel: string;
  /** gatewayArgs and agentArgs are appended to every gateway's and agent's flags. */
  readonly gatewayArgs: readonly string[];
  readonly agentArgs: readonly string[];
  readonly cli?: CliCommand;
}

/** DeploymentKeys are the run's API keys, all of FAULT_USER, who owns the agents: label and key id beside each. */
export interface DeploymentKeys {
  /** load are the load clients' keys, one per client, so that each draws on a rate-limit budget of its own. */
  readonly load: readonly string[];
  /** loadKeyIds are their ids, as usage rows name them. */
  readonly loadKeyIds: readonly string[];
  /** agent is the agents' key. */
  readonly agent: string;
  /** rate, streams and probe are fresh keys for the checks: the per-minute budget, the stream slots, the listings. */
  readonly rate: string;
  readonly streams: string;
  readonly probe: string;
}

/**
 * Deployment is a whole mesh as operators run one: PostgreSQL and Redis, two registry replicas sharing both, two
 * gateways (each on both replicas, in opposite orders, and on the Redis) behind nginx, which terminates TLS for the
 * clients and the agents' HTTP/2 links, and agents each beside a simulator, dialing nginx's URL.
 */
export interface Deployment {
  /** runDir holds the processes' logs, each in NAME.log. */
  readonly runDir: string;
  readonly postgres: PostgresServer;
  readonly databaseUrl: string;
  readonly redis: RedisServer;
  readonly registries: readonly MeshProcess[];
  readonly registryUrls: readonly string[];
  readonly gateways: readonly MeshProcess[];
  /** gatewayUrls are the gateways' own plaintext HTTP base URLs, metricsUrls their operator ports. */
  readonly gatewayUrls: readonly string[];
  readonly metricsUrls: readonly string[];
  readonly nginx: NginxProxy;
  /** url is nginx's https:// base URL, the one clients and agents know. */
  readonly url: string;
  /** ca is the certificate authority nginx's certificate is signed by. */
  readonly ca: Buffer;
  readonly agents: readonly MeshProcess[];
  readonly sims: readonly MeshProcess[];
  readonly agentIds: readonly string[];
  readonly keys: DeploymentKeys;
  readonly meshToken: string;
  readonly cli: CliCommand;
  /** crashes are the exits of infermesh processes the suite did not cause. */
  readonly crashes: readonly Crash[];
  all(): MeshProcess[];
  close(): Promise<void>;
}

/**
 * startDeployment starts the deployment on loopback ports the OS gave out (each service on fixed ports, so that a
 * restart comes back on the same ones) and resolves once every process logged that it is ready. The database is a
 * fresh one on a PostgreSQL of the run's own; the first registry to start migrates it.
 */
export async function startDeployment(options: DeploymentOptions): Promise<Deployment> {
  const n = options.agents;
  const ports = await freePorts(4 + 3 * 2 + n);
  const take = () => ports.shift() as number;
  const registryPorts = [take(), take()];
  const gatewayPorts = [0, 1].map(() => ({ http: take(), grpc: take(), metrics: take() }));
  const simPorts = Array.from({ length: n }, take);
  const meshToken = randomBytes(24).toString("base64url");
  const crashes: Crash[] = [];
  const cli = options.cli ?? freshestCli();
  const env = withoutInfermeshVariables(process.env);
  const certificates = testCertificates();
  const processes: MeshProcess[] = [];
  const newProcess = meshProcesses({ runDir: options.runDir, cli, env, onCrash: (crash) => crashes.push(crash) });
  const make = (name: string, command: ServiceCommand) => {
    const made = newProcess(name, command);
    processes.push(made);
    return made;
  };
  let postgres: PostgresServer | undefined;
  let redis: RedisServer | undefined;
  let nginx: NginxProxy | undefined;
  const closeAll = async () => {
    await Promise.all(processes.map((p) => p.terminate()));
    await nginx?.stop();
    await redis?.stop();
    await postgres?.stop();
  };
  try {
    [postgres, redis] = await Promise.all([startPostgres(), startRedis()]);
    const databaseUrl = postgres.url(await postgres.createDatabase());
    const redisUrl = redis.url();
    const { heartbeatIntervalMs, ttlMs, logLevel } = options;
    const registryUrls = registryPorts.map((port) => `http://127.0.0.1:${port}`);
    const registries = registryPorts.map((port, i) =>
      make(`registry-${i + 1}`, {
        args: [
          "registry",
          "--listen",
          `127.0.0.1:${port}`,
          "--db",
          databaseUrl,
          "--redis",
          redisUrl,
          "--heartbeat-interval-ms",
          String(heartbeatIntervalMs),
          "--ttl-ms",
          String(ttlMs),
          "--log-level",
          logLevel,
        ],
        env: { INFERMESH_MESH_TOKEN: meshToken },
        readyMsg: "registry ready",
      }),
    );
    // Each gateway starts on a different replica, so that a replica's fault strikes one gateway's link and not both.
    // Its usage spool keeps its path across restarts: a killed gateway's successor sends the records it left.
    const gateways = gatewayPorts.map((port, i) => {
      const order = i === 0 ? registryUrls : [...registryUrls].reverse();
      return make(
        `gateway-${i + 1}`,
        gatewayCommand({
          port: port.http,
          grpcPort: port.grpc,
          metricsPort: port.metrics,
          registryUrl: order[0] as string,
          meshToken,
          logLevel,
          extraArgs: [
            "--registry",
            order[1] as string,
            "--redis",
            redisUrl,
            "--usage-spool",
            join(options.runDir, `gateway-${i + 1}.usage-spool`),
            ...options.gatewayArgs,
          ],
        }),
      );
    });
    const sims = simPorts.map((port, i) => make(`sim-${i + 1}`, simCommand({ port, model: FAULT_MODEL })));
    // The replicas together (one migrates the database while the other waits for it), then the gateways: a gateway
    // that found its first replica not listening yet would move to the other and stay there.
    await Promise.all([...registries, ...sims].map((p) => p.start()));
    await Promise.all(gateways.map((g) => g.start()));
    const keys = await createKeys(databaseUrl, options.clients);
    nginx = await startNginx({
      upstreams: { http: gatewayPorts.map((port) => `127.0.0.1:${port.http}`) },
      tls: { certFile: certificates.certFile, keyFile: certificates.keyFile },
    });
    const url = nginx.url;
    const agentIds = Array.from({ length: n }, (_, i) => `deploy-agent-${i + 1}`);
    const agents = agentIds.map((id, i) =>
      make(
        `agent-${i + 1}`,
        agentCommand({
          meshUrl: url,
          apiKey: keys.agent,
          id,
          name: id,
          upstreamUrl: `http://127.0.0.1:${simPorts[i]}`,
          logLevel,
          extraArgs: ["--ca-file", certificates.caFile, ...options.agentArgs],
        }),
      ),
    );
    await Promise.all(agents.map((agent) => agent.start()));
    return {
      runDir: options.runDir,
      postgres,
      databaseUrl,
      redis,
      registries,
      registryUrls,
      gateways,
      gatewayUrls: gatewayPorts.map((port) => `http://127.0.0.1:${port.http}`),
      metricsUrls: gatewayPorts.map((port) => `http://127.0.0.1:${port.metrics}`),
      nginx,
      url,
      ca: certificates.ca,
      agents,
      sims,
      agentIds,
      keys,
      meshToken,
      cli,
      crashes,
      all: () => [...processes],
      close: closeAll,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/** createKeys makes the run's keys in the database, as `infermesh keys create` does, over one connection. */
async function createKeys(databaseUrl: string, clients: number): Promise<DeploymentKeys> {
  const store = await openRegistryStore(databaseUrl);
  try {
    const create = (label: string) => store.createApiKey(FAULT_USER, label);
    const agent = await create("agents");
    const load = [];
    for (let i = 0; i < clients; i++) load.push(await create(`load-${i + 1}`));
    return {
      load: load.map((k) => k.apiKey),
      loadKeyIds: load.map((k) => k.record.id),
      agent: agent.apiKey,
      rate: (await create("rate-check")).apiKey,
      streams: (await create("stream-check")).apiKey,
      probe: (await create("probe")).apiKey,
    };
  } finally {
    await store.close();
  }
}
