import type { FastifySchema } from "fastify";
import { SERVICE_TYPE_NAMES } from "../shared/inference-catalog.js";

/**
 * openai-schemas holds the façade's contract: each route's `schema`, from which the gateway validates requests (see
 * request-validation.ts) and @fastify/swagger writes /openapi.json. A request that passes is forwarded as its client
 * sent it; the schema only decides whether it is answered with a 400.
 *
 * Two annotations choose OpenAI's error code where a field's own rule differs from the default (a wrong type is
 * `invalid_type`, a missing field `missing_required_parameter`, any other broken rule `invalid_value`):
 * `x-type-error-code` for a value of the wrong type, `x-missing-code` for a required field that is absent or null.
 * Response schemas are `content` maps keyed by media type, as OpenAPI 3.1 writes them, and document only.
 */

/** OPENAPI_INFO is the document's info block. */
export const OPENAPI_INFO = {
  title: "infermesh gateway",
  description:
    "An OpenAI-compatible façade over the infermesh inference mesh, with Anthropic's Messages API beside it. Every /v1 " +
    "endpoint and the agent heartbeat take an API key as 'Authorization: Bearer KEY'; the Anthropic routes " +
    "(/v1/messages) take it as 'x-api-key: KEY' too, and answer errors in Anthropic's envelope.",
  version: "0.1.0",
} as const;

/** BEARER_AUTH is the security scheme every /v1 endpoint uses: an infermesh API key as a bearer token. */
export const BEARER_AUTH = { type: "http", scheme: "bearer", description: "An infermesh API key." } as const;

/** SESSION_COOKIE_AUTH is a signed-in browser's session; writes also need its X-CSRF-Token header. */
export const SESSION_COOKIE_AUTH = {
  type: "apiKey",
  in: "cookie",
  name: "infermesh_session",
  description: "The session POST /api/auth/login starts; writes need the X-CSRF-Token header it returned.",
} as const;

/** MAX_CHOICES is OpenAI's bound on a completion's `n`. */
export const MAX_CHOICES = 128;
/** MAX_IMAGES is OpenAI's bound on the images one request asks for. */
export const MAX_IMAGES = 10;
/** MAX_EDIT_IMAGES is OpenAI's bound on the images one edit uploads. */
export const MAX_EDIT_IMAGES = 16;
/** MAX_SPEECH_INPUT_CHARS is OpenAI's bound on the text of one speech request. */
export const MAX_SPEECH_INPUT_CHARS = 4096;
/** MAX_TOKENS_LIMIT is the largest token count a request may name; the guardrails clamp it further. */
const MAX_TOKENS_LIMIT = Number.MAX_SAFE_INTEGER;

// A request body that is valid JSON but not an object gets the same code as one that is not JSON at all.
export const requestObject = { type: "object", "x-type-error-code": "invalid_json" } as const;
export const model = {
  type: "string",
  minLength: 1,
  description: "A model id from /v1/models (matched case-insensitively).",
  examples: ["sim-llama"],
} as const;
export const stream = { type: ["boolean", "null"], description: "Answer as server-sent events." } as const;
const binary = { type: "string", format: "binary" } as const;
const sseStream = {
  schema: { type: "string", description: "Server-sent events: `data: {json}` frames, ended by `data: [DONE]`." },
} as const;

/** namedEvents documents a stream whose events are named, as the Responses and Anthropic streams are. */
export const namedEvents = {
  schema: { type: "string", description: "Server-sent events: `event: NAME` and `data: {json}` frames, as the provider emitted them." },
} as const;

/** errorEnvelope is OpenAI's error body, `{"error": {...}}`, which every 4xx and 5xx answer carries. */
const errorEnvelope = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["message", "type", "param", "code"],
      properties: {
        message: { type: "string" },
        type: { type: "string", examples: ["invalid_request_error"] },
        param: { type: ["string", "null"] },
        code: { type: ["string", "null"] },
      },
    },
  },
} as const;

/** ERROR_RESPONSES documents the 4xx and 5xx answers of every route: OpenAI's envelope. */
export const ERROR_RESPONSES = {
  "4xx": {
    description: "The request was refused (bad input, bad key, unknown model, rate limit).",
    content: { "application/json": { schema: errorEnvelope } },
  },
  "5xx": {
    description: "The mesh failed to answer (no provider, upstream failure, timeout).",
    content: { "application/json": { schema: errorEnvelope } },
  },
} as const;

const errors = ERROR_RESPONSES;

/** jsonResponse documents a JSON answer. */
export const jsonResponse = (schema: object, description: string) => ({ description, content: { "application/json": { schema } } });
const json = jsonResponse;

const usage = {
  type: "object",
  properties: { prompt_tokens: { type: "integer" }, completion_tokens: { type: "integer" }, total_tokens: { type: "integer" } },
} as const;

const modelEntry = {
  type: "object",
  required: ["id", "object", "created", "owned_by", "served_by"],
  properties: {
    id: { type: "string", examples: ["sim-llama"] },
    object: { const: "model" },
    created: { type: "integer" },
    owned_by: { type: "string", description: "The providers serving the model, comma-separated." },
    served_by: {
      type: "array",
      description:
        "An infermesh extension: each provider serving the model to this caller and the user who owns it (the caller " +
        "for their own, another member for one shared with them), sorted by provider, then owner.",
      items: {
        type: "object",
        required: ["provider", "owner"],
        properties: {
          provider: { type: "string", description: "The provider's name, as owned_by lists it." },
          owner: { type: "string", description: "The user name of the provider's owner." },
        },
      },
    },
    service_type: { type: "string", enum: ["unspecified", ...SERVICE_TYPE_NAMES] },
    input_modalities: { type: "array", items: { type: "string" } },
    output_modalities: { type: "array", items: { type: "string" } },
    supported_features: { type: "array", items: { type: "string" } },
    context_length: { type: ["integer", "null"] },
    engine: { type: "string" },
    quantization: { type: "string" },
  },
} as const;

export const tokenCount = { type: ["integer", "null"], minimum: 0, maximum: MAX_TOKENS_LIMIT } as const;

/** generationFields are the fields chat and text completions share. */
const generationFields = {
  model,
  stream,
  stream_options: { type: ["object", "null"], properties: { include_usage: { type: "boolean" } } },
  max_tokens: { ...tokenCount, description: "Most tokens to generate; the gateway lowers it to its ceiling." },
  max_completion_tokens: { ...tokenCount, description: "Most tokens to generate; the gateway lowers it to its ceiling." },
  temperature: { type: ["number", "null"], minimum: 0, maximum: 2 },
  top_p: { type: ["number", "null"], minimum: 0, maximum: 1 },
  n: { type: ["integer", "null"], minimum: 1, maximum: MAX_CHOICES },
  stop: { type: ["string", "array", "null"], items: { type: "string" } },
  seed: { type: ["integer", "null"] },
  user: { type: ["string", "null"] },
} as const;

/** CHAT_COMPLETIONS_BODY is the body of POST /v1/chat/completions. */
export const CHAT_COMPLETIONS_BODY = {
  ...requestObject,
  required: ["model", "messages"],
  additionalProperties: true,
  properties: {
    ...generationFields,
    messages: {
      type: "array",
      minItems: 1,
      "x-missing-code": "invalid_type",
      items: {
        type: "object",
        required: ["role"],
        properties: {
          role: {
            type: "string",
            "x-missing-code": "invalid_type",
            description: "system, developer, user, assistant or tool; a model server may know more (llama-server's ipython).",
          },
          content: { type: ["string", "array", "null"], items: { type: "object" } },
          name: { type: "string" },
        },
      },
    },
    tools: { type: ["array", "null"], items: { type: "object" } },
    response_format: { type: ["object", "null"] },
  },
  examples: [{ model: "sim-llama", messages: [{ role: "user", content: "Hello!" }] }],
} as const;

/** COMPLETIONS_BODY is the body of POST /v1/completions. */
export const COMPLETIONS_BODY = {
  ...requestObject,
  required: ["model", "prompt"],
  additionalProperties: true,
  properties: {
    ...generationFields,
    prompt: {
      type: ["string", "array"],
      "x-missing-code": "invalid_type",
      description: "A string, or an array of strings or of token arrays.",
      items: { type: ["string", "integer", "array"], items: { type: "integer" } },
    },
    echo: { type: ["boolean", "null"] },
    suffix: { type: ["string", "null"] },
  },
  examples: [{ model: "sim-llama", prompt: "Once upon a time" }],
} as const;

/** IMAGE_GENERATIONS_BODY is the body of POST /v1/images/generations. */
export const IMAGE_GENERATIONS_BODY = {
  ...requestObject,
  required: ["model", "prompt"],
  additionalProperties: true,
  properties: {
    model,
    prompt: { type: "string", minLength: 1, "x-type-error-code": "missing_required_parameter" },
    n: { type: ["integer", "null"], minimum: 1, maximum: MAX_IMAGES, "x-type-error-code": "invalid_value" },
    size: {
      type: "string",
      pattern: "^(auto|\\d{2,5}x\\d{2,5})$",
      "x-type-error-code": "invalid_value",
      description: "'auto' or WIDTHxHEIGHT, such as '1024x1024'",
      examples: ["1024x1024"],
    },
    response_format: { type: ["string", "null"], enum: ["b64_json", "url", null] },
    partial_images: { type: ["integer", "null"], minimum: 0, maximum: 3, "x-type-error-code": "invalid_value" },
    stream,
  },
  examples: [{ model: "sim-diffusion", prompt: "a lighthouse at dusk", size: "256x256" }],
} as const;

/** SPEECH_BODY is the body of POST /v1/audio/speech. */
export const SPEECH_BODY = {
  ...requestObject,
  required: ["model", "input"],
  additionalProperties: true,
  properties: {
    model,
    input: { type: "string", minLength: 1, maxLength: MAX_SPEECH_INPUT_CHARS, "x-type-error-code": "missing_required_parameter" },
    voice: { type: ["string", "object"], description: "A voice name, such as 'alloy', or a voice object." },
    response_format: { type: ["string", "null"], enum: ["mp3", "opus", "aac", "flac", "wav", "pcm", null] },
    stream_format: { type: ["string", "null"], enum: ["audio", "sse", null] },
    speed: { type: ["number", "null"], minimum: 0.25, maximum: 4, "x-type-error-code": "invalid_value" },
    instructions: { type: ["string", "null"] },
    stream,
  },
  examples: [{ model: "sim-voice", input: "Hello!", voice: "alloy", response_format: "wav" }],
} as const;

/** EMBEDDINGS_BODY is the body of POST /v1/embeddings. */
export const EMBEDDINGS_BODY = {
  ...requestObject,
  required: ["model", "input"],
  additionalProperties: true,
  properties: {
    model,
    input: {
      type: ["string", "array"],
      minLength: 1,
      minItems: 1,
      description: "A string, or a non-empty array of strings, of token ids, or of token id arrays.",
      items: { type: ["string", "integer", "array"], minLength: 1, minItems: 1, items: { type: "integer" } },
    },
    encoding_format: { type: "string", enum: ["float", "base64"] },
    dimensions: { type: ["integer", "null"], minimum: 1 },
    user: { type: ["string", "null"] },
  },
  examples: [{ model: "sim-embed", input: ["a lighthouse at dusk", "a harbour at dawn"] }],
} as const;

/** RERANK_BODY is the body of POST /v1/rerank, in the shape llama-server, Jina and Cohere share. */
export const RERANK_BODY = {
  ...requestObject,
  required: ["model", "query", "documents"],
  additionalProperties: true,
  properties: {
    model,
    query: { type: "string" },
    documents: {
      type: "array",
      minItems: 1,
      description: "The documents to score against the query: strings, or objects with a 'text'.",
      items: { type: ["string", "object"], required: ["text"], properties: { text: { type: "string" } } },
    },
    top_n: { type: ["integer", "null"], minimum: 1, description: "How many of the best documents to return." },
    return_documents: { type: ["boolean", "null"] },
  },
  examples: [{ model: "sim-rerank", query: "lighthouse", documents: ["a lighthouse at dusk", "a bowl of soup"], top_n: 1 }],
} as const;

/**
 * RESPONSES_BODY is the body of POST /v1/responses. As OpenAI's, `input` may be left out of a request that continues
 * a stored response or conversation, or names a prompt template; otherwise it is required, so that no provider is sent
 * a request with nothing to answer.
 */
export const RESPONSES_BODY = {
  ...requestObject,
  required: ["model"],
  additionalProperties: true,
  properties: {
    model,
    input: { type: ["string", "array"], description: "A string, or an array of input items.", items: { type: "object" } },
    instructions: { type: ["string", "null"] },
    previous_response_id: { type: ["string", "null"] },
    stream,
    max_output_tokens: { ...tokenCount, minimum: 1, description: "Most tokens to generate; the gateway lowers it to its ceiling." },
    temperature: { type: ["number", "null"], minimum: 0, maximum: 2 },
    top_p: { type: ["number", "null"], minimum: 0, maximum: 1 },
    tools: { type: ["array", "null"], items: { type: "object" } },
  },
  // Without a stored response, a conversation or a prompt template to continue, there must be an input; the first
  // alternative's error, a missing input, is the one the client reads.
  anyOf: [
    { required: ["input"], properties: { input: { type: ["string", "array"] } } },
    { required: ["previous_response_id"], properties: { previous_response_id: { type: "string" } } },
    { required: ["conversation"], properties: { conversation: { type: ["string", "object"] } } },
    { required: ["prompt"], properties: { prompt: { type: "object" } } },
  ],
  examples: [{ model: "sim-llama", input: "Hello!" }],
} as const;

// A multipart form's text fields are strings, or arrays of strings when a field is repeated.
const formModel = { ...model, "x-type-error-code": "invalid_value" } as const;
const formStream = {
  type: "string",
  enum: ["true", "false"],
  "x-type-error-code": "invalid_value",
  description: "'true' for server-sent events.",
} as const;
const formText = { type: ["string", "array"], items: { type: "string" } } as const;

/** TRANSCRIPTION_FIELDS are the text fields of POST /v1/audio/transcriptions; other fields pass to the provider. */
export const TRANSCRIPTION_FIELDS = {
  type: "object",
  required: ["model"],
  additionalProperties: true,
  properties: {
    model: formModel,
    language: formText,
    prompt: formText,
    response_format: { type: "string", enum: ["json", "text", "srt", "verbose_json", "vtt"], "x-type-error-code": "invalid_value" },
    temperature: formText,
    "timestamp_granularities[]": formText,
    stream: formStream,
  },
} as const;

/** IMAGE_EDIT_FIELDS are the text fields of POST /v1/images/edits; other fields pass to the provider. */
export const IMAGE_EDIT_FIELDS = {
  type: "object",
  required: ["model", "prompt"],
  additionalProperties: true,
  properties: {
    model: formModel,
    prompt: { type: "string", minLength: 1, "x-type-error-code": "invalid_value" },
    n: {
      type: "string",
      pattern: "^([1-9]|10)$",
      "x-type-error-code": "invalid_value",
      description: `a whole number from 1 to ${MAX_IMAGES}`,
    },
    size: formText,
    response_format: { type: "string", enum: ["b64_json", "url"], "x-type-error-code": "invalid_value" },
    stream: formStream,
  },
} as const;

/** TRANSLATION_FIELDS are the text fields of POST /v1/audio/translations; other fields pass to the provider. */
export const TRANSLATION_FIELDS = {
  type: "object",
  required: ["model"],
  additionalProperties: true,
  properties: {
    model: formModel,
    prompt: formText,
    response_format: { type: "string", enum: ["json", "text", "srt", "verbose_json", "vtt"], "x-type-error-code": "invalid_value" },
    temperature: formText,
  },
} as const;

/** multipartBody documents a multipart route: its text fields' schema, plus its files. */
function multipartBody(
  fields: { readonly required: readonly string[]; readonly properties: object },
  files: Record<string, object>,
  requiredFiles: readonly string[],
) {
  return {
    content: {
      "multipart/form-data": {
        schema: { type: "object", required: [...requiredFiles, ...fields.required], properties: { ...files, ...fields.properties } },
      },
    },
  };
}

const completionObject = (object: string, choice: object) => ({
  type: "object",
  required: ["id", "object", "created", "model", "choices"],
  properties: {
    id: { type: "string" },
    object: { const: object },
    created: { type: "integer" },
    model: { type: "string" },
    choices: { type: "array", items: choice },
    usage,
  },
});

const choiceCommon = { index: { type: "integer" }, finish_reason: { type: ["string", "null"] } } as const;

const images = {
  type: "object",
  required: ["created", "data"],
  properties: {
    created: { type: "integer" },
    data: {
      type: "array",
      items: { type: "object", properties: { b64_json: { type: "string" }, url: { type: "string" }, revised_prompt: { type: "string" } } },
    },
  },
} as const;

/** MODELS_SCHEMA documents GET /v1/models. */
export const MODELS_SCHEMA = {
  summary: "List the models the caller can use",
  tags: ["models"],
  operationId: "listModels",
  response: {
    200: json(
      {
        type: "object",
        required: ["object", "data"],
        properties: { object: { const: "list" }, data: { type: "array", items: modelEntry } },
      },
      "The models online providers serve to this key.",
    ),
    ...errors,
  },
} as const satisfies FastifySchema;

/** CHAT_COMPLETIONS_SCHEMA is POST /v1/chat/completions. */
export const CHAT_COMPLETIONS_SCHEMA = {
  summary: "Create a chat completion",
  tags: ["text"],
  operationId: "createChatCompletion",
  body: CHAT_COMPLETIONS_BODY,
  response: {
    200: {
      description: "The completion; with `stream: true`, `chat.completion.chunk` events.",
      content: {
        "application/json": {
          schema: completionObject("chat.completion", {
            type: "object",
            properties: {
              ...choiceCommon,
              message: { type: "object", properties: { role: { type: "string" }, content: { type: ["string", "null"] } } },
            },
          }),
        },
        "text/event-stream": sseStream,
      },
    },
    ...errors,
  },
} as const satisfies FastifySchema;

/** COMPLETIONS_SCHEMA is POST /v1/completions. */
export const COMPLETIONS_SCHEMA = {
  summary: "Create a text completion",
  tags: ["text"],
  operationId: "createCompletion",
  body: COMPLETIONS_BODY,
  response: {
    200: {
      description: "The completion; with `stream: true`, `text_completion` events.",
      content: {
        "application/json": {
          schema: completionObject("text_completion", { type: "object", properties: { ...choiceCommon, text: { type: "string" } } }),
        },
        "text/event-stream": sseStream,
      },
    },
    ...errors,
  },
} as const satisfies FastifySchema;

/** TRANSCRIPTIONS_SCHEMA is POST /v1/audio/transcriptions, a multipart upload. */
export const TRANSCRIPTIONS_SCHEMA = {
  summary: "Transcribe audio into text",
  tags: ["audio"],
  operationId: "createTranscription",
  body: multipartBody(TRANSCRIPTION_FIELDS, { file: { ...binary, description: "The audio file." } }, ["file"]),
  response: {
    200: {
      description: "The transcription, in the requested format.",
      content: {
        "application/json": { schema: { type: "object", required: ["text"], properties: { text: { type: "string" } } } },
        "text/plain": { schema: { type: "string" } },
        "text/vtt": { schema: { type: "string" } },
        "text/event-stream": sseStream,
      },
    },
    ...errors,
  },
} as const satisfies FastifySchema;

/** IMAGE_GENERATIONS_SCHEMA is POST /v1/images/generations. */
export const IMAGE_GENERATIONS_SCHEMA = {
  summary: "Create images from a prompt",
  tags: ["images"],
  operationId: "createImage",
  body: IMAGE_GENERATIONS_BODY,
  response: {
    200: {
      description: "The images; with `stream: true`, image generation events.",
      content: { "application/json": { schema: images }, "text/event-stream": sseStream },
    },
    ...errors,
  },
} as const satisfies FastifySchema;

/** IMAGE_EDITS_SCHEMA is POST /v1/images/edits, a multipart upload of one or more images and a mask. */
export const IMAGE_EDITS_SCHEMA = {
  summary: "Edit images from a prompt",
  tags: ["images"],
  operationId: "createImageEdit",
  body: multipartBody(
    IMAGE_EDIT_FIELDS,
    {
      image: { ...binary, description: "The image to edit; or send several as 'image[]'." },
      "image[]": { type: "array", items: binary, maxItems: MAX_EDIT_IMAGES },
      mask: { ...binary, description: "Where to edit: transparent areas are replaced." },
    },
    [],
  ),
  response: {
    200: { description: "The edited images.", content: { "application/json": { schema: images }, "text/event-stream": sseStream } },
    ...errors,
  },
} as const satisfies FastifySchema;

/** SPEECH_SCHEMA is POST /v1/audio/speech, whose answer is audio bytes. */
export const SPEECH_SCHEMA = {
  summary: "Turn text into speech",
  tags: ["audio"],
  operationId: "createSpeech",
  body: SPEECH_BODY,
  response: {
    200: {
      description: "The audio, in the requested format; with `stream_format: sse`, audio delta events.",
      content: {
        "audio/mpeg": { schema: binary },
        "audio/ogg": { schema: binary },
        "audio/aac": { schema: binary },
        "audio/flac": { schema: binary },
        "audio/wav": { schema: binary },
        "audio/pcm": { schema: binary },
        "application/octet-stream": { schema: binary },
        "text/event-stream": sseStream,
      },
    },
    ...errors,
  },
} as const satisfies FastifySchema;

/** MODEL_SCHEMA documents GET /v1/models/{model}. */
export const MODEL_SCHEMA = {
  summary: "Retrieve a model the caller can use",
  tags: ["models"],
  operationId: "retrieveModel",
  params: {
    type: "object",
    required: ["model"],
    properties: {
      model: {
        type: "string",
        description: "A model id, matched case-insensitively; an id with '/' in it (such as 'org/name') may be sent as it is.",
      },
    },
  },
  response: { 200: json(modelEntry, "The model, as GET /v1/models lists it."), ...errors },
} as const satisfies FastifySchema;

/** MODEL_WILDCARD_SCHEMA serves the ids with '/' in them under MODEL_SCHEMA's route, documented once there. */
export const MODEL_WILDCARD_SCHEMA = { hide: true } as const satisfies FastifySchema;

const embedding = {
  type: "object",
  required: ["object", "data", "model"],
  properties: {
    object: { const: "list" },
    data: {
      type: "array",
      items: {
        type: "object",
        properties: {
          object: { const: "embedding" },
          index: { type: "integer" },
          embedding: {
            type: ["array", "string"],
            items: { type: "number" },
            description: "The vector; base64 of little-endian float32s with encoding_format 'base64'.",
          },
        },
      },
    },
    model: { type: "string" },
    usage: { type: "object", properties: { prompt_tokens: { type: "integer" }, total_tokens: { type: "integer" } } },
  },
} as const;

/** EMBEDDINGS_SCHEMA is POST /v1/embeddings. */
export const EMBEDDINGS_SCHEMA = {
  summary: "Create embeddings",
  tags: ["embeddings"],
  operationId: "createEmbedding",
  body: EMBEDDINGS_BODY,
  response: { 200: json(embedding, "One embedding per input."), ...errors },
} as const satisfies FastifySchema;

/** RERANK_SCHEMA is POST /v1/rerank. */
export const RERANK_SCHEMA = {
  summary: "Score documents against a query",
  tags: ["embeddings"],
  operationId: "createRerank",
  body: RERANK_BODY,
  response: {
    200: json(
      {
        type: "object",
        required: ["results"],
        properties: {
          model: { type: "string" },
          results: {
            type: "array",
            items: {
              type: "object",
              required: ["index", "relevance_score"],
              properties: { index: { type: "integer" }, relevance_score: { type: "number" }, document: { type: "object" } },
            },
          },
          usage: { type: "object", properties: { prompt_tokens: { type: "integer" }, total_tokens: { type: "integer" } } },
        },
      },
      "The documents' scores, best first.",
    ),
    ...errors,
  },
} as const satisfies FastifySchema;

/** RESPONSES_SCHEMA is POST /v1/responses. */
export const RESPONSES_SCHEMA = {
  summary: "Create a model response (OpenAI's Responses API)",
  description: "Served by the providers whose model servers speak the Responses API (supported feature 'responses').",
  tags: ["text"],
  operationId: "createResponse",
  body: RESPONSES_BODY,
  response: {
    200: {
      description: "The response; with `stream: true`, named events (`event: response.output_text.delta` and so on).",
      content: {
        "application/json": {
          schema: {
            type: "object",
            required: ["id", "object", "output"],
            properties: {
              id: { type: "string" },
              object: { const: "response" },
              status: { type: "string" },
              model: { type: "string" },
              output: { type: "array", items: { type: "object" } },
              usage: {
                type: "object",
                properties: { input_tokens: { type: "integer" }, output_tokens: { type: "integer" }, total_tokens: { type: "integer" } },
              },
            },
          },
        },
        "text/event-stream": namedEvents,
      },
    },
    ...errors,
  },
} as const satisfies FastifySchema;

/** TRANSLATIONS_SCHEMA is POST /v1/audio/translations, a multipart upload. */
export const TRANSLATIONS_SCHEMA = {
  summary: "Translate audio into English text",
  tags: ["audio"],
  operationId: "createTranslation",
  body: multipartBody(TRANSLATION_FIELDS, { file: { ...binary, description: "The audio file." } }, ["file"]),
  response: {
    200: {
      description: "The translation, in the requested format.",
      content: {
        "application/json": { schema: { type: "object", required: ["text"], properties: { text: { type: "string" } } } },
        "text/plain": { schema: { type: "string" } },
        "text/vtt": { schema: { type: "string" } },
      },
    },
    ...errors,
  },
} as const satisfies FastifySchema;

const optionalText = { type: ["string", "null"] } as const;

/**
 * AGENT_HEARTBEAT_BODY is the body of inference.club's agent heartbeat and register endpoints. It checks the
 * fields' types; agent-report.ts reads the models, services, load and sharing they carry.
 */
export const AGENT_HEARTBEAT_BODY = {
  type: "object",
  additionalProperties: true,
  properties: {
    name: { ...optionalText, description: "The agent's name (default 'club-host')." },
    id: { ...optionalText, description: "The provider id; by default derived from the user and the name." },
    version: optionalText,
    accepting_requests: { type: ["boolean", "null"] },
    load: { type: ["object", "null"] },
    sharing: { type: ["object", "null"] },
    models: {
      type: ["array", "null"],
      items: {
        type: "object",
        required: ["id"],
        properties: { id: { type: "string" }, type: { type: "string", description: "llm, stt, image or tts" } },
      },
    },
    services: { type: ["array", "null"], items: { type: "object" } },
  },
} as const;

/** AGENT_HEARTBEAT_SCHEMA is inference.club's HTTP heartbeat and register endpoints. */
export const AGENT_HEARTBEAT_SCHEMA = {
  summary: "Report an agent's models and state (for agents that cannot speak gRPC)",
  tags: ["agents"],
  body: AGENT_HEARTBEAT_BODY,
  response: {
    200: json(
      {
        type: "object",
        required: ["status", "provider_id", "name", "routable", "heartbeat_interval_seconds", "ttl_seconds"],
        properties: {
          status: { const: "ok" },
          provider_id: { type: "string" },
          name: { type: "string" },
          routable: { type: "boolean" },
          heartbeat_interval_seconds: { type: "number" },
          ttl_seconds: { type: "number" },
        },
      },
      "The registry accepted the heartbeat.",
    ),
    ...errors,
  },
} as const satisfies FastifySchema;

/** AGENT_HEARTBEAT_ALIAS_SCHEMA validates the slash-less aliases as the endpoint, and documents the endpoint once. */
export const AGENT_HEARTBEAT_ALIAS_SCHEMA = { hide: true, body: AGENT_HEARTBEAT_BODY } as const;

/** HEALTH_SCHEMA documents GET /health, open to anyone. */
export const HEALTH_SCHEMA = {
  summary: "Liveness and registry connection",
  tags: ["operations"],
  security: [],
  response: {
    200: json(
      {
        type: "object",
        required: ["status", "registry"],
        properties: { status: { const: "ok" }, registry: { type: "string", enum: ["connected", "disconnected"] } },
      },
      "The gateway is up.",
    ),
  },
} as const satisfies FastifySchema;

/** METRICS_SCHEMA documents GET /metrics, Prometheus' text format. */
export const METRICS_SCHEMA = {
  summary: "Prometheus metrics",
  tags: ["operations"],
  security: [],
  response: { 200: { description: "Prometheus text exposition format.", content: { "text/plain": { schema: { type: "string" } } } } },
} as const satisfies FastifySchema;
