import { status as GrpcStatus } from "@grpc/grpc-js";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { ServiceType } from "../../gen/infermesh/v1/capabilities_pb.js";
import type { Provider } from "../../gen/infermesh/v1/registry_pb.js";

/** RegistryMetrics are the registry's Prometheus metrics, in a registry of their own so tests can run several. */
export interface RegistryMetrics {
  readonly registry: Registry;
  readonly heartbeats: Counter<"outcome">;
  readonly expiries: Counter;
  readonly presenceErrors: Counter<"operation">;
  readonly rpcDuration: Histogram<"method" | "code">;
  observeRpc(method: string, code: GrpcStatus, durationSeconds: number): void;
}

/** SERVICE_TYPE_LABELS are the label values of the service_type label, one per ServiceType. */
export const SERVICE_TYPE_LABELS: Readonly<Record<Exclude<ServiceType, ServiceType.UNSPECIFIED>, string>> = {
  [ServiceType.LLM]: "llm",
  [ServiceType.STT]: "stt",
  [ServiceType.IMAGE]: "image",
  [ServiceType.TTS]: "tts",
  [ServiceType.EMBEDDING]: "embedding",
  [ServiceType.RERANK]: "rerank",
};

/** RegistryGauges are read at scrape time, so counting costs nothing between scrapes. */
export interface RegistryGauges {
  onlineProviders(): Iterable<Provider>;
  watchers(): number;
}

/** createRegistryMetrics builds the registry's metrics. */
export function createRegistryMetrics(gauges: RegistryGauges): RegistryMetrics {
  const registry = new Registry();
  new Gauge({
    name: "infermesh_registry_providers_online",
    help: "Online providers serving at least one model of the service type.",
    labelNames: ["service_type"],
    registers: [registry],
    collect() {
      const counts = new Map<string, number>(Object.values(SERVICE_TYPE_LABELS).map((label) => [label, 0]));
      for (const provider of gauges.onlineProviders()) {
        const types = new Set(provider.models.map((m) => m.serviceType));
        for (const type of types) {
          const label = SERVICE_TYPE_LABELS[type as keyof typeof SERVICE_TYPE_LABELS];
          if (label) counts.set(label, (counts.get(label) ?? 0) + 1);
        }
      }
      for (const [label, count] of counts) this.set({ service_type: label }, count);
    },
  });
  new Gauge({
    name: "infermesh_registry_watch_subscribers",
    help: "Connected WatchProviders streams.",
    registers: [registry],
    collect() {
      this.set(gauges.watchers());
    },
  });
  const heartbeats = new Counter({
    name: "infermesh_registry_heartbeats_total",
    help: "Heartbeats received, by outcome (accepted, rejected).",
    labelNames: ["outcome"],
    registers: [registry],
  });
  const expiries = new Counter({
    name: "infermesh_registry_provider_expiries_total",
    help: "Providers taken offline because their heartbeats stopped for a TTL.",
    registers: [registry],
  });
  const presenceErrors = new Counter({
    name: "infermesh_registry_presence_errors_total",
    help: "Redis operations of shared presence that failed, by operation (publish, touch, sweep, resync, decode).",
    labelNames: ["operation"],
    registers: [registry],
  });
  const rpcDuration = new Histogram({
    name: "infermesh_registry_rpc_duration_seconds",
    help: "Registry RPC handling time, by method and gRPC status code (streams: their whole life).",
    labelNames: ["method", "code"],
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
    registers: [registry],
  });
  return {
    registry,
    heartbeats,
    expiries,
    presenceErrors,
    rpcDuration,
    observeRpc(method, code, durationSeconds) {
      rpcDuration.observe({ method, code: GrpcStatus[code] ?? String(code) }, durationSeconds);
    },
  };
}
