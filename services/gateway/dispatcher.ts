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
import type { AgentCalls } from "./agent-client.js";
import { GatewayError, invalidRequest, noProvider } from "./error-envelope.js";
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

/** Dispatch is a routed request: the provider chosen and the answer's parts as they come. */
export interface Dispatch {
  readonly route: Route;
  readonly parts: AsyncIterable<InferencePart>;
}

/**
 * Dispatcher routes inference requests to providers. It picks, among the caller's online providers that serve the
 * model with the operation's service type, the one with the fewest requests in flight from this gateway (ties go
 * to the lower reported load, then round robin), and counts the request against it until its answer ends.
 */
export class Dispatcher {
  readonly #table: RoutingTable;
  readonly #agents: AgentCalls;
  readonly #inFlight = new Map<string, number>();
  #turn = 0;

  constructor(table: RoutingTable, agents: AgentCalls) {
    this.#table = table;
    this.#agents = agents;
  }

  /** route chooses a provider or throws the GatewayError the client should get. */
  route(principal: Principal, model: string, operation: DispatchRequest["operation"]): Route {
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
    return this.#leastBusy(lookup.routes);
  }

  /** dispatch routes the request and opens the call to the chosen provider's agent. */
  dispatch(request: DispatchRequest): Dispatch {
    const route = this.route(request.principal, request.model, request.operation);
    const call = create(InferenceCallSchema, {
      operation: request.operation,
      model: route.model.id,
      stream: request.stream,
      requestId: request.requestId,
      deadline: timestampFromMs(request.deadlineMs),
      caller: request.principal,
      body: request.body(route.model.id),
      media: request.media ?? [],
    });
    return { route, parts: this.#counted(route, call, request.signal) };
  }

  /** inFlight is the number of requests this gateway has in flight at a provider. */
  inFlight(providerId: string): number {
    return this.#inFlight.get(providerId) ?? 0;
  }

  async *#counted(route: Route, call: InferenceCall, signal: AbortSignal): AsyncIterable<InferencePart> {
    const id = route.provider.id;
    this.#inFlight.set(id, this.inFlight(id) + 1);
    try {
      yield* this.#agents.infer(route.provider, call, signal);
    } finally {
      const left = this.inFlight(id) - 1;
      if (left > 0) this.#inFlight.set(id, left);
      else this.#inFlight.delete(id);
    }
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
