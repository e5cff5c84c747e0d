import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** AgentGauges are read at scrape time, so keeping them costs nothing between scrapes. */
export interface AgentGauges {
  inFlight(): number;
  queued(): number;
  upstreamsUp(): number;
  modelsAdvertised(): number;
}

/** AgentMetrics are the agent's Prometheus metrics, in a registry of their own so tests can run several agents. */
export interface AgentMetrics {
  readonly registry: Registry;
  /** requests counts Infer calls by operation and outcome (ok, client_error, upstream_error, timeout, ...). */
  readonly requests: Counter<"operation" | "outcome">;
  /** upstreamHeaders times from sending a request upstream to its response headers (time to first token, streamed). */
  readonly upstreamHeaders: Histogram<"operation">;
  /** upstreamDuration times whole upstream exchanges. */
  readonly upstreamDuration: Histogram<"operation">;
  /** heartbeats counts registry heartbeats by outcome (ok, failed). */
  readonly heartbeats: Counter<"outcome">;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** createAgentMetrics builds the agent's metrics; every label takes a bounded set of values. */
export function createAgentMetrics(gauges: AgentGauges): AgentMetrics {
  const registry = new Registry();
  const registers = [registry];
  const requests = new Counter({
    name: "infermesh_agent_requests_total",
    help: "Infer calls answered, by operation and outcome (ok, client_error, upstream_error, timeout, ...).",
    labelNames: ["operation", "outcome"],
    registers,
  });
  new Gauge({
    name: "infermesh_agent_requests_in_flight",
    help: "Infer calls being served by upstreams now.",
    registers,
    collect() {
      this.set(gauges.inFlight());
    },
  });
  new Gauge({
    name: "infermesh_agent_requests_queued",
    help: "Infer calls waiting for an upstream slot.",
    registers,
    collect() {
      this.set(gauges.queued());
    },
  });
  new Gauge({
    name: "infermesh_agent_upstreams_up",
    help: "Upstreams (local model servers) whose last model-list request succeeded.",
    registers,
    collect() {
      this.set(gauges.upstreamsUp());
    },
  });
  new Gauge({
    name: "infermesh_agent_models_advertised",
    help: "Models advertised to the registry now.",
    registers,
    collect() {
      this.set(gauges.modelsAdvertised());
    },
  });
  const upstreamHeaders = new Histogram({
    name: "infermesh_agent_upstream_headers_seconds",
    help: "Time from sending a request to the upstream to its response headers (about the first token, when streamed), by operation.",
    labelNames: ["operation"],
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const upstreamDuration = new Histogram({
    name: "infermesh_agent_upstream_duration_seconds",
    help: "Time from sending a request upstream to the end of its answer, by operation.",
    labelNames: ["operation"],
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const heartbeats = new Counter({
    name: "infermesh_agent_heartbeats_total",
    help: "Heartbeats sent to the registry, by outcome (ok, failed).",
    labelNames: ["outcome"],
    registers,
  });
  return { registry, requests, upstreamHeaders, upstreamDuration, heartbeats };
}
