import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { InferenceCall } from "../../gen/infermesh/v1/inference_pb.js";
import { Operation } from "../../gen/infermesh/v1/inference_pb.js";
import type { Clock } from "../shared/clock.js";
import { operationInfo, operationLabel, serviceTypeOf } from "../shared/inference-catalog.js";
import type { Logger } from "../shared/logger.js";
import { perLabel } from "../shared/metric-children.js";
import type { UpstreamConfig } from "./agent-config.js";
import type { AgentMetrics } from "./agent-metrics.js";
import { aborted, type CallOutcome } from "./answer-relay.js";
import type { AbortableCall, CallTracker } from "./call-tracker.js";
import { type ConcurrencyLimiter, QueueFullError, type Release } from "./concurrency-limiter.js";
import type { InferResponseInit } from "./inference-parts.js";
import type { ServeCall } from "./mesh-link.js";
import type { UpstreamClient } from "./upstream-client.js";
import { isConnectionFailure } from "./upstream-failure.js";
import { type UpstreamRoute, upstreamRoute } from "./upstream-routes.js";
import { type Candidate, selectUpstream } from "./upstream-selection.js";

/** ServingUpstream is an upstream as the Infer handler uses it: config, client, concurrency slots, current models. */
export interface ServingUpstream extends Candidate {
  readonly config: UpstreamConfig;
  readonly client: UpstreamClient;
  readonly limiter: ConcurrencyLimiter;
  /** reportUnreachable takes the upstream's models out of routing at once, until it answers again. */
  readonly reportUnreachable: (cause: string) => void;
}

/** AgentServiceDeps are what the Infer handler works with. */
export interface AgentServiceDeps {
  readonly log: Logger;
  readonly metrics: AgentMetrics;
  readonly calls: CallTracker;
  readonly upstreams: () => readonly ServingUpstream[];
  readonly isDraining: () => boolean;
  readonly upstreamTimeoutMs: number;
  readonly maxBodyBytes: number;
  readonly clock: Clock;
}

type Outcome = CallOutcome | "unavailable" | "invalid_argument" | "unimplemented" | "not_found" | "rejected" | "internal";

/**
 * createAgentService serves the calls that come down the agent's link to the mesh (see mesh-link.ts):
 * UNAVAILABLE while draining, INVALID_ARGUMENT without a call or a model (or with a multipart call that breaks the
 * contract), UNIMPLEMENTED for an unknown operation or one the chosen upstream's kind cannot serve, NOT_FOUND when no
 * upstream serves the model with the operation's service type, RESOURCE_EXHAUSTED when that upstream's slots and queue
 * are full. Past those checks the answer always ends with gRPC status OK, its last part telling success or
 * failure (see forwardJson), so the gateway can still answer in HTTP terms after it has begun to stream.
 */
export function createAgentService(deps: AgentServiceDeps): ServeCall {
  const { log, metrics } = deps;
  const requestsCounted = perLabel((operation) => perLabel((outcome) => metrics.requests.labels(operation, outcome)));
  const upstreamDuration = perLabel((operation) => metrics.upstreamDuration.labels(operation));
  const upstreamHeaders = perLabel((operation) => metrics.upstreamHeaders.labels(operation));

  return async function* infer(call: InferenceCall, context: AbortableCall) {
    const operation = operationLabel(call.operation);
    let outcome: Outcome = "cancelled";
    try {
      if (deps.isDraining()) throw new ConnectError("the agent is shutting down and takes no new calls", Code.Unavailable);
      if (!call.model) throw new ConnectError("call.model is required", Code.InvalidArgument);
      const type = operationInfo(call.operation)?.serviceType;
      if (!type) {
        throw new ConnectError(`operation ${Operation[call.operation] ?? call.operation} is not served by this agent`, Code.Unimplemented);
      }
      const upstream = selectUpstream(deps.upstreams(), call.model, serviceTypeOf(type).serviceType);
      if (!upstream) {
        throw new ConnectError(`no ${type} upstream of this agent serves model '${call.model}'`, Code.NotFound);
      }
      const route = upstreamRoute(call.operation, upstream.config.kind);
      if (!route) {
        const name = Operation[call.operation] ?? call.operation;
        throw new ConnectError(`the ${upstream.config.kind} server behind model '${call.model}' cannot serve ${name}`, Code.Unimplemented);
      }
      const tracked = deps.calls.begin(context, call.deadline ? timestampMs(call.deadline) : undefined);
      try {
        outcome = yield* serve(call, route, upstream, tracked.signal);
      } finally {
        tracked.end();
      }
    } catch (error) {
      outcome = outcomeOf(error);
      throw error;
    } finally {
      requestsCounted(operation)(outcome).inc();
      log.debug({ requestId: call.requestId, model: call.model, operation, outcome }, "infer done");
    }
  };

  async function* serve(
    call: InferenceCall,
    route: UpstreamRoute,
    upstream: ServingUpstream,
    signal: AbortSignal,
  ): AsyncGenerator<InferResponseInit, CallOutcome> {
    let release: Release;
    try {
      release = await upstream.limiter.acquire(signal);
    } catch (error) {
      if (error instanceof QueueFullError) {
        throw new ConnectError(`the local ${upstream.config.type} server is at capacity: ${error.message}`, Code.ResourceExhausted);
      }
      return yield* aborted(signal.reason);
    }
    const operation = operationLabel(call.operation);
    const stopTimer = upstreamDuration(operation).startTimer();
    const stopHeadersTimer = upstreamHeaders(operation).startTimer();
    try {
      return yield* route.forward({
        client: upstream.client,
        server: `the local ${upstream.config.type} server`,
        path: route.path,
        call,
        signal,
        timeoutMs: deps.upstreamTimeoutMs,
        maxBodyBytes: deps.maxBodyBytes,
        onHeaders: () => stopHeadersTimer(),
        clock: deps.clock,
        onFailure: (cause, error) => {
          log.warn({ requestId: call.requestId, model: call.model, upstream: upstream.config.url, cause }, "upstream failed");
          if (isConnectionFailure(error)) upstream.reportUnreachable(cause);
        },
      });
    } finally {
      stopTimer();
      release();
    }
  }
}

function outcomeOf(error: unknown): Outcome {
  if (!(error instanceof ConnectError)) return "internal";
  switch (error.code) {
    case Code.Unavailable:
      return "unavailable";
    case Code.InvalidArgument:
      return "invalid_argument";
    case Code.Unimplemented:
      return "unimplemented";
    case Code.NotFound:
      return "not_found";
    case Code.ResourceExhausted:
      return "rejected";
    default:
      return "internal";
  }
}
