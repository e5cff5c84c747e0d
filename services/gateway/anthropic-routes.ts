import type { FastifyInstance } from "fastify";
import { Operation } from "../../gen/infermesh/v1/inference_pb.js";
import { OPERATIONS } from "../shared/inference-catalog.js";
import { COUNT_TOKENS_SCHEMA, MESSAGES_SCHEMA } from "./anthropic-schemas.js";
import type { Guardrails } from "./guardrails.js";
import type { InferenceHandler } from "./inference-handler.js";
import { jsonInference } from "./json-inference.js";
import type { JsonBody } from "./request-validation.js";

/** AnthropicRoutesOptions are what the Anthropic routes work with. */
export interface AnthropicRoutesOptions {
  readonly handle: InferenceHandler;
  readonly guardrails: Guardrails;
}

/**
 * registerAnthropicRoutes adds Anthropic's POST /v1/messages and /v1/messages/count_tokens, passed through to the
 * providers whose servers speak them as the OpenAI routes are. Their key may come in x-api-key and their errors go out
 * in Anthropic's envelope: both follow from the operations' api (see http-app.ts).
 */
export function registerAnthropicRoutes(app: FastifyInstance, options: AnthropicRoutesOptions): void {
  const { handle, guardrails } = options;
  for (const [operation, schema] of [
    [Operation.MESSAGE, MESSAGES_SCHEMA],
    [Operation.COUNT_TOKENS, COUNT_TOKENS_SCHEMA],
  ] as const) {
    app.post<{ Body: JsonBody }>(OPERATIONS[operation].path, { schema, config: { operation } }, (request, reply) =>
      handle(request, reply, jsonInference(operation, request.body, guardrails)),
    );
  }
}
