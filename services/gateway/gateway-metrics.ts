import type { FastifyInstance, FastifyRequest } from "fastify";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { KnownOperation } from "../shared/inference-catalog.js";
import { operationLabel } from "../shared/inference-catalog.js";
import type { Logger } from "../shared/logger.js";
import { perLabel } from "../shared/metric-children.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /** operation marks an inference route: the operation its requests stand for. */
    operation?: KnownOperation;
  }
  interface FastifyRequest {
    /** receivedAtNs is when an inference request arrived (process.hrtime), the start of its latency metrics. */
    receivedAtNs: bigint;
  }
}

/** secondsSince is the time since a request's receivedAtNs, in seconds. */
export function secondsSince(receivedAtNs: bigint): number {
  return Number(process.hrtime.bigint() - receivedAtNs) / 1e9;
}

/**
 * GatewayMetrics are the gateway's Prometheus metrics. Labels are bounded: routes, operations, served model ids
 * (never a name a client made up), classes. Names follow Prometheus' conventions (base units, `_total` counters) and,
 * where they fit, OpenTelemetry's GenAI semantic conventions: time to first token, token usage by type (input,
 * output), request duration by operation.
 */
export interface GatewayMetrics {
  readonly registry: Registry;
  /** requests counts answered inference requests by route, served model and status class. */
  readonly requests: Counter<"route" | "model" | "status_class">;
  /** duration times requests to the last byte of the answer, by operation (gen_ai.server.request.duration). */
  readonly duration: Histogram<"operation">;
  /** timeToFirstToken times requests to the answer's first body byte (gen_ai.server.time_to_first_token). */
  readonly timeToFirstToken: Histogram<"operation" | "model">;
  readonly inFlight: Gauge<"route">;
  /** tokens counts the tokens of providers' usage reports, by type: input or output (gen_ai.token.type). */
  readonly tokens: Counter<"operation" | "model" | "type">;
  /** agentHeartbeats counts heartbeats agents sent over HTTP (/api/inference/agent/...), by outcome. */
  readonly agentHeartbeats: Counter<"outcome">;
  /** linkFramesDropped counts answer frames agents sent for calls they were not given, or that were over. */
  readonly linkFramesDropped: Counter;
  /** agentLinks is the number of agents' links open on this gateway. */
  readonly agentLinks: Gauge;
  /** usageRecordsWritten counts usage records the registry took (usage-recorder.ts). */
  readonly usageRecordsWritten: Counter;
  /** usageRecordsDropped counts usage records lost: dropped when the buffer was full, or left unsent at shutdown. */
  readonly usageRecordsDropped: Counter;
  /** streamSlotFallbacks counts streams admitted on this gateway's count alone: Redis did not answer in time. */
  readonly streamSlotFallbacks: Counter;
  /** series are the per-request metrics' children by label values, bound once per value: see perLabel. */
  readonly series: RequestSeries;
}

/** RequestSeries are the children of the metrics every inference request observes, label value by label value. */
export interface RequestSeries {
  readonly requests: (route: string) => (model: string) => (statusClass: string) => Counter.Internal;
  readonly duration: (operation: string) => Histogram.Internal<"operation">;
  readonly timeToFirstToken: (operation: string) => (model: string) => Histogram.Internal<"operation" | "model">;
  readonly inFlight: (route: string) => Gauge.Internal<"route">;
  readonly tokens: (operation: string) => (model: string) => (type: string) => Counter.Internal;
}

function requestSeries(metrics: Omit<GatewayMetrics, "series">): RequestSeries {
  return {
    requests: perLabel((route) => perLabel((model) => perLabel((statusClass) => metrics.requests.labels(route, model, statusClass)))),
    duration: perLabel((operation) => metrics.duration.labels(operation)),
    timeToFirstToken: perLabel((operation) => perLabel((model) => metrics.timeToFirstToken.labels(operation, model))),
    inFlight: perLabel((route) => metrics.inFlight.labels(route)),
    tokens: perLabel((operation) => perLabel((model) => perLabel((type) => metrics.tokens.labels(operation, model, type)))),
  };
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** UNROUTED_MODEL is the model label of requests that never reached a provider, so unknown names can't grow labels. */
export const UNROUTED_MODEL = "";

/** TOKEN_TYPES are the `type` label values of infermesh_gateway_tokens_total, as OpenTelemetry's gen_ai.token.type. */
export const TOKEN_TYPES = { input: "input", output: "output" } as const;

/** createGatewayMetrics builds the gateway's metrics in a registry of their own. */
export function createGatewayMetrics(): GatewayMetrics {
  const registry = new Registry();
  const registers = [registry];
  const metrics = {
    registry,
    requests: new Counter({
      name: "infermesh_gateway_requests_total",
      help: "Inference requests answered, by route, served model (empty when none was routed) and status class.",
      labelNames: ["route", "model", "status_class"],
      registers,
    }),
    duration: new Histogram({
      name: "infermesh_gateway_request_duration_seconds",
      help: "Time from an inference request to the last byte of its answer, by operation.",
      labelNames: ["operation"],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    timeToFirstToken: new Histogram({
      name: "infermesh_gateway_time_to_first_token_seconds",
      help: "Time from an inference request to the first byte of its answer's body (the first token when streamed), by operation and served model.",
      labelNames: ["operation", "model"],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    inFlight: new Gauge({
      name: "infermesh_gateway_requests_in_flight",
      help: "Inference requests being answered now, by route.",
      labelNames: ["route"],
      registers,
    }),
    tokens: new Counter({
      name: "infermesh_gateway_tokens_total",
      help: "Tokens in providers' usage reports, by operation, served model and type (input: the prompt, output: the answer).",
      labelNames: ["operation", "model", "type"],
      registers,
    }),
    agentHeartbeats: new Counter({
      name: "infermesh_gateway_agent_heartbeats_total",
      help: "Heartbeats agents sent over HTTP (POST /api/inference/agent/heartbeat/ and register/), by outcome (accepted, rejected, failed).",
      labelNames: ["outcome"],
      registers,
    }),
    linkFramesDropped: new Counter({
      name: "infermesh_gateway_link_frames_dropped_total",
      help: "Answer frames agents sent on their links for calls they were not given, or that had ended; dropped unread.",
      registers,
    }),
    agentLinks: new Gauge({
      name: "infermesh_gateway_agent_links",
      help: "Agents' links open on this gateway.",
      registers,
    }),
    usageRecordsWritten: new Counter({
      name: "infermesh_gateway_usage_records_written_total",
      help: "Usage records of answered requests that the registry took.",
      registers,
    }),
    usageRecordsDropped: new Counter({
      name: "infermesh_gateway_usage_records_dropped_total",
      help: "Usage records lost: the oldest, dropped while the registry was unreachable and the buffer full, or left unsent when the gateway stopped.",
      registers,
    }),
    streamSlotFallbacks: new Counter({
      name: "infermesh_gateway_stream_slot_fallbacks_total",
      help: "Streams admitted on this gateway's own count because Redis (--redis) did not answer in time to count them across gateways.",
      registers,
    }),
  };
  return { ...metrics, series: requestSeries(metrics) };
}

/**
 * AnsweredListener hears of each request to an inference route as it ends: its operation, the status the client got
 * (499 when it left first) and the time from its arrival, in seconds.
 */
export type AnsweredListener = (request: FastifyRequest, operation: KnownOperation, status: number, seconds: number) => void;

/**
 * observeInferenceRequests counts and times every request to an inference route (those whose config names an
 * operation), whatever answers it: the route's own 4xx, the handler, a failure. A request ends when its response
 * closes, finished or cut; one whose client left before any answer counts as 499, as proxies log it. onAnswered, when
 * given, hears of each one then too (the usage records, usage-capture.ts), from the same one close listener.
 */
export function observeInferenceRequests(app: FastifyInstance, metrics: GatewayMetrics, log: Logger, onAnswered?: AnsweredListener): void {
  const { series } = metrics;
  app.decorateRequest("receivedAtNs", 0n);
  // A callback hook, not an async one: it runs on every request and need not cost a promise.
  app.addHook("onRequest", (request, reply, done) => {
    // Fastify builds routeOptions afresh on each read.
    const { config, url } = request.routeOptions;
    const operation = config.operation;
    if (operation === undefined) return done();
    const route = url ?? "";
    request.receivedAtNs = process.hrtime.bigint();
    const inFlight = series.inFlight(route);
    inFlight.inc();
    reply.raw.once("close", () => {
      const seconds = secondsSince(request.receivedAtNs);
      const status = reply.raw.headersSent ? reply.raw.statusCode : CLIENT_CLOSED_REQUEST;
      const answeredBy = request.dispatch?.answeredBy;
      inFlight.dec();
      series.duration(operationLabel(operation)).observe(seconds);
      series
        .requests(route)(answeredBy?.model.id ?? UNROUTED_MODEL)(statusClass(status))
        .inc();
      onAnswered?.(request, operation, status, seconds);
      // Checked first, so that a request does not build a log line nobody reads.
      if (!log.isLevelEnabled("debug")) return;
      log.debug(
        {
          requestId: request.id,
          route,
          status,
          provider: answeredBy?.provider.id,
          model: answeredBy?.model.id,
          durationMs: seconds * 1000,
        },
        "inference request answered",
      );
    });
    done();
  });
}

/** statusClass is a status' class label: "2xx" and so on. */
function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}

/** CLIENT_CLOSED_REQUEST is nginx's status for a request whose client left before the answer. */
const CLIENT_CLOSED_REQUEST = 499;
