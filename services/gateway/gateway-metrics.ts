import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** GatewayMetrics are the gateway's Prometheus metrics. Labels are bounded: routes, served model ids, classes. */
export interface GatewayMetrics {
  readonly registry: Registry;
  readonly requests: Counter<"route" | "model" | "status_class">;
  readonly duration: Histogram<"route">;
  readonly timeToFirstByte: Histogram<"route">;
  readonly inFlight: Gauge<"route">;
  readonly tokens: Counter<"model" | "type">;
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** UNROUTED_MODEL is the model label of requests that never reached a provider, so unknown names can't grow labels. */
export const UNROUTED_MODEL = "";

/** createGatewayMetrics builds the gateway's metrics in a registry of its own. */
export function createGatewayMetrics(): GatewayMetrics {
  const registry = new Registry();
  return {
    registry,
    requests: new Counter({
      name: "infermesh_gateway_requests_total",
      help: "HTTP requests answered, by route, served model (empty when none was routed) and status class.",
      labelNames: ["route", "model", "status_class"],
      registers: [registry],
    }),
    duration: new Histogram({
      name: "infermesh_gateway_request_duration_seconds",
      help: "Time from request to the last byte of the answer, by route.",
      labelNames: ["route"],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    timeToFirstByte: new Histogram({
      name: "infermesh_gateway_time_to_first_byte_seconds",
      help: "Time from request to the answer's first body byte (the first token, when streaming), by route.",
      labelNames: ["route"],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: "infermesh_gateway_requests_in_flight",
      help: "Requests being answered now, by route.",
      labelNames: ["route"],
      registers: [registry],
    }),
    tokens: new Counter({
      name: "infermesh_gateway_tokens_total",
      help: "Tokens reported by providers' usage, by served model and type (prompt, completion).",
      labelNames: ["model", "type"],
      registers: [registry],
    }),
  };
}
