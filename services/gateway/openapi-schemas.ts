import type { FastifySchema } from "fastify";

/**
 * openapi-schemas holds the routes' `schema` options, from which @fastify/swagger writes /openapi.json. They document
 * the façade and nothing else: the gateway reads bodies raw and validates them itself (OpenAI's errors, exact bytes
 * upstream), so its validator compiler accepts every body and its serializer compiler is plain JSON.stringify.
 * Response schemas are `content` maps keyed by media type, as OpenAPI 3.1 writes them.
 */

/** OPENAPI_INFO is the document's info block. */
export const OPENAPI_INFO = {
  title: "infermesh gateway",
  description:
    "An OpenAI-compatible façade over the infermesh inference mesh. Every /v1 endpoint and the agent heartbeat take " +
    "an API key as 'Authorization: Bearer KEY'.",
  version: "0.1.0",
} as const;

/** BEARER_AUTH is the security scheme every /v1 endpoint uses: an infermesh API key as a bearer token. */
export const BEARER_AUTH = { type: "http", scheme: "bearer", description: "An infermesh API key." } as const;

const binary = { type: "string", format: "binary" } as const;
const sseStream = {
  schema: { type: "string", description: "Server-sent events: `data: {json}` frames, ended by `data: [DONE]`." },
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

const errors = {
  "4xx": { description: "The request was refused (bad input, bad key, unknown model, rate limit).", content: { "application/json": { schema: errorEnvelope } } },
  "5xx": { description: "The mesh failed to answer (no provider, upstream failure, timeout).", content: { "application/json": { schema: errorEnvelope } } },
} as const;

const json = (schema: object, description: string) => ({ description, content: { "application/json": { schema } } });

const usage = {
  type: "object",
  properties: { prompt_tokens: { type: "integer" }, completion_tokens: { type: "integer" }, total_tokens: { type: "integer" } },
} as const;

const model = {
  type: "object",
  required: ["id", "object", "created", "owned_by"],
  properties: {
    id: { type: "string", examples: ["sim-llama"] },
    object: { const: "model" },
    created: { type: "integer" },
    owned_by: { type: "string", description: "The providers serving the model, comma-separated." },
    service_type: { type: "string", enum: ["unspecified", "llm", "stt", "tts", "image"] },
    input_modalities: { type: "array", items: { type: "string" } },
    output_modalities: { type: "array", items: { type: "string" } },
    supported_features: { type: "array", items: { type: "string" } },
    context_length: { type: ["integer", "null"] },
    engine: { type: "string" },
    quantization: { type: "string" },
  },
} as const;

const generationFields = {
  model: { type: "string", examples: ["sim-llama"] },
  stream: { type: "boolean", description: "Answer as server-sent events." },
  stream_options: { type: "object", properties: { include_usage: { type: "boolean" } } },
  max_tokens: { type: "integer", minimum: 1 },
  max_completion_tokens: { type: "integer", minimum: 1 },
  temperature: { type: "number", minimum: 0, maximum: 2 },
  top_p: { type: "number", minimum: 0, maximum: 1 },
  n: { type: "integer", minimum: 1 },
  stop: { oneOf: [{ type: "string" }, { type: "array", items: { type: "string" } }] },
  seed: { type: "integer" },
  user: { type: "string" },
} as const;

const choiceCommon = { index: { type: "integer" }, finish_reason: { type: ["string", "null"] } } as const;

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
    200: json({ type: "object", required: ["object", "data"], properties: { object: { const: "list" }, data: { type: "array", items: model } } }, "The models online providers serve to this key."),
    ...errors,
  },
} as const satisfies FastifySchema;

/** CHAT_COMPLETIONS_SCHEMA documents POST /v1/chat/completions. */
export const CHAT_COMPLETIONS_SCHEMA = {
  summary: "Create a chat completion",
  tags: ["text"],
  operationId: "createChatCompletion",
  body: {
    type: "object",
    required: ["model", "messages"],
    additionalProperties: true,
    properties: {
      ...generationFields,
      messages: {
        type: "array",
        minItems: 1,
        items: {
          type: "object",
          required: ["role"],
          properties: {
            role: { type: "string", enum: ["system", "developer", "user", "assistant", "tool"] },
            content: { oneOf: [{ type: "string" }, { type: "array", items: { type: "object" } }, { type: "null" }] },
            name: { type: "string" },
          },
        },
      },
      tools: { type: "array", items: { type: "object" } },
      response_format: { type: "object" },
    },
    examples: [{ model: "sim-llama", messages: [{ role: "user", content: "Hello!" }] }],
  },
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

/** COMPLETIONS_SCHEMA documents POST /v1/completions. */
export const COMPLETIONS_SCHEMA = {
  summary: "Create a text completion",
  tags: ["text"],
  operationId: "createCompletion",
  body: {
    type: "object",
    required: ["model", "prompt"],
    additionalProperties: true,
    properties: {
      ...generationFields,
      prompt: { oneOf: [{ type: "string" }, { type: "array", items: { oneOf: [{ type: "string" }, { type: "integer" }, { type: "array", items: { type: "integer" } }] } }] },
      echo: { type: "boolean" },
      suffix: { type: "string" },
    },
    examples: [{ model: "sim-llama", prompt: "Once upon a time" }],
  },
  response: {
    200: {
      description: "The completion; with `stream: true`, `text_completion` events.",
      content: {
        "application/json": { schema: completionObject("text_completion", { type: "object", properties: { ...choiceCommon, text: { type: "string" } } }) },
        "text/event-stream": sseStream,
      },
    },
    ...errors,
  },
} as const satisfies FastifySchema;

/** TRANSCRIPTIONS_SCHEMA documents POST /v1/audio/transcriptions, a multipart upload. */
export const TRANSCRIPTIONS_SCHEMA = {
  summary: "Transcribe audio into text",
  tags: ["audio"],
  operationId: "createTranscription",
  body: {
    content: {
      "multipart/form-data": {
        schema: {
          type: "object",
          required: ["file", "model"],
          properties: {
            file: { ...binary, description: "The audio file." },
            model: { type: "string" },
            language: { type: "string" },
            prompt: { type: "string" },
            response_format: { type: "string", enum: ["json", "text", "srt", "verbose_json", "vtt"] },
            temperature: { type: "number" },
            stream: { type: "string", enum: ["true", "false"] },
          },
        },
      },
    },
  },
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

/** IMAGE_GENERATIONS_SCHEMA documents POST /v1/images/generations. */
export const IMAGE_GENERATIONS_SCHEMA = {
  summary: "Create images from a prompt",
  tags: ["images"],
  operationId: "createImage",
  body: {
    type: "object",
    required: ["model", "prompt"],
    additionalProperties: true,
    properties: {
      model: { type: "string" },
      prompt: { type: "string", minLength: 1 },
      n: { type: "integer", minimum: 1, maximum: 10 },
      size: { type: "string", pattern: "^(auto|\\d{2,5}x\\d{2,5})$", examples: ["1024x1024"] },
      response_format: { type: "string", enum: ["b64_json", "url"] },
      partial_images: { type: "integer", minimum: 0, maximum: 3 },
      stream: { type: "boolean" },
    },
  },
  response: {
    200: { description: "The images; with `stream: true`, image generation events.", content: { "application/json": { schema: images }, "text/event-stream": sseStream } },
    ...errors,
  },
} as const satisfies FastifySchema;

/** IMAGE_EDITS_SCHEMA documents POST /v1/images/edits, a multipart upload of one or more images and a mask. */
export const IMAGE_EDITS_SCHEMA = {
  summary: "Edit images from a prompt",
  tags: ["images"],
  operationId: "createImageEdit",
  body: {
    content: {
      "multipart/form-data": {
        schema: {
          type: "object",
          required: ["model", "prompt"],
          properties: {
            image: { ...binary, description: "The image to edit; or send several as 'image[]'." },
            "image[]": { type: "array", items: binary, maxItems: 16 },
            mask: { ...binary, description: "Where to edit: transparent areas are replaced." },
            model: { type: "string" },
            prompt: { type: "string" },
            n: { type: "integer", minimum: 1, maximum: 10 },
            size: { type: "string" },
            response_format: { type: "string", enum: ["b64_json", "url"] },
            stream: { type: "string", enum: ["true", "false"] },
          },
        },
      },
    },
  },
  response: {
    200: { description: "The edited images.", content: { "application/json": { schema: images }, "text/event-stream": sseStream } },
    ...errors,
  },
} as const satisfies FastifySchema;

/** SPEECH_SCHEMA documents POST /v1/audio/speech, whose answer is audio bytes. */
export const SPEECH_SCHEMA = {
  summary: "Turn text into speech",
  tags: ["audio"],
  operationId: "createSpeech",
  body: {
    type: "object",
    required: ["model", "input"],
    additionalProperties: true,
    properties: {
      model: { type: "string" },
      input: { type: "string", minLength: 1, maxLength: 4096 },
      voice: { type: "string" },
      response_format: { type: "string", enum: ["mp3", "opus", "aac", "flac", "wav", "pcm"] },
      stream_format: { type: "string", enum: ["audio", "sse"] },
      speed: { type: "number", minimum: 0.25, maximum: 4 },
      instructions: { type: "string" },
    },
  },
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

/** AGENT_HEARTBEAT_SCHEMA documents the seed's HTTP heartbeat and register endpoints. */
export const AGENT_HEARTBEAT_SCHEMA = {
  summary: "Report an agent's models and state (for agents that cannot speak gRPC)",
  tags: ["agents"],
  body: {
    type: "object",
    additionalProperties: true,
    properties: {
      name: { type: "string" },
      id: { type: "string" },
      endpoint: { type: "string", description: "The agent's AgentService address, host:port; leave out for an unroutable agent." },
      agent_token: { type: "string" },
      version: { type: "string" },
      accepting_requests: { type: "boolean" },
      load: { type: "object" },
      sharing: { type: "object" },
      models: { type: "array", items: { type: "object", required: ["id"], properties: { id: { type: "string" }, type: { type: "string" } } } },
      services: { type: "array", items: { type: "object" } },
    },
  },
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

/** AGENT_HEARTBEAT_ALIAS_SCHEMA hides the slash-less aliases: the same endpoint, documented once. */
export const AGENT_HEARTBEAT_ALIAS_SCHEMA = { hide: true } as const;

/** HEALTH_SCHEMA documents GET /health, open to anyone. */
export const HEALTH_SCHEMA = {
  summary: "Liveness and registry connection",
  tags: ["operations"],
  security: [],
  response: {
    200: json(
      { type: "object", required: ["status", "registry"], properties: { status: { const: "ok" }, registry: { type: "string", enum: ["connected", "disconnected"] } } },
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
