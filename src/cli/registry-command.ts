import {
  createRegistry,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_TTL_INTERVALS,
  MIN_HEARTBEAT_INTERVAL_MS,
  type RegistryOptions,
} from "../../services/registry/registry.js";
import { openRegistryStore, shownDatabase } from "../../services/registry/store/open-registry-store.js";
import { parseLogLevel, parseMs, parseRedisUrl } from "../../services/shared/config-values.js";
import { formatHostPort, parseHostPort } from "../../services/shared/host-port.js";
import { createLogger } from "../../services/shared/logger.js";
import { collectProcessMetrics } from "../../services/shared/process-metrics.js";
import { shownRedisUrl } from "../../services/shared/redis-connection.js";
import { readServerTls } from "../../services/shared/tls-files.js";
import type { RunnableCommand } from "./command.js";
import { type FlagSpecs, parseFlags, requireString } from "./flags.js";
import { type ReadTextFile, readTextFile } from "./secret-flag.js";
import { DB_FLAG, LOG_LEVEL_FLAG, MESH_TOKEN_FLAGS, REDIS_FLAG, requireMeshToken } from "./shared-flags.js";
import { onShutdownSignal } from "./shutdown.js";

/** DEFAULT_REGISTRY_LISTEN is the registry's gRPC address unless told otherwise. */
export const DEFAULT_REGISTRY_LISTEN = "127.0.0.1:7700";

/** REGISTRY_FLAGS are `infermesh registry`'s flags. */
export const REGISTRY_FLAGS: FlagSpecs = {
  listen: {
    type: "string",
    default: DEFAULT_REGISTRY_LISTEN,
    value: "HOST:PORT",
    description: "gRPC listen address",
    env: "INFERMESH_REGISTRY_LISTEN",
  },
  db: DB_FLAG,
  redis: {
    ...REDIS_FLAG,
    description: "redis:// URL of the Redis (or Valkey) where registry replicas share provider presence; none: presence in memory",
  },
  ...MESH_TOKEN_FLAGS,
  "metrics-listen": {
    type: "string",
    value: "HOST:PORT",
    description: "HTTP address serving Prometheus /metrics",
    env: "INFERMESH_REGISTRY_METRICS_LISTEN",
  },
  "heartbeat-interval-ms": {
    type: "string",
    default: String(DEFAULT_HEARTBEAT_INTERVAL_MS),
    value: "MS",
    description: "how often agents are told to heartbeat, in milliseconds",
    env: "INFERMESH_REGISTRY_HEARTBEAT_INTERVAL_MS",
  },
  "ttl-ms": {
    type: "string",
    value: "MS",
    description: `milliseconds without a heartbeat before a provider goes offline (default ${DEFAULT_TTL_INTERVALS} heartbeat intervals)`,
    env: "INFERMESH_REGISTRY_TTL_MS",
  },
  "tls-cert": {
    type: "string",
    value: "FILE",
    description: "PEM certificate chain (leaf first) to serve gRPC over TLS with; needs --tls-key",
    env: "INFERMESH_REGISTRY_TLS_CERT",
  },
  "tls-key": {
    type: "string",
    value: "FILE",
    description: "PEM private key of --tls-cert, unencrypted",
    env: "INFERMESH_REGISTRY_TLS_KEY",
  },
  "log-level": { ...LOG_LEVEL_FLAG, default: "info" },
};

/** RegistryConfig is `infermesh registry`'s configuration, parsed once: the registry's options, its database and log level. */
export interface RegistryConfig extends Omit<RegistryOptions, "store"> {
  readonly dbPath: string;
  readonly logLevel: string;
}

/** parseRegistryConfig turns flags and their variables into a frozen RegistryConfig or throws a ConfigError. */
export function parseRegistryConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  readFile: ReadTextFile = readTextFile,
): RegistryConfig {
  const flags = parseFlags(REGISTRY_FLAGS, argv, env);
  const meshToken = requireMeshToken(flags, readFile);
  const heartbeatIntervalMs = parseMs(
    flags.setting("heartbeat-interval-ms"),
    requireString(flags, "heartbeat-interval-ms"),
    MIN_HEARTBEAT_INTERVAL_MS,
  );
  const ttl = flags.string("ttl-ms");
  const logLevel = parseLogLevel(flags.setting("log-level"), requireString(flags, "log-level"));
  const metrics = flags.string("metrics-listen");
  const redis = flags.string("redis");
  const tls = readServerTls(flags.string("tls-cert"), flags.string("tls-key"), {
    cert: flags.setting("tls-cert"),
    key: flags.setting("tls-key"),
  });
  return Object.freeze({
    listen: parseHostPort(flags.setting("listen"), requireString(flags, "listen")),
    dbPath: requireString(flags, "db"),
    redis: redis === undefined ? undefined : parseRedisUrl(flags.setting("redis"), redis),
    meshToken,
    metricsListen: metrics ? parseHostPort(flags.setting("metrics-listen"), metrics) : undefined,
    heartbeatIntervalMs,
    ...(ttl === undefined ? {} : { ttlMs: parseMs(flags.setting("ttl-ms"), ttl, heartbeatIntervalMs) }),
    tls,
    logLevel,
  });
}

/** runRegistry starts a registry and serves until SIGTERM or SIGINT. */
export async function runRegistry(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  const config = parseRegistryConfig(argv, env);
  const log = createLogger("registry", config.logLevel);
  const store = await openRegistryStore(config.dbPath);
  const registry = createRegistry({ ...config, store, log });
  collectProcessMetrics(registry.metrics.registry);
  try {
    const addresses = await registry.listen();
    log.info(
      {
        listen: formatHostPort(addresses.grpc),
        tls: config.tls !== undefined,
        metricsPort: addresses.metrics?.port,
        db: shownDatabase(config.dbPath),
        presence: config.redis === undefined ? "memory" : shownRedisUrl(config.redis),
        heartbeatIntervalMs: registry.settings.heartbeatIntervalMs,
        ttlMs: registry.settings.ttlMs,
      },
      "registry ready",
    );
  } catch (error) {
    await registry.close();
    await store.close();
    throw error;
  }
  await onShutdownSignal(log);
  await registry.close();
  await store.close();
  log.info("registry stopped");
  log.flush();
}

/** REGISTRY_COMMAND is `infermesh registry`. */
export const REGISTRY_COMMAND: RunnableCommand = {
  name: "registry",
  summary: "the control plane: providers, heartbeats, API keys (gRPC)",
  synopsis: "registry [--listen HOST:PORT] [--db FILE|URL] [--redis URL] (--mesh-token-file FILE | --mesh-token TOKEN) [flags]",
  flags: REGISTRY_FLAGS,
  run: runRegistry,
};
