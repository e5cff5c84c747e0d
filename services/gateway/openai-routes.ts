import type { FastifyInstance } from "fastify";
import { Operation } from "../../gen/infermesh/v1/inference_pb.js";
import { type KnownOperation, OPERATIONS } from "../shared/inference-catalog.js";
import { checkInputSize, clampTokens, type Guardrails, overTokenCeiling } from "./guardrails.js";
import type { InferenceHandler } from "./inference-handler.js";
import { type InferenceRequest, jsonProviderBody } from "./inference-request.js";
import { modelList } from "./model-list.js";
import { CHAT_COMPLETIONS_SCHEMA, COMPLETIONS_SCHEMA, MODELS_SCHEMA } from "./openai-schemas.js";
import type { JsonBody } from "./request-validation.js";
import type { RoutingTable } from "./routing-table.js";
import { needsUsageInjection, withUsageRequested } from "./usage-injection.js";

/** OpenAIRoutesOptions are what the OpenAI routes work with. */
export interface OpenAIRoutesOptions {
  readonly table: RoutingTable;
  readonly handle: InferenceHandler;
  readonly guardrails: Guardrails;
}

/** registerOpenAIRoutes adds /v1/models, /v1/chat/completions and /v1/completions. */
export function registerOpenAIRoutes(app: FastifyInstance, options: OpenAIRoutesOptions): void {
  const { handle, guardrails } = options;

  app.get("/v1/models", { schema: MODELS_SCHEMA }, async (request) => ({
    object: "list",
    data: modelList(options.table.visibleRoutes(request.principal)),
  }));

  for (const [operation, schema] of [
    [Operation.CHAT_COMPLETION, CHAT_COMPLETIONS_SCHEMA],
    [Operation.COMPLETION, COMPLETIONS_SCHEMA],
  ] as const) {
    app.post<{ Body: JsonBody }>(OPERATIONS[operation].path, { schema, config: { operation } }, (request, reply) =>
      handle(request, reply, textGeneration(operation, request.body, guardrails)),
    );
  }
}

/**
 * textGeneration reads a chat or completion request that passed its schema: the guardrails bound its input (413) and
 * clamp its token limits, and a stream is made to ask for usage when the client did not, so that every stream's
 * tokens are counted; that usage chunk is then hidden from the client.
 */
export function textGeneration(operation: KnownOperation, body: JsonBody, guardrails: Guardrails): InferenceRequest {
  const json = body.json;
  checkInputSize(json, guardrails);
  const stream = json.stream === true;
  const injectUsage = needsUsageInjection(json, stream);
  const clamped = overTokenCeiling(json, guardrails) ? clampTokens(json, guardrails) : undefined;
  const changed = injectUsage ? withUsageRequested(clamped ?? json) : clamped;
  return {
    operation,
    model: json.model as string,
    stream,
    body: jsonProviderBody(body, changed),
    media: [],
    hideUsageChunks: injectUsage,
  };
}
