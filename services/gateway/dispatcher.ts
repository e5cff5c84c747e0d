import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { type InferenceCall, InferenceCallSchema, type InferencePart } from "../../gen/infermesh/v1/inference_pb.js";
import type { Principal } from "../../gen/infermesh/v1/registry_pb.js";
import { errorKindInfo } from "../shared/error-kinds.js";
import { OPERATIONS, serviceTypeInfo, serviceTypeOf } from "../shared/inference-catalog.js";
import { echoed, invalidRequest, noProvider, unsupportedEndpoint } from "./gateway-errors.js";
import { bodyForModel, type InferenceRequest } from "./inference-request.js";
import type { AgentCalls } from "./mesh-calls.js";
import type { ProviderHealth } from "./provider-health.js";
import type { Route, RoutingTable } from "./routing-table.js";

/** DEFAULT_FAILOVER_ATTEMPTS is how many other providers a request may try when one fails before the first byte. */
export const DEFAULT_FAILOVER_ATTEMPTS = 1;

/** DispatchRequest is an inference request with who asked, under which id, until when, and the signal to stop. */
export interface DispatchRequest extends InferenceRequest {
  readonly principal: Principal;
  readonly requestId: string;
  readonly deadlineMs: number;
  readonly signal: AbortSignal;
}

/** Dispatch is a routed request: the answer's parts, and the provider giving them. */
export interface Dispatch {
  readonly parts: AsyncIterable<InferencePart>;
  /** answeredBy is the provider whose answer the parts are, from its first part on; failover may change it before. */
  readonly answeredBy: Route | undefined;
}

/** DispatcherOptions configures a Dispatcher. */
export interface DispatcherOptions {
  readonly table: RoutingTable;
  readonly agents: AgentCalls;
  readonly health: ProviderHealth;
  readonly failoverAttempts: number;
}

type Outcome = "succeeded" | "failed" | "released";

/**
 * Dispatcher routes inference requests to providers. It picks, among the caller's online providers that serve the
 * model with the operation's service type and whose circuit is closed, the one with the fewest requests in flight
 * from this gateway (ties go to the lower reported load, then round robin). When that provider fails before the
 * answer began (unreachable, overloaded, or its model server failed), it tries another once; never after the first
 * part of an answer, and never on a 4xx. Every outcome feeds the providers' circuit breakers. The requests it gets are
 * validated already: only what the agent call itself reports can count against a provider.
 */
export class Dispatcher {
  readonly #table: RoutingTable;
  readonly #agents: AgentCalls;
  readonly #health: ProviderHealth;
  readonly #failoverAttempts: number;
  readonly #inFlight = new Map<string, number>();
  #turn = 0;

  constructor(options: DispatcherOptions) {
    this.#table = options.table;
    this.#agents = options.agents;
    this.#health = options.health;
    this.#failoverAttempts = options.failoverAttempts;
  }

  /**
   * dispatch routes the request, or throws the GatewayError the client should get (no provider, a model of another
   * service type); the call to the chosen provider opens when the parts are first read.
   */
  dispatch(request: DispatchRequest): Dispatch {
    const state: { answeredBy: Route | undefined } = { answeredBy: undefined };
    const first = this.route(request);
    return {
      parts: this.#withFailover(request, first, state),
      get answeredBy() {
        return state.answeredBy;
      },
    };
  }

  /** route chooses a provider for the request among those not tried yet, or throws the GatewayError to answer. */
  route(request: Pick<DispatchRequest, "principal" | "model" | "operation">, tried?: ReadonlySet<string>): Route {
    const operation = OPERATIONS[request.operation];
    const needed = serviceTypeOf(operation.serviceType);
    const lookup = this.#table.lookup(request.principal, request.model, needed.serviceType, operation.feature);
    if (lookup.kind === "none") throw noProvider(request.model, needed.noun, lookup.reason);
    if (lookup.kind === "missing_feature") throw unsupportedEndpoint(request.model, operation);
    if (lookup.kind === "wrong_type") {
      const others = lookup.otherTypes.flatMap((type) => serviceTypeInfo(type) ?? []);
      const kind = others.length > 0 ? `${others[0]?.article} ${others.map((type) => type.name).join(" or ")}` : "another kind of";
      throw invalidRequest(
        `Model '${echoed(request.model)}' is ${kind} model; ${operation.path} needs ${needed.article} ${needed.name} model.`,
        { param: "model", code: "model_not_supported" },
      );
    }
    const untried = lookup.routes.filter((r) => !tried?.has(r.provider.id) && this.#agents.reachable(r.provider));
    if (untried.length === 0) {
      // Listed but not reachable from here: their links closed a moment ago, and the registry has yet to say so.
      const own = lookup.routes.every((r) => r.provider.ownerUserId === request.principal.userId);
      throw noProvider(request.model, needed.noun, own ? { code: "providers_offline", sinceMs: undefined } : undefined);
    }
    const healthy = untried.filter((r) => this.#health.available(r.provider.id));
    // When every circuit is open, trying a provider beats refusing: one of them may have recovered.
    return this.#leastBusy(healthy.length > 0 ? healthy : untried);
  }

  /** inFlight is the number of requests this gateway has in flight at a provider. */
  inFlight(providerId: string): number {
    return this.#inFlight.get(providerId) ?? 0;
  }

  async *#withFailover(request: DispatchRequest, first: Route, state: { answeredBy: Route | undefined }): AsyncIterable<InferencePart> {
    const tried = new Set<string>();
    let route = first;
    for (let attempt = 0; ; attempt++) {
      tried.add(route.provider.id);
      const id = route.provider.id;
      this.#inFlight.set(id, this.inFlight(id) + 1);
      this.#health.acquire(id);
      let outcome: Outcome = "released";
      let parts: AsyncIterator<InferencePart> | undefined;
      let next: IteratorResult<InferencePart> | undefined;
      try {
        parts = this.#agents.infer(route.provider, this.#call(request, route), request.signal)[Symbol.asyncIterator]();
        try {
          next = await parts.next();
        } catch (error) {
          outcome = request.signal.aborted ? "released" : faultOf(error);
          if (outcome === "failed") this.#agents.noteFailure?.(route.provider, error);
          const another = outcome === "failed" && attempt < this.#failoverAttempts ? this.#another(request, tried) : undefined;
          if (!another) throw error;
          route = another;
          continue;
        }
        if (!next.done && failsOver(next.value)) {
          outcome = "failed";
          const another = attempt < this.#failoverAttempts ? this.#another(request, tried) : undefined;
          if (another) {
            route = another;
            continue;
          }
        }
        state.answeredBy = route;
        if (next.done) {
          outcome = "succeeded";
          return;
        }
        for (; !next.done; next = await parts.next()) {
          outcome = partOutcome(next.value);
          yield next.value;
        }
        return;
      } catch (error) {
        if (!request.signal.aborted && faultOf(error) === "failed") outcome = "failed";
        throw error;
      } finally {
        // A reader that stops early (an error part, a client gone) ends the call too.
        if (next !== undefined && !next.done) void parts?.return?.();
        const left = this.inFlight(id) - 1;
        if (left > 0) this.#inFlight.set(id, left);
        else this.#inFlight.delete(id);
        if (outcome === "succeeded") this.#health.succeeded(id);
        else if (outcome === "failed") this.#health.failed(id);
        else this.#health.released(id);
      }
    }
  }

  #another(request: DispatchRequest, tried: ReadonlySet<string>): Route | undefined {
    try {
      return this.route(request, tried);
    } catch {
      return undefined;
    }
  }

  #call(request: DispatchRequest, route: Route): InferenceCall {
    return create(InferenceCallSchema, {
      operation: request.operation,
      model: route.model.id,
      stream: request.stream,
      requestId: request.requestId,
      deadline: timestampFromMs(request.deadlineMs),
      caller: request.principal,
      body: bodyForModel(request, route.model.id),
      media: [...request.media],
    });
  }

  #leastBusy(routes: readonly Route[]): Route {
    const turn = this.#turn++;
    let best = routes[turn % routes.length] as Route;
    let bestScore = Number.POSITIVE_INFINITY;
    for (let i = 0; i < routes.length; i++) {
      const route = routes[(turn + i) % routes.length] as Route;
      const score = this.inFlight(route.provider.id) * 1e6 + (route.provider.load?.inFlight ?? 0);
      if (score < bestScore) {
        best = route;
        bestScore = score;
      }
    }
    return best;
  }
}

/**
 * faultOf tells a failed agent call that says something is wrong with the provider from one that does not. Only the
 * agent call's own gRPC status counts: anything else thrown here is the gateway's failure, not the provider's.
 */
function faultOf(error: unknown): Outcome {
  if (!(error instanceof ConnectError)) return "released";
  switch (error.code) {
    case Code.Unavailable:
    case Code.Unauthenticated:
    case Code.ResourceExhausted:
    case Code.NotFound:
    case Code.Internal:
    case Code.Unknown:
    case Code.DataLoss:
    case Code.Aborted:
    case Code.Unimplemented:
    case Code.DeadlineExceeded:
      return "failed";
    default:
      return "released";
  }
}

/**
 * failsOver is an answer that failed before it began, of a kind another provider may not share: never one the agent
 * answered with a 4xx (a request its server refused, such as a route it does not serve), which another would refuse too.
 */
function failsOver(part: InferencePart): boolean {
  if (part.part.case !== "error") return false;
  const kind = errorKindInfo(part.part.value.kind);
  return kind.failover && (part.part.value.httpStatus || kind.httpStatus) >= 500;
}

/** partOutcome is what the latest part says about the provider's health: an error it answered for with a 5xx. */
function partOutcome(part: InferencePart): Outcome {
  return part.part.case === "error" && part.part.value.httpStatus >= 500 ? "failed" : "succeeded";
}
