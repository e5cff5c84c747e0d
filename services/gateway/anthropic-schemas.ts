import type { FastifySchema } from "fastify";
import { jsonResponse, model, namedEvents, requestObject, stream, tokenCount } from "./openai-schemas.js";

/**
 * anthropic-schemas holds the contract of the façade's Anthropic routes, POST /v1/messages and its count_tokens, as
 * openai-schemas.ts holds the OpenAI routes': the schemas validate requests and document them in /openapi.json. The
 * routes take the key as Anthropic's clients send it, in x-api-key, as well as a bearer token, and answer every error
 * in Anthropic's envelope (see anthropic-errors.ts).
 */

/** API_KEY_HEADER_AUTH is the key as Anthropic's clients present it: an infermesh API key in x-api-key. */
export const API_KEY_HEADER_AUTH = {
  type: "apiKey",
  in: "header",
  name: "x-api-key",
  description: "An infermesh API key, as Anthropic's clients send it; the Anthropic routes take it here or as a bearer token.",
} as const;

/** ANTHROPIC_SECURITY is the Anthropic routes' security: x-api-key, or the bearer token every /v1 route takes. */
const ANTHROPIC_SECURITY = [{ apiKeyHeader: [] }, { bearerAuth: [] }];

/** anthropicErrorEnvelope is Anthropic's error body. */
const anthropicErrorEnvelope = {
  type: "object",
  required: ["type", "error", "request_id"],
  properties: {
    type: { const: "error" },
    error: {
      type: "object",
      required: ["type", "message"],
      properties: {
        type: {
          type: "string",
          enum: [
            "invalid_request_error",
            "authentication_error",
            "permission_error",
            "not_found_error",
            "request_too_large",
            "rate_limit_error",
            "api_error",
            "overloaded_error",
          ],
        },
        message: { type: "string" },
      },
    },
    request_id: { type: "string", description: "The request's id, as the X-Request-Id header carries it." },
  },
} as const;

/** ANTHROPIC_ERROR_RESPONSES documents the 4xx and 5xx answers of the Anthropic routes: Anthropic's envelope. */
export const ANTHROPIC_ERROR_RESPONSES = {
  "4xx": {
    description: "The request was refused (bad input, bad key, unknown model, rate limit).",
    content: { "application/json": { schema: anthropicErrorEnvelope } },
  },
  "5xx": {
    description: "The mesh failed to answer (upstream failure, timeout).",
    content: { "application/json": { schema: anthropicErrorEnvelope } },
  },
} as const;

/** messages is a conversation as Anthropic's API takes it. */
const messages = {
  type: "array",
  minItems: 1,
  items: {
    type: "object",
    required: ["role", "content"],
    properties: {
      role: { type: "string", description: "user or assistant" },
      content: { type: ["string", "array"], items: { type: "object" }, description: "A string, or an array of content blocks." },
    },
  },
} as const;

const system = {
  type: ["string", "array"],
  items: { type: "object" },
  description: "The system prompt: a string, or an array of text blocks.",
} as const;

/**
 * MESSAGES_BODY is the body of POST /v1/messages. Anthropic's API requires max_tokens; the gateway does not, because
 * the servers behind it (llama-server among them) do not either and fill in their own default, and clients written
 * for them leave it out: refusing them here would break what works against their server directly. A provider whose
 * server does require it says so itself, with its own 400.
 */
export const MESSAGES_BODY = {
  ...requestObject,
  required: ["model", "messages"],
  additionalProperties: true,
  properties: {
    model,
    messages,
    system,
    max_tokens: {
      ...tokenCount,
      type: "integer",
      minimum: 1,
      description: "Most tokens to generate; the gateway lowers it to its ceiling.",
    },
    stream,
    temperature: { type: ["number", "null"], minimum: 0 },
    top_p: { type: ["number", "null"], minimum: 0, maximum: 1 },
    top_k: { type: ["integer", "null"], minimum: 0 },
    stop_sequences: { type: ["array", "null"], items: { type: "string" } },
    tools: { type: ["array", "null"], items: { type: "object" } },
  },
  examples: [{ model: "sim-llama", max_tokens: 64, messages: [{ role: "user", content: "Hello!" }] }],
} as const;

/** COUNT_TOKENS_BODY is the body of POST /v1/messages/count_tokens. */
export const COUNT_TOKENS_BODY = {
  ...requestObject,
  required: ["model", "messages"],
  additionalProperties: true,
  properties: { model, messages, system, tools: { type: ["array", "null"], items: { type: "object" } } },
  examples: [{ model: "sim-llama", messages: [{ role: "user", content: "Hello!" }] }],
} as const;

/** MESSAGES_SCHEMA is POST /v1/messages. */
export const MESSAGES_SCHEMA = {
  summary: "Create a message (Anthropic's Messages API)",
  description: "Served by the providers whose model servers speak Anthropic's Messages API (supported feature 'messages').",
  tags: ["anthropic"],
  operationId: "createMessage",
  security: ANTHROPIC_SECURITY,
  body: MESSAGES_BODY,
  response: {
    200: {
      description: "The message; with `stream: true`, Anthropic's named events (`event: message_start` and so on).",
      content: {
        "application/json": {
          schema: {
            type: "object",
            required: ["id", "type", "role", "content"],
            properties: {
              id: { type: "string" },
              type: { const: "message" },
              role: { const: "assistant" },
              model: { type: "string" },
              content: { type: "array", items: { type: "object" } },
              stop_reason: { type: ["string", "null"] },
              usage: { type: "object", properties: { input_tokens: { type: "integer" }, output_tokens: { type: "integer" } } },
            },
          },
        },
        "text/event-stream": namedEvents,
      },
    },
    ...ANTHROPIC_ERROR_RESPONSES,
  },
} as const satisfies FastifySchema;

/** COUNT_TOKENS_SCHEMA is POST /v1/messages/count_tokens. */
export const COUNT_TOKENS_SCHEMA = {
  summary: "Count the tokens of a message (Anthropic's)",
  description: "Served by the providers whose model servers count tokens Anthropic's way (supported feature 'count_tokens').",
  tags: ["anthropic"],
  operationId: "countMessageTokens",
  security: ANTHROPIC_SECURITY,
  body: COUNT_TOKENS_BODY,
  response: {
    200: jsonResponse(
      { type: "object", required: ["input_tokens"], properties: { input_tokens: { type: "integer" } } },
      "The number of tokens the messages make.",
    ),
    ...ANTHROPIC_ERROR_RESPONSES,
  },
} as const satisfies FastifySchema;
