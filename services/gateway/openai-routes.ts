import type { FastifyInstance, FastifyRequest } from "fastify";
import { Operation } from "../../gen/infermesh/v1/inference_pb.js";
import { OPERATIONS } from "../shared/inference-catalog.js";
import { modelNotFound } from "./gateway-errors.js";
import type { Guardrails } from "./guardrails.js";
import type { InferenceHandler } from "./inference-handler.js";
import { jsonInference } from "./json-inference.js";
import { type ModelEntry, modelList } from "./model-list.js";
import {
  CHAT_COMPLETIONS_SCHEMA,
  COMPLETIONS_SCHEMA,
  EMBEDDINGS_SCHEMA,
  MODEL_SCHEMA,
  MODEL_WILDCARD_SCHEMA,
  MODELS_SCHEMA,
  RERANK_SCHEMA,
  RESPONSES_SCHEMA,
} from "./openai-schemas.js";
import type { JsonBody } from "./request-validation.js";
import type { RoutingTable } from "./routing-table.js";

/** OpenAIRoutesOptions are what the OpenAI routes work with. */
export interface OpenAIRoutesOptions {
  readonly table: RoutingTable;
  readonly handle: InferenceHandler;
  readonly guardrails: Guardrails;
}

/** MODEL_ROUTES are GET /v1/models/{model}'s routes: one path segment, and the rest of the path for ids with '/'. */
export const MODEL_ROUTES = ["/v1/models/:model", "/v1/models/*"] as const;

/**
 * registerOpenAIRoutes adds /v1/models and /v1/models/{model}, and the OpenAI JSON endpoints of text: chat and text
 * completions, embeddings, rerank and responses.
 */
export function registerOpenAIRoutes(app: FastifyInstance, options: OpenAIRoutesOptions): void {
  const { handle, guardrails, table } = options;

  app.get("/v1/models", { schema: MODELS_SCHEMA }, async (request) => ({
    object: "list",
    data: modelList(table.visibleRoutes(request.principal)),
  }));

  const [oneSegment, anyPath] = MODEL_ROUTES;
  app.get<{ Params: { model: string } }>(oneSegment, { schema: MODEL_SCHEMA }, async (request) =>
    retrieveModel(table, request, request.params.model),
  );
  app.get<{ Params: { "*": string } }>(anyPath, { schema: MODEL_WILDCARD_SCHEMA }, async (request) =>
    retrieveModel(table, request, request.params["*"]),
  );

  for (const [operation, schema] of [
    [Operation.CHAT_COMPLETION, CHAT_COMPLETIONS_SCHEMA],
    [Operation.COMPLETION, COMPLETIONS_SCHEMA],
    [Operation.EMBEDDING, EMBEDDINGS_SCHEMA],
    [Operation.RERANK, RERANK_SCHEMA],
    [Operation.RESPONSE, RESPONSES_SCHEMA],
  ] as const) {
    app.post<{ Body: JsonBody }>(OPERATIONS[operation].path, { schema, config: { operation } }, (request, reply) =>
      handle(request, reply, jsonInference(operation, request.body, guardrails)),
    );
  }
}

/**
 * retrieveModel is OpenAI's model retrieval: the entry GET /v1/models lists for the model, found as routing finds it
 * (case-insensitively, among the caller's own providers and those shared with the caller), or OpenAI's 404. A model
 * served with two service types is listed twice; retrieval gives the first entry of the list.
 */
function retrieveModel(table: RoutingTable, request: FastifyRequest, id: string): ModelEntry {
  const wanted = id.toLowerCase();
  const entry = modelList(table.visibleRoutes(request.principal)).find((model) => model.id.toLowerCase() === wanted);
  if (!entry) throw modelNotFound(id);
  return entry;
}
