import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ServiceType } from "../../gen/infermesh/v1/capabilities_pb.js";
import {
  InferenceCallSchema,
  Operation,
  type InferenceCall,
  type InferencePart,
  type MediaFile,
} from "../../gen/infermesh/v1/inference_pb.js";
import type { Principal } from "../../gen/infermesh/v1/registry_pb.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorKindInfo } from "../shared/error-kinds.js";
import type { AgentCalls } from "./agent-client.js";
import { GatewayError, invalidRequest, noProvider } from "./error-envelope.js";
import type { ProviderHealth } from "./provider-health.js";
import { SERVICE_TYPE_NAMES, type Route, type RoutingTable } from "./routing-table.js";

/** OPERATION_SERVICE_TYPES says which service type may serve each operation. */
export const OPERATION_SERVICE_TYPES: Readonly<Record<Exclude<Operation, Operation.UNSPECIFIED>, ServiceType>> = {
  [Operation.CHAT_COMPLETION]: ServiceType.LLM,
  [Operation.COMPLETION]: ServiceType.LLM,
  [Operation.TRANSCRIPTION]: ServiceType.STT,
  [Operation.IMAGE_GENERATION]: ServiceType.IMAGE,
  [Operation.IMAGE_EDIT]: ServiceType.IMAGE,
  [Operation.SPEECH]: ServiceType.TTS,
};

const KIND_NAMES: Readonly<Record<ServiceType, string>> = {
  [ServiceType.UNSPECIFIED]: "",
  [ServiceType.LLM]: "",
  [ServiceType.STT]: "speech-to-text",
  [ServiceType.IMAGE]: "image",
  [ServiceType.TTS]: "text-to-speech",
};

/** DispatchRequest is one inference request, authenticated and parsed enough to route. */
export interface DispatchRequest {
  readonly principal: Principal;
  readonly operation: Exclude<Operation, Operation.UNSPECIFIED>;
  readonly model: string;
  readonly stream: boolean;
  readonly requestId: string;
  readonly deadlineMs: number;
  readonly media?: MediaFile[];
  /** body returns the request body to send, given the provider's exact name for the model. */
  readonly body: (servedModel: string) => Uint8Array;
  readonly signal: AbortSignal;
}

/** Dispatch is a routed request: the provider serving it (which may change once on failover) and the answer's parts. */
export interface Dispatch {
  readonly route: Route;
  readonly parts: AsyncIterable<InferencePart>;
}

/** DispatcherOptions configures a Dispatcher. */
export interface DispatcherOptions {
  readonly table: RoutingTable;
  readonly agents: AgentCalls;
  readonly health: ProviderHealth;
  /** failoverAttempts is how many other providers are tried when one fails before the first byte (default 1). */
  readonly failoverAttempts?: number;
}

/**
 * Dispatcher routes inference requests to providers. It picks, among the caller's online providers that serve the
 * model with the operation's service type and whose circuit is closed, the one with the fewest requests in flight
 * from this gateway (ties go to the lower reported load, then round robin). When that provider fails before the
 * answer began (unreachable, overloaded, or its model server failed with a 5xx), it tries another once; never after
 * the first part of an answer, and never on a 4xx. Every outcome feeds the providers' circuit breakers.
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
    this.#failoverAttempts = options.failoverAttempts ?? 1;
  }

  /** route chooses a provider or throws the GatewayError the client should get. */
  route(principal: Principal, model: string, operation: DispatchRequest["operation"], exclude?: ReadonlySet<string>): Route {
    const serviceType = OPERATION_SERVICE_TYPES[operation];
    const lookup = this.#table.lookup(principal, model, serviceType);
    if (lookup.kind === "none") throw noProvider(model, KIND_NAMES[serviceType]);
    if (lookup.kind === "wrong_type") {
      const types = lookup.otherTypes.map((t) => SERVICE_TYPE_NAMES[t]).join(", ");
      throw invalidRequest(
        `Model '${model}' is a ${types} model; this endpoint needs a ${SERVICE_TYPE_NAMES[serviceType]} model.`,
        "model",
        "model_not_supported",
      );
    }
    const untried = exclude ? lookup.routes.filter((r) => !exclude.has(r.provider.id)) : lookup.routes;
    if (untried.length === 0) throw noProvider(model, KIND_NAMES[serviceType]);
    const healthy = untried.filter((r) => this.#health.available(r.provider.id));
    // When every circuit is open, trying a provider beats refusing: one of them may have recovered.
    return this.#leastBusy(healthy.length > 0 ? healthy : untried);
  }

  /** dispatch routes the request; the call to the chosen provider opens when the parts are first read. */
  dispatch(request: DispatchRequest): Dispatch {
    const state = { route: this.route(request.principal, request.model, request.operation) };
    return {
      get route() {
        return state.route;
      },
      parts: this.#withFailover(request, state),
    };
  }

  /** inFlight is the number of requests this gateway has in flight at a provider. */
  inFlight(providerId: string): number {
    return this.#inFlight.get(providerId) ?? 0;
  }

  async *#withFailover(request: DispatchRequest, state: { route: Route }): AsyncIterable<InferencePart> {
    const tried = new Set<string>();
    for (let attempt = 0; ; attempt++) {
      const route = state.route;
      tried.add(route.provider.id);
      const id = route.provider.id;
      this.#inFlight.set(id, this.inFlight(id) + 1);
      this.#health.acquire(id);
      let outcome: "succeeded" | "failed" | "released" = "released";
      try {
        const parts = this.#agents.infer(route.provider, this.#call(request, route), request.signal)[Symbol.asyncIterator]();
        let first: IteratorResult<InferencePart>;
        try {
          first = await parts.next();
        } catch (error) {
          outcome = request.signal.aborted ? "released" : isProviderFault(error) ? "failed" : "released";
          const next = outcome === "failed" && attempt < this.#failoverAttempts ? this.#another(request, tried) : undefined;
          if (!next) throw error;
          state.route = next;
          continue;
        }
        if (!first.done && isRetryablePart(first.value)) {
          outcome = "failed";
          const next = attempt < this.#failoverAttempts ? this.#another(request, tried) : undefined;
          if (next) {
            state.route = next;
            continue;
          }
        }
        if (first.done) {
          outcome = "succeeded";
          return;
        }
        yield first.value;
        outcome = partOutcome(first.value);
        for (;;) {
          const next = await parts.next();
          if (next.done) break;
          outcome = partOutcome(next.value);
          yield next.value;
        }
        return;
      } catch (error) {
        if (!request.signal.aborted && isProviderFault(error)) outcome = "failed";
        throw error;
      } finally {
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
      return this.route(request.principal, request.model, request.operation, tried);
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
      body: request.body(route.model.id),
      media: request.media ?? [],
    });
  }

  #leastBusy(routes: readonly Route[]): Route {
    const turn = this.#turn++;
    let best: Route | undefined;
    let bestScore = Number.POSITIVE_INFINITY;
    for (let i = 0; i < routes.length; i++) {
      const route = routes[(turn + i) % routes.length] as Route;
      const score = this.inFlight(route.provider.id) * 1e6 + (route.provider.load?.inFlight ?? 0);
      if (score < bestScore) {
        best = route;
        bestScore = score;
      }
    }
    if (!best) throw new GatewayError(500, "internal_error", "no route to choose from");
    return best;
  }
}

/** isProviderFault tells a failed call that says something is wrong with the provider from one that does not. */
function isProviderFault(error: unknown): boolean {
  if (!(error instanceof ConnectError)) return true;
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
      return true;
    default:
      return false;
  }
}

/** isRetryablePart is an answer that failed before it began of a kind another provider may not share. */
function isRetryablePart(part: InferencePart): boolean {
  return part.part.case === "error" && errorKindInfo(part.part.value.kind).failover;
}

/** partOutcome is what the latest part says about the provider's health: every error kind is the provider's. */
function partOutcome(part: InferencePart): "succeeded" | "failed" {
  return part.part.case === "error" ? "failed" : "succeeded";
}
