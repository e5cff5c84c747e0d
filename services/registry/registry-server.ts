import { RegistryService } from "../../gen/infermesh/v1/registry_pb.js";
import { systemClock, type Clock } from "../shared/clock.js";
import { bindService, createGrpcServer } from "../shared/grpc/server.js";
import { createCallerAuth } from "./caller-auth.js";
import { ProviderTable } from "./provider-table.js";
import { createRegistryMetrics, type RegistryMetrics } from "./registry-metrics.js";
import { createRegistryService } from "./registry-service.js";
import type { RegistryStore } from "./store/registry-store.js";
import { WatchHub } from "./watch-hub.js";
import { ChangeCause } from "../../gen/infermesh/v1/registry_pb.js";

/** DEFAULT_HEARTBEAT_INTERVAL_MS is how often agents are told to heartbeat. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 10_000;
/** DEFAULT_TTL_INTERVALS is how many missed intervals take a provider offline. */
export const DEFAULT_TTL_INTERVALS = 3;
/** DEFAULT_SHUTDOWN_GRACE_MS is how long calls in flight may finish on close. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 5_000;

/** RegistryServerOptions configures a registry server. */
export interface RegistryServerOptions {
  readonly store: RegistryStore;
  /** meshToken is the credential gateways and operators present. */
  readonly meshToken: string;
  readonly clock?: Clock;
  readonly heartbeatIntervalMs?: number;
  /** ttlMs defaults to DEFAULT_TTL_INTERVALS heartbeat intervals. */
  readonly ttlMs?: number;
  readonly maxMessageBytes?: number;
}

/** RegistryServer is a registry ready to listen. */
export interface RegistryServer {
  readonly metrics: RegistryMetrics;
  readonly table: ProviderTable;
  /** listen binds "host:port" (port 0 for any) and resolves the port. */
  listen(address: string): Promise<number>;
  /** close ends watch streams, lets other calls finish for up to graceMs, and stops. The store stays open. */
  close(graceMs?: number): Promise<void>;
}

/** createRegistryServer builds the registry's gRPC server: RegistryService, grpc.health.v1 and server reflection. */
export function createRegistryServer(options: RegistryServerOptions): RegistryServer {
  const clock = options.clock ?? systemClock;
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
  const ttlMs = options.ttlMs ?? heartbeatIntervalMs * DEFAULT_TTL_INTERVALS;
  const hub = new WatchHub();
  const table: ProviderTable = new ProviderTable({
    clock,
    ttlMs,
    onChange: (event) => {
      if (event.cause === ChangeCause.EXPIRED) metrics.expiries.inc();
      hub.publish(event);
    },
  });
  const metrics = createRegistryMetrics({ onlineProviders: () => table.providers(), watchers: () => hub.size });
  const service = createRegistryService({
    store: options.store,
    auth: createCallerAuth(options.store, options.meshToken),
    table,
    hub,
    metrics,
    heartbeatIntervalMs,
    ttlMs,
  });
  const server = createGrpcServer({
    services: [bindService(RegistryService, service, metrics.observeRpc)],
    ...(options.maxMessageBytes === undefined ? {} : { maxMessageBytes: options.maxMessageBytes }),
  });

  return {
    metrics,
    table,
    listen: (address) => server.listen(address),
    async close(graceMs = DEFAULT_SHUTDOWN_GRACE_MS) {
      server.notServing();
      hub.close();
      await server.close(graceMs);
      table.close();
    },
  };
}
