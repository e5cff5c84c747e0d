import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { resolve as absolutePath, join } from "node:path";
import { createAgent } from "../../services/agent/agent.js";
import { resolveAgentConfig } from "../../services/agent/agent-config.js";
import { createGateway } from "../../services/gateway/gateway.js";
import { SIGN_IN_LINK_TTL_MS } from "../../services/registry/account-service.js";
import { createRegistry } from "../../services/registry/registry.js";
import type { RegistryStore } from "../../services/registry/store/registry-store.js";
import { createSqliteStore } from "../../services/registry/store/sqlite-store.js";
import { parseLogLevel, parsePort } from "../../services/shared/config-values.js";
import { SERVICE_TYPE_NAMES } from "../../services/shared/inference-catalog.js";
import { createLogger } from "../../services/shared/logger.js";
import { collectProcessMetrics } from "../../services/shared/process-metrics.js";
import { createSimulator, type SimulatedModel } from "../../services/sim/simulator.js";
import type { CommandOutput, RunnableCommand } from "./command.js";
import { type FlagSpecs, parseFlags, requireString } from "./flags.js";
import { LOG_LEVEL_FLAG } from "./shared-flags.js";
import { onShutdownSignal } from "./shutdown.js";
import { parseSimulatedModel } from "./sim-command.js";
import { signInLink } from "./users-command.js";

/** DEV_MODELS are the simulator's models unless --model says otherwise: one of each service type. */
export const DEV_MODELS: readonly SimulatedModel[] = [
  { id: "sim-llama", kind: "llm" },
  { id: "sim-whisper", kind: "stt" },
  { id: "sim-diffusion", kind: "image" },
  { id: "sim-voice", kind: "tts" },
  { id: "sim-embed", kind: "embedding" },
  { id: "sim-rerank", kind: "rerank" },
];

/** LOOPBACK is where every part of `infermesh dev` listens. */
const LOOPBACK = "127.0.0.1";
/** STOP_GRACE_MS is how long each part may finish what it is doing when `infermesh dev` stops. */
const STOP_GRACE_MS = 2_000;

/** DEV_USER is the user `infermesh dev` creates its API key for. */
export const DEV_USER = "dev";
const READY_TIMEOUT_MS = 30_000;

/** DEV_KEY_FILE is the file under --data that keeps the dev API key, readable by its owner only. */
export const DEV_KEY_FILE = "dev-api-key";

/** DEV_FLAGS are `infermesh dev`'s flags. */
export const DEV_FLAGS: FlagSpecs = {
  port: {
    type: "string",
    default: "8080",
    value: "PORT",
    description: "the gateway's HTTP port on 127.0.0.1 (0 for any free port)",
    env: "INFERMESH_DEV_PORT",
  },
  "registry-port": {
    type: "string",
    default: "7700",
    value: "PORT",
    description: "the registry's gRPC port, where more agents can join (0 for any free port)",
    env: "INFERMESH_DEV_REGISTRY_PORT",
  },
  data: {
    type: "string",
    default: "./data",
    value: "DIR",
    description: `folder for the SQLite database and the dev API key (in ${DEV_KEY_FILE})`,
    env: "INFERMESH_DEV_DATA",
  },
  model: {
    type: "string",
    multiple: true,
    value: "[KIND=]ID",
    description: "a model the simulator serves (default one of each kind)",
    env: "INFERMESH_DEV_MODEL",
  },
  "log-level": { ...LOG_LEVEL_FLAG, default: "warn" },
};

/**
 * runDev runs the whole mesh in one process on loopback: registry (SQLite under --data), gateway, one agent, and
 * the llama-server simulator as its model server. It prints shell-ready OPENAI_BASE_URL and OPENAI_API_KEY lines
 * (everything else it prints starts with '#'), and stops every part cleanly on Ctrl-C.
 */
export async function runDev(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput): Promise<void> {
  const flags = parseFlags(DEV_FLAGS, argv, env);
  const port = parsePort(flags.setting("port"), requireString(flags, "port"));
  const registryPortWanted = parsePort(flags.setting("registry-port"), requireString(flags, "registry-port"));
  const dataDir = requireString(flags, "data");
  const keyFile = join(dataDir, DEV_KEY_FILE);
  const logLevel = parseLogLevel(flags.setting("log-level"), requireString(flags, "log-level"));
  const models = flags.strings("model").map((value) => parseSimulatedModel(flags.setting("model"), value));
  const say = (line: string) => output.stdout(`# ${line}\n`);
  const started = Date.now();
  const log = createLogger("dev", logLevel);

  mkdirSync(dataDir, { recursive: true });
  const meshToken = randomBytes(24).toString("base64url");
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch((error: unknown) => log.error({ err: error }, "stop failed"));
  };
  try {
    const dbPath = join(dataDir, "infermesh.db");
    say(`starting the registry (database ${dbPath})`);
    const store = createSqliteStore({ path: dbPath });
    stops.push(() => store.close());
    const registry = createRegistry({
      store,
      meshToken,
      listen: { host: LOOPBACK, port: registryPortWanted },
      shutdownGraceMs: STOP_GRACE_MS,
    });
    const registryPort = (await registry.listen()).grpc.port;
    stops.push(() => registry.close());
    say(`registry ready: gRPC 127.0.0.1:${registryPort}`);
    const apiKey = await devApiKey(store, keyFile);

    say("starting the llama-server simulator (a demo fixture standing in for a local model server)");
    const simulated = models.length > 0 ? models : DEV_MODELS;
    const simulator = createSimulator({ models: simulated });
    const sim = await simulator.listen(0, "127.0.0.1");
    stops.push(() => simulator.close());
    say(`simulator ready: ${sim.url}, models ${simulated.map((m) => `${m.id} (${m.kind ?? "llm"})`).join(", ")}`);

    say("starting the gateway");
    const gateway = createGateway({
      registry: `http://127.0.0.1:${registryPort}`,
      meshToken,
      log: createLogger("gateway", logLevel),
      listen: { host: LOOPBACK, port },
      grpcListen: { host: LOOPBACK, port: 0 },
      shutdownGraceMs: STOP_GRACE_MS,
      // One process on loopback: /metrics on the one port, no cap on one user's streams (a local batch runs many at
      // once), and accounts only by invite, or the dev user's by the sign-in link below.
      publicMetrics: true,
      rateLimits: { concurrentStreams: 0 },
      signup: "invite",
    });
    const gatewayAddresses = await gateway.listen();
    const httpPort = gatewayAddresses.http.port;
    const grpcPort = gatewayAddresses.grpc?.port;
    stops.push(() => gateway.close());
    say(`gateway ready: OpenAI API http://127.0.0.1:${httpPort}/v1, InferenceService (gRPC) 127.0.0.1:${grpcPort}`);

    say(`starting an agent for the simulator at ${sim.url}`);
    const agent = createAgent({
      config: resolveAgentConfig({
        mesh: `http://127.0.0.1:${httpPort}`,
        apiKey,
        name: "dev-agent",
        shutdownGraceMs: STOP_GRACE_MS,
        // One simulator serves every kind; each upstream entry exposes the models of its type.
        upstreams: SERVICE_TYPE_NAMES.flatMap((type) => {
          const ids = simulated.filter((m) => (m.kind ?? "llm") === type).map((m) => m.id);
          return ids.length > 0 ? [{ type, url: sim.url, expose: ids, engine: "infermesh-sim" }] : [];
        }),
        logLevel,
      }),
      log: createLogger("agent", logLevel),
    });
    stops.push(() => agent.close());
    const { providerId } = await agent.listen();
    if (providerId === undefined) throw new Error(`the agent could not attach to the gateway at http://127.0.0.1:${httpPort}`);
    say(`agent ready: provider ${providerId}, attached to the gateway; waiting for the gateway to route to it`);
    // One process, one /metrics: the gateway's serves the registry's and the agent's metrics as well.
    for (const source of [registry.metrics.registry, agent.metrics.registry]) {
      for (const { name } of source.getMetricsAsArray()) {
        const metric = source.getSingleMetric(name);
        if (metric) gateway.metrics.registry.registerMetric(metric);
      }
    }
    collectProcessMetrics(gateway.metrics.registry);

    await waitUntil(() => gateway.table.provider(providerId) !== undefined, READY_TIMEOUT_MS);
    const served = agent.models().map((m) => m.id);
    say(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s: models ${served.join(", ")}; Ctrl-C stops everything`);
    say(`more agents join with: ${agentJoinHint(httpPort, absolutePath(keyFile))}`);
    say(
      `InferenceService (gRPC) for internal callers: 127.0.0.1:${grpcPort} (with health and reflection: grpcurl -plaintext 127.0.0.1:${grpcPort} list)`,
    );
    say(
      `Prometheus metrics of all three services: http://127.0.0.1:${httpPort}/metrics (scrape config: infermesh metrics-config --gateway 127.0.0.1:${httpPort})`,
    );
    say(dashboardLine(httpPort, await devSignInToken(store), dbPath));
    say("point any OpenAI client at the mesh: export these two lines in another shell");
    output.stdout(`OPENAI_BASE_URL=http://127.0.0.1:${httpPort}/v1\nOPENAI_API_KEY=${apiKey}\n`);
    await onShutdownSignal(log);
    say("stopping");
  } finally {
    await stopAll();
    log.flush();
  }
}

/**
 * agentJoinHint is the command line that adds an agent to a running `infermesh dev`. The key travels as the file dev
 * keeps it in, never on the command line, which `ps` shows to every user of the machine.
 */
export function agentJoinHint(gatewayPort: number, keyFile: string): string {
  return `infermesh agent --mesh http://127.0.0.1:${gatewayPort} --api-key-file ${shellWord(keyFile)} --upstream llm=URL`;
}

/**
 * dashboardLine is the dashboard's one-time sign-in link for the dev user, with how long it works and the command
 * line that makes another while dev runs.
 */
export function dashboardLine(gatewayPort: number, token: string, dbPath: string): string {
  const url = `http://127.0.0.1:${gatewayPort}`;
  return (
    `dashboard: ${signInLink(url, token)} (one-time sign-in link for user ${DEV_USER}, valid ${SIGN_IN_LINK_TTL_MS / 3_600_000} h; ` +
    `another: infermesh users sign-in-link ${DEV_USER} --url ${url} --db ${shellWord(dbPath)})`
  );
}

/** shellWord quotes a path for the shell when it needs it, so that a printed command line can be pasted as it is. */
function shellWord(path: string): string {
  return /^[\w./-]+$/.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`;
}

/** devSignInToken makes a one-time sign-in link's token for the dev user, whom devApiKey made if needed. */
async function devSignInToken(store: RegistryStore): Promise<string> {
  const link = await store.createSignInLink(DEV_USER, SIGN_IN_LINK_TTL_MS);
  if (link === undefined) throw new Error(`the ${DEV_USER} user is missing from the registry's database`);
  return link.token;
}

/**
 * devApiKey reuses the key kept in keyFile while the store still accepts it, so that a restarted `infermesh dev`
 * keeps the same OPENAI_API_KEY; otherwise it creates one and keeps it there, readable by its owner only.
 */
async function devApiKey(store: RegistryStore, keyFile: string): Promise<string> {
  if (existsSync(keyFile)) {
    const kept = readFileSync(keyFile, "utf8").trim();
    if (await store.authenticate(kept)) return kept;
  }
  const { apiKey } = await store.createApiKey(DEV_USER, "infermesh dev");
  writeFileSync(keyFile, `${apiKey}\n`, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  return apiKey;
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`the mesh was not ready within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** DEV_COMMAND is `infermesh dev`. */
export const DEV_COMMAND: RunnableCommand = {
  name: "dev",
  summary: "the whole mesh on loopback: registry, gateway, an agent and a model-server simulator",
  synopsis: "dev [--port PORT] [--registry-port PORT] [--data DIR] [--model [KIND=]ID]... [flags]",
  flags: DEV_FLAGS,
  run: runDev,
};
