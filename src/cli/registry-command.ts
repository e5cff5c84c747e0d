import { createRegistryServer, DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_TTL_INTERVALS } from "../../services/registry/registry-server.js";
import { createSqliteStore } from "../../services/registry/store/sqlite-store.js";
import { createLogger, LOG_LEVELS } from "../../services/shared/logger.js";
import { createMetricsServer } from "../../services/shared/metrics-server.js";
import { collectProcessMetrics } from "../../services/shared/process-metrics.js";
import {
  formatHostPort,
  parseFlags,
  parseHostPort,
  parseLogLevel,
  parseMs,
  requireString,
  UsageError,
  type FlagSpecs,
  type HostPort,
  type ParsedFlags,
  usageText,
} from "./flags.js";
import { onShutdownSignal } from "./shutdown.js";

/** DEFAULT_DB_PATH is where the registry keeps users and keys unless told otherwise. */
export const DEFAULT_DB_PATH = "./data/infermesh.db";
/** DEFAULT_REGISTRY_LISTEN is the registry's gRPC address unless told otherwise. */
export const DEFAULT_REGISTRY_LISTEN = "127.0.0.1:7700";
/** MIN_MESH_TOKEN_LENGTH keeps guessable mesh tokens out. */
export const MIN_MESH_TOKEN_LENGTH = 16;

/** REGISTRY_FLAGS are `infermesh registry`'s flags. */
export const REGISTRY_FLAGS: FlagSpecs = {
  listen: { type: "string", default: DEFAULT_REGISTRY_LISTEN, description: "gRPC listen address HOST:PORT" },
  db: { type: "string", default: DEFAULT_DB_PATH, description: "SQLite file with users and API keys" },
  "mesh-token": { type: "string", description: `secret gateways present (at least ${MIN_MESH_TOKEN_LENGTH} characters)` },
  "metrics-listen": { type: "string", description: "HTTP address HOST:PORT serving Prometheus /metrics" },
  "heartbeat-interval-ms": {
    type: "string",
    default: String(DEFAULT_HEARTBEAT_INTERVAL_MS),
    description: "how often agents are told to heartbeat, in milliseconds",
  },
  "ttl-ms": { type: "string", description: `ms without a heartbeat before a provider goes offline (default ${DEFAULT_TTL_INTERVALS} intervals)` },
  "log-level": { type: "string", default: "info", description: `log level: ${LOG_LEVELS.join(", ")}` },
  help: { type: "boolean", description: "print this help" },
};

/** RegistryConfig is `infermesh registry`'s configuration, parsed once. */
export interface RegistryConfig {
  readonly listen: HostPort;
  readonly dbPath: string;
  readonly meshToken: string;
  readonly metricsListen: HostPort | undefined;
  readonly heartbeatIntervalMs: number;
  readonly ttlMs: number;
  readonly logLevel: string;
}

/** requireMeshToken reads --mesh-token, which registry and gateway share, refusing guessable ones. */
export function requireMeshToken(flags: ParsedFlags): string {
  const meshToken = requireString(flags, "mesh-token");
  if (meshToken.length < MIN_MESH_TOKEN_LENGTH) {
    throw new UsageError(`--mesh-token must be at least ${MIN_MESH_TOKEN_LENGTH} characters`);
  }
  return meshToken;
}

/** parseRegistryConfig turns flags and INFERMESH_* variables into a frozen RegistryConfig or throws a UsageError. */
export function parseRegistryConfig(argv: readonly string[], env: NodeJS.ProcessEnv): RegistryConfig {
  const flags = parseFlags(REGISTRY_FLAGS, argv, env);
  const meshToken = requireMeshToken(flags);
  const heartbeatIntervalMs = parseMs("heartbeat-interval-ms", requireString(flags, "heartbeat-interval-ms"), 50);
  const ttl = flags.string("ttl-ms");
  const logLevel = parseLogLevel(requireString(flags, "log-level"));
  const metrics = flags.string("metrics-listen");
  return Object.freeze({
    listen: parseHostPort("--listen", requireString(flags, "listen")),
    dbPath: requireString(flags, "db"),
    meshToken,
    metricsListen: metrics ? parseHostPort("--metrics-listen", metrics) : undefined,
    heartbeatIntervalMs,
    ttlMs: ttl === undefined ? heartbeatIntervalMs * DEFAULT_TTL_INTERVALS : parseMs("ttl-ms", ttl, heartbeatIntervalMs),
    logLevel,
  });
}

/** runRegistry starts a registry and serves until SIGTERM or SIGINT. */
export async function runRegistry(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  if (parseFlags(REGISTRY_FLAGS, argv, env).boolean("help")) {
    process.stdout.write(usageText("infermesh registry [flags]", REGISTRY_FLAGS));
    return;
  }
  const config = parseRegistryConfig(argv, env);
  const log = createLogger("registry", config.logLevel);
  const store = createSqliteStore({ path: config.dbPath });
  const registry = createRegistryServer({
    store,
    meshToken: config.meshToken,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    ttlMs: config.ttlMs,
  });
  collectProcessMetrics(registry.metrics.registry);
  const metricsServer = config.metricsListen ? createMetricsServer(registry.metrics.registry) : undefined;
  try {
    const port = await registry.listen(formatHostPort(config.listen));
    const metricsPort = config.metricsListen
      ? await metricsServer?.listen(config.metricsListen.host, config.metricsListen.port)
      : undefined;
    log.info(
      { listen: `${config.listen.host}:${port}`, metricsPort, db: config.dbPath, heartbeatIntervalMs: config.heartbeatIntervalMs, ttlMs: config.ttlMs },
      "registry ready",
    );
  } catch (error) {
    await registry.close(0);
    await store.close();
    throw error;
  }
  await onShutdownSignal(log);
  await registry.close();
  await metricsServer?.close();
  await store.close();
  log.info("registry stopped");
  log.flush();
}
