import type { FastifyInstance } from "fastify";
import { Modality, ServiceType, type Model } from "../../gen/infermesh/v1/capabilities_pb.js";
import { Operation } from "../../gen/infermesh/v1/inference_pb.js";
import type { Principal } from "../../gen/infermesh/v1/registry_pb.js";
import { invalidRequest } from "./error-envelope.js";
import type { InferenceHandler, ParsedInference } from "./inference-handler.js";
import { checkGenerationFields, parseJsonObject, requireModel, streamFlag, upstreamBody, type JsonObject } from "./request-body.js";
import { checkInputSize, clampTokens, overTokenCeiling, type Guardrails } from "./guardrails.js";
import { needsUsageInjection, withUsageRequested } from "./usage-injection.js";
import { CHAT_COMPLETIONS_SCHEMA, COMPLETIONS_SCHEMA, MODELS_SCHEMA } from "./openapi-schemas.js";
import { SERVICE_TYPE_NAMES, type Route, type RoutingTable } from "./routing-table.js";

declare module "fastify" {
  interface FastifyRequest {
    /** principal is the authenticated caller, set by the gateway's auth hook. */
    principal: Principal;
  }
}

/** OpenAIRoutesOptions are what the OpenAI routes work with. */
export interface OpenAIRoutesOptions {
  readonly table: RoutingTable;
  readonly handle: InferenceHandler;
  readonly guardrails: Guardrails;
}

const MODALITY_NAMES: Readonly<Record<Modality, string>> = {
  [Modality.UNSPECIFIED]: "unspecified",
  [Modality.TEXT]: "text",
  [Modality.IMAGE]: "image",
  [Modality.AUDIO]: "audio",
  [Modality.VIDEO]: "video",
};

/** DEFAULT_MODALITIES are a model's modalities when its provider does not declare them, by service type. */
const DEFAULT_MODALITIES: Readonly<Record<ServiceType, { input: Modality[]; output: Modality[] }>> = {
  [ServiceType.UNSPECIFIED]: { input: [], output: [] },
  [ServiceType.LLM]: { input: [Modality.TEXT], output: [Modality.TEXT] },
  [ServiceType.STT]: { input: [Modality.AUDIO], output: [Modality.TEXT] },
  [ServiceType.TTS]: { input: [Modality.TEXT], output: [Modality.AUDIO] },
  [ServiceType.IMAGE]: { input: [Modality.TEXT, Modality.IMAGE], output: [Modality.IMAGE] },
};

/** registerOpenAIRoutes adds /v1/models, /v1/chat/completions and /v1/completions. */
export function registerOpenAIRoutes(app: FastifyInstance, options: OpenAIRoutesOptions): void {
  const { handle, guardrails } = options;

  app.get("/v1/models", { schema: MODELS_SCHEMA }, async (request) => ({ object: "list", data: modelList(options.table.visibleRoutes(request.principal)) }));

  app.post("/v1/chat/completions", { schema: CHAT_COMPLETIONS_SCHEMA }, (request, reply) =>
    handle(request, reply, Operation.CHAT_COMPLETION, "/v1/chat/completions", () =>
      textGeneration(request.body, guardrails, (body) => {
        if (!Array.isArray(body.messages)) throw invalidRequest("'messages' must be an array of messages", "messages", "invalid_type");
        if (body.messages.length === 0) throw invalidRequest("'messages' must not be empty", "messages", "empty_array");
      }),
    ),
  );

  app.post("/v1/completions", { schema: COMPLETIONS_SCHEMA }, (request, reply) =>
    handle(request, reply, Operation.COMPLETION, "/v1/completions", () =>
      textGeneration(request.body, guardrails, (body) => {
        const prompt = body.prompt;
        if (typeof prompt !== "string" && !Array.isArray(prompt)) {
          throw invalidRequest("'prompt' must be a string or an array", "prompt", "invalid_type");
        }
      }),
    ),
  );
}

/**
 * textGeneration reads a chat or completion request. Streams are made to ask for usage (and that chunk hidden again)
 * when the client did not, so every stream's tokens are counted.
 */
function textGeneration(raw: unknown, guardrails: Guardrails, validate: (body: JsonObject) => void): ParsedInference {
  const body = parseJsonObject(raw);
  const model = requireModel(body);
  const stream = streamFlag(body);
  validate(body);
  checkGenerationFields(body);
  checkInputSize(body, guardrails);
  const injectUsage = needsUsageInjection(body, stream);
  const clamp = overTokenCeiling(body, guardrails);
  const patch =
    injectUsage || clamp
      ? (b: JsonObject) => {
          const clamped = clamp ? clampTokens(b, guardrails) : b;
          return injectUsage ? withUsageRequested(clamped) : clamped;
        }
      : undefined;
  return {
    model,
    stream,
    body: (served) => upstreamBody(raw as Uint8Array, body, model, served, patch),
    dropUsageOnlyChunks: injectUsage,
  };}

/** modelList renders routes as OpenAI's model list, one entry per model id across providers, with capabilities. */
function modelList(routes: readonly Route[]): object[] {
  const byId = new Map<string, { route: Route; owners: Set<string> }>();
  for (const route of routes) {
    const key = `${route.model.id.toLowerCase()}\u0000${route.model.serviceType}`;
    const entry = byId.get(key);
    if (entry) entry.owners.add(route.provider.name);
    else byId.set(key, { route, owners: new Set([route.provider.name]) });
  }
  return [...byId.values()]
    .sort((a, b) => a.route.model.id.localeCompare(b.route.model.id))
    .map(({ route, owners }) => modelEntry(route.model, [...owners].sort().join(","), route.provider.lastHeartbeatTime?.seconds));
}

function modelEntry(model: Model, ownedBy: string, created: bigint | undefined): object {
  const defaults = DEFAULT_MODALITIES[model.serviceType];
  const input = model.inputModalities.length > 0 ? model.inputModalities : defaults.input;
  const output = model.outputModalities.length > 0 ? model.outputModalities : defaults.output;
  return {
    id: model.id,
    object: "model",
    created: created === undefined ? 0 : Number(created),
    owned_by: ownedBy,
    service_type: SERVICE_TYPE_NAMES[model.serviceType],
    input_modalities: input.map((m) => MODALITY_NAMES[m]),
    output_modalities: output.map((m) => MODALITY_NAMES[m]),
    supported_features: model.supportedFeatures,
    context_length: model.contextLength === 0 ? null : model.contextLength,
    ...(model.engine ? { engine: model.engine } : {}),
    ...(model.quantization ? { quantization: model.quantization } : {}),
  };
}
