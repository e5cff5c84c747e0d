import { AccountService } from "../../gen/infermesh/v1/accounts_pb.js";
import { ChangeCause, RegistryService } from "../../gen/infermesh/v1/registry_pb.js";
import { type Clock, systemClock } from "../shared/clock.js";
import { ConfigError } from "../shared/config-error.js";
import { bindService, createGrpcServer } from "../shared/grpc/server.js";
import { formatHostPort, type HostPort } from "../shared/host-port.js";
import { createLogger, type Logger } from "../shared/logger.js";
import { createMetricsServer } from "../shared/metrics-server.js";
import type { ServerTls } from "../shared/tls-files.js";
import { createAccountService } from "./account-service.js";
import { createCallerAuth } from "./caller-auth.js";
import { ProviderSettingsCache } from "./provider-settings.js";
import { ProviderTable } from "./provider-table.js";
import { createRegistryMetrics, type RegistryMetrics } from "./registry-metrics.js";
import { createRegistryService } from "./registry-service.js";
import { DEFAULT_PRESENCE_PREFIX, SharedPresence } from "./shared-presence.js";
import type { RegistryStore } from "./store/registry-store.js";
import { WatchHub } from "./watch-hub.js";

/** DEFAULT_HEARTBEAT_INTERVAL_MS is how often agents are told to heartbeat. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 10_000;
/** DEFAULT_TTL_INTERVALS is how many missed intervals take a provider offline. */
export const DEFAULT_TTL_INTERVALS = 3;
/** DEFAULT_SHUTDOWN_GRACE_MS is how long calls in flight may finish on close. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 5_000;
/** DEFAULT_SESSION_TTL_MS is how long a signed-in session lasts: 7 days. */
export const DEFAULT_SESSION_TTL_MS = 7 * 24 * 60 * 60 * 1000;
/** MIN_HEARTBEAT_INTERVAL_MS keeps agents from being told to heartbeat in a busy loop. */
export const MIN_HEARTBEAT_INTERVAL_MS = 50;

/** RegistryOptions configure a registry; what is left out takes its default. */
export interface RegistryOptions {
  readonly store: RegistryStore;
  /** meshToken is the credential gateways and operators present. */
  readonly meshToken: string;
  /** listen is the gRPC address; port 0 picks a free one. */
  readonly listen: HostPort;
  /** metricsListen, when set, serves Prometheus' GET /metrics there. */
  readonly metricsListen?: HostPort | undefined;
  readonly clock?: Clock;
  readonly heartbeatIntervalMs?: number;
  /** ttlMs defaults to DEFAULT_TTL_INTERVALS heartbeat intervals. */
  readonly ttlMs?: number;
  readonly maxMessageBytes?: number;
  /** shutdownGraceMs is how long close() lets calls in flight finish. */
  readonly shutdownGraceMs?: number;
  /** tls, when set, makes the gRPC port serve TLS with this certificate chain and key (readServerTls). */
  readonly tls?: ServerTls | undefined;
  /** sessionTtlMs is how long a signed-in session lasts. */
  readonly sessionTtlMs?: number;
  /** redis, a redis:// URL, makes this registry one of several replicas that share provider presence there. */
  readonly redis?: string | undefined;
  /** redisPrefix starts the presence keys in Redis; meshes sharing one Redis each take their own. */
  readonly redisPrefix?: string;
  /** log hears the registry's connection to Redis; silent when left out. */
  readonly log?: Logger;
}

/** RegistrySettings are a registry's options with every default applied and checked. */
export interface RegistrySettings {
  readonly store: RegistryStore;
  readonly meshToken: string;
  readonly listen: HostPort;
  readonly metricsListen: HostPort | undefined;
  readonly clock: Clock;
  readonly heartbeatIntervalMs: number;
  readonly ttlMs: number;
  readonly maxMessageBytes: number | undefined;
  readonly shutdownGraceMs: number;
  readonly tls: ServerTls | undefined;
  readonly sessionTtlMs: number;
  readonly redis: string | undefined;
  readonly redisPrefix: string;
  readonly log: Logger;
}

/** RegistryAddresses are where a listening registry is. */
export interface RegistryAddresses {
  readonly grpc: HostPort;
  readonly metrics: HostPort | undefined;
}

/** Registry is the control plane, ready to listen. */
export interface Registry {
  readonly settings: RegistrySettings;
  readonly metrics: RegistryMetrics;
  readonly table: ProviderTable;
  /** listen binds the gRPC port (and the metrics port when configured) and resolves the bound addresses. */
  listen(): Promise<RegistryAddresses>;
  /** close ends watch streams, lets other calls finish for the shutdown grace period, and stops. The store stays open. */
  close(): Promise<void>;
}

/** resolveRegistryOptions applies the defaults once and checks the values, throwing a ConfigError naming the option. */
export function resolveRegistryOptions(options: RegistryOptions): RegistrySettings {
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
  const ttlMs = options.ttlMs ?? heartbeatIntervalMs * DEFAULT_TTL_INTERVALS;
  if (!(heartbeatIntervalMs >= MIN_HEARTBEAT_INTERVAL_MS)) {
    throw new ConfigError(
      "heartbeatIntervalMs",
      `the heartbeat interval must be at least ${MIN_HEARTBEAT_INTERVAL_MS} ms, got ${heartbeatIntervalMs}`,
    );
  }
  if (!(ttlMs >= heartbeatIntervalMs)) {
    throw new ConfigError("ttlMs", `the TTL must be at least one heartbeat interval (${heartbeatIntervalMs} ms), got ${ttlMs} ms`);
  }
  return Object.freeze({
    store: options.store,
    meshToken: options.meshToken,
    listen: options.listen,
    metricsListen: options.metricsListen,
    clock: options.clock ?? systemClock,
    heartbeatIntervalMs,
    ttlMs,
    maxMessageBytes: options.maxMessageBytes,
    shutdownGraceMs: options.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS,
    tls: options.tls,
    sessionTtlMs: options.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS,
    redis: options.redis,
    redisPrefix: options.redisPrefix ?? DEFAULT_PRESENCE_PREFIX,
    log: options.log ?? createLogger("registry", "silent"),
  });
}

/** createRegistry builds the registry: RegistryService, grpc.health.v1 and server reflection, and its metrics. */
export function createRegistry(options: RegistryOptions): Registry {
  const settings = resolveRegistryOptions(options);
  const hub = new WatchHub();
  const providerSettings = new ProviderSettingsCache(settings.store);
  const table: ProviderTable = new ProviderTable({
    clock: settings.clock,
    ttlMs: settings.ttlMs,
    // Replicas take providers offline by one shared sweep, never each by its own clock.
    expires: settings.redis === undefined,
    onChange: (event) => {
      if (event.replicated) providerSettings.forget(event.provider.id);
      else if (event.cause === ChangeCause.EXPIRED) metrics.expiries.inc();
      // The shared sweep published the expiries it found itself.
      else presence?.publish(event);
      hub.publish(event);
    },
  });
  const metrics = createRegistryMetrics({ onlineProviders: () => table.providers(), watchers: () => hub.size });
  const presence =
    settings.redis === undefined
      ? undefined
      : new SharedPresence({
          url: settings.redis,
          prefix: settings.redisPrefix,
          table,
          ttlMs: settings.ttlMs,
          log: settings.log,
          onError: (operation) => metrics.presenceErrors.inc({ operation }),
        });
  const auth = createCallerAuth(settings.store, settings.meshToken);
  const service = createRegistryService({
    store: settings.store,
    auth,
    table,
    hub,
    metrics,
    settings: providerSettings,
    heartbeatIntervalMs: settings.heartbeatIntervalMs,
    ttlMs: settings.ttlMs,
    ...(presence ? { onSteadyHeartbeat: (providerId: string) => presence.touch(providerId) } : {}),
  });
  const accounts = createAccountService({
    store: settings.store,
    auth,
    table,
    settings: providerSettings,
    sessionTtlMs: settings.sessionTtlMs,
  });
  const server = createGrpcServer({
    services: [bindService(RegistryService, service, metrics.observeRpc), bindService(AccountService, accounts, metrics.observeRpc)],
    ...(settings.maxMessageBytes === undefined ? {} : { maxMessageBytes: settings.maxMessageBytes }),
    tls: settings.tls,
  });
  const metricsServer = settings.metricsListen ? createMetricsServer(metrics.registry, settings.tls) : undefined;

  return {
    settings,
    metrics,
    table,
    async listen() {
      await presence?.start();
      const port = await server.listen(formatHostPort(settings.listen));
      const metricsPort = settings.metricsListen
        ? await metricsServer?.listen(settings.metricsListen.host, settings.metricsListen.port)
        : undefined;
      return {
        grpc: { host: settings.listen.host, port },
        metrics: settings.metricsListen && metricsPort !== undefined ? { host: settings.metricsListen.host, port: metricsPort } : undefined,
      };
    },
    async close() {
      server.notServing();
      hub.close();
      await server.close(settings.shutdownGraceMs);
      table.close();
      await presence?.close();
      await metricsServer?.close();
    },
  };
}
