import { gzipSync } from "node:zlib";
import { tinyPng } from "../../services/agent/test-support/tiny-png.js";
import { testWav } from "../../services/sim/simulator.js";
import {
  BOUNDARY,
  bytes,
  FORM_TYPE,
  type FormPart,
  json,
  MiB,
  multipart,
  nestedArrays,
  nestedObjects,
  OMIT,
  type Overrides,
  utf8,
  withOverrides,
} from "./bodies.js";
import type { Auth, ContextValue, CorpusContext, HttpCase, HttpExpectation, RawHttpCase } from "./corpus-types.js";

// The HTTP half of the bad-input corpus: every endpoint of the OpenAI façade, each request wrong in one way.

/** JSON_TYPE is the content type of a JSON body. */
export const JSON_TYPE = { "content-type": "application/json" };
const JSON_LINES = ["Content-Type: application/json"];
const FORM = { "content-type": FORM_TYPE };

/** The outcome classes, as OpenAI and the mesh's error contract name them. */
export const invalid = (code?: string | null, param?: string | null): HttpExpectation => ({
  status: 400,
  type: "invalid_request_error",
  ...(code === undefined ? {} : { code }),
  ...(param === undefined ? {} : { param }),
});
export const unauthorized: HttpExpectation = { status: 401, type: "authentication_error", code: "invalid_api_key" };
const noProvider: HttpExpectation = { status: 404, type: "no_provider", code: "model_not_served", param: "model" };
const wrongType: HttpExpectation = invalid("model_not_supported", "model");
const unsupportedEndpoint: HttpExpectation = invalid("unsupported_endpoint", "model");
const modelNotFound: HttpExpectation = { status: 404, type: "invalid_request_error", code: "model_not_found", param: "model" };
export const tooLarge: HttpExpectation = { status: 413, type: "invalid_request_error", code: "request_too_large" };
export const unknownRoute: HttpExpectation = { status: 404, type: "invalid_request_error", code: "unknown_url" };
export const badJson = invalid("invalid_json");

const WAV = testWav(0.05);
const PNG = tinyPng({ width: 8, height: 8 });

function chatBody(context: CorpusContext, overrides: Overrides = {}): Record<string, unknown> {
  return withOverrides({ model: context.models.llm, messages: [{ role: "user", content: "hi" }], max_tokens: 1 }, overrides);
}
function completionBody(context: CorpusContext, overrides: Overrides = {}): Record<string, unknown> {
  return withOverrides({ model: context.models.llm, prompt: "Once upon a time", max_tokens: 1 }, overrides);
}
function imageBody(context: CorpusContext, overrides: Overrides = {}): Record<string, unknown> {
  return withOverrides({ model: context.models.image, prompt: "a red square", size: "64x64" }, overrides);
}
function speechBody(context: CorpusContext, overrides: Overrides = {}): Record<string, unknown> {
  return withOverrides({ model: context.models.tts, input: "hello", voice: "alloy" }, overrides);
}

function embeddingBody(context: CorpusContext, overrides: Overrides = {}): Record<string, unknown> {
  return withOverrides({ model: context.models.embedding, input: ["a lighthouse", "a harbour"] }, overrides);
}
function rerankBody(context: CorpusContext, overrides: Overrides = {}): Record<string, unknown> {
  return withOverrides({ model: context.models.rerank, query: "lighthouse", documents: ["a lighthouse", { text: "soup" }] }, overrides);
}
function responseBody(context: CorpusContext, overrides: Overrides = {}): Record<string, unknown> {
  return withOverrides({ model: context.models.chatOnly, input: "hi", max_output_tokens: 16 }, overrides);
}
function messageBody(context: CorpusContext, overrides: Overrides = {}): Record<string, unknown> {
  return withOverrides({ model: context.models.chatOnly, max_tokens: 16, messages: [{ role: "user", content: "hi" }] }, overrides);
}
function countTokensBody(context: CorpusContext, overrides: Overrides = {}): Record<string, unknown> {
  return withOverrides({ model: context.models.chatOnly, messages: [{ role: "user", content: "hi" }] }, overrides);
}

function transcriptionParts(context: CorpusContext, extra: readonly FormPart[] = [], without: readonly string[] = []): FormPart[] {
  const parts: FormPart[] = [
    { name: "model", data: context.models.stt },
    { name: "file", filename: "a.wav", contentType: "audio/wav", data: WAV },
  ];
  return [...parts.filter((part) => !without.includes(part.name)), ...extra];
}
function translationParts(context: CorpusContext, extra: readonly FormPart[] = [], without: readonly string[] = []): FormPart[] {
  return transcriptionParts(context, extra, without);
}
function editParts(context: CorpusContext, extra: readonly FormPart[] = [], without: readonly string[] = []): FormPart[] {
  const parts: FormPart[] = [
    { name: "model", data: context.models.image },
    { name: "prompt", data: "make it blue" },
    { name: "image", filename: "a.png", contentType: "image/png", data: PNG },
  ];
  return [...parts.filter((part) => !without.includes(part.name)), ...extra];
}

/** Endpoint is one route of the façade, with a body that is valid for it; anthropic marks Anthropic's routes. */
interface Endpoint {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: (context: CorpusContext) => Buffer;
  readonly anthropic?: true;
}

const ENDPOINTS: readonly Endpoint[] = [
  { method: "GET", path: "/v1/models", headers: {} },
  { method: "GET", path: "/v1/models/sim-llama", headers: {} },
  { method: "POST", path: "/v1/chat/completions", headers: JSON_TYPE, body: (c) => json(chatBody(c)) },
  { method: "POST", path: "/v1/completions", headers: JSON_TYPE, body: (c) => json(completionBody(c)) },
  { method: "POST", path: "/v1/embeddings", headers: JSON_TYPE, body: (c) => json(embeddingBody(c)) },
  { method: "POST", path: "/v1/rerank", headers: JSON_TYPE, body: (c) => json(rerankBody(c)) },
  { method: "POST", path: "/v1/responses", headers: JSON_TYPE, body: (c) => json(responseBody(c)) },
  { method: "POST", path: "/v1/messages", headers: JSON_TYPE, body: (c) => json(messageBody(c)), anthropic: true },
  { method: "POST", path: "/v1/messages/count_tokens", headers: JSON_TYPE, body: (c) => json(countTokensBody(c)), anthropic: true },
  { method: "POST", path: "/v1/audio/transcriptions", headers: FORM, body: (c) => multipart(BOUNDARY, transcriptionParts(c)) },
  { method: "POST", path: "/v1/audio/translations", headers: FORM, body: (c) => multipart(BOUNDARY, translationParts(c)) },
  { method: "POST", path: "/v1/images/generations", headers: JSON_TYPE, body: (c) => json(imageBody(c)) },
  { method: "POST", path: "/v1/images/edits", headers: FORM, body: (c) => multipart(BOUNDARY, editParts(c)) },
  { method: "POST", path: "/v1/audio/speech", headers: JSON_TYPE, body: (c) => json(speechBody(c)) },
  { method: "GET", path: "/v1/no-such-endpoint", headers: {} },
];

/** BAD_CREDENTIALS are Authorization headers that authenticate nobody. */
export const BAD_CREDENTIALS: readonly { readonly name: string; readonly auth: Auth }[] = [
  { name: "no Authorization header", auth: "none" },
  { name: "'Bearer' without a token", auth: { header: "Bearer" } },
  { name: "Basic credentials", auth: { header: "Basic YWxpY2U6c2VjcmV0" } },
  { name: "an unknown key", auth: { header: "Bearer sk-infermesh-not-a-real-key-000000000000" } },
  { name: "the key followed by junk", auth: { header: (c) => `Bearer ${c.apiKey} junk` } },
  { name: "latin-1 bytes as the key", auth: { header: "Bearer \u00ff\u00fe\u00e9\u00e8" } },
];

/** BAD_API_KEY_HEADERS are x-api-key headers, as Anthropic's clients send the key, that authenticate nobody. */
const BAD_API_KEY_HEADERS: readonly { readonly name: string; readonly auth: Auth }[] = [
  { name: "an empty x-api-key", auth: { apiKeyHeader: "" } },
  { name: "an unknown key in x-api-key", auth: { apiKeyHeader: "sk-infermesh-not-a-real-key-000000000000" } },
  { name: "'Bearer KEY' in x-api-key", auth: { apiKeyHeader: (c) => `Bearer ${c.apiKey}` } },
  { name: "the key followed by junk in x-api-key", auth: { apiKeyHeader: (c) => `${c.apiKey} junk` } },
];

/**
 * ANTHROPIC_TYPES are Anthropic's error types by status, as its API documents them; 415 and the other 4xx it names
 * no type for are invalid_request_error.
 */
const ANTHROPIC_TYPES: Readonly<Record<number, string>> = {
  400: "invalid_request_error",
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  413: "request_too_large",
  415: "invalid_request_error",
  429: "rate_limit_error",
};

/** inAnthropicEnvelope is an expectation on one of Anthropic's routes: the same status, in Anthropic's envelope. */
export function inAnthropicEnvelope(expect: HttpExpectation): HttpExpectation {
  if (expect.status < 400 || expect.bare) return expect;
  const type = ANTHROPIC_TYPES[expect.status];
  return {
    status: expect.status,
    envelope: "anthropic",
    ...(type === undefined ? {} : { type }),
    ...(expect.reachesModel === undefined ? {} : { reachesModel: expect.reachesModel }),
  };
}

/** forEndpoint is an expectation as the endpoint's API writes it. */
const forEndpoint = (endpoint: Endpoint, expect: HttpExpectation) => (endpoint.anthropic ? inAnthropicEnvelope(expect) : expect);

/**
 * authCases send each endpoint a valid request with a bad credential: 401, before the body is even read. Anthropic's
 * routes take the key in x-api-key too, and get bad ones there.
 */
function authCases(): HttpCase[] {
  return ENDPOINTS.flatMap((endpoint) =>
    [...BAD_CREDENTIALS, ...(endpoint.anthropic ? BAD_API_KEY_HEADERS : [])].map(({ name, auth }) => ({
      kind: "http" as const,
      name: `${endpoint.method} ${endpoint.path}: ${name}`,
      method: endpoint.method,
      path: endpoint.path,
      auth,
      headers: endpoint.headers,
      ...(endpoint.body ? { body: endpoint.body } : {}),
      expect: forEndpoint(endpoint, unauthorized),
    })),
  );
}

/**
 * tenantCases send another user's valid key: that user has no provider of these models, so 404 no_provider, and
 * OpenAI's 404 model_not_found for a model the user would retrieve.
 */
function tenantCases(): HttpCase[] {
  return ENDPOINTS.filter((endpoint) => endpoint.method === "POST" || endpoint.path.startsWith("/v1/models/")).map((endpoint) => ({
    kind: "http" as const,
    name: `${endpoint.path}: another user's key reaches none of this user's models`,
    method: endpoint.method,
    path: endpoint.path,
    auth: { header: (c: CorpusContext) => `Bearer ${c.otherKey}` },
    headers: endpoint.headers,
    ...(endpoint.body ? { body: endpoint.body } : {}),
    expect: endpoint.method === "GET" ? modelNotFound : forEndpoint(endpoint, noProvider),
  }));
}

function post(
  path: string,
  name: string,
  body: ((context: CorpusContext) => Buffer) | undefined,
  expect: HttpExpectation,
  headers: Readonly<Record<string, string>> = JSON_TYPE,
): HttpCase {
  return { kind: "http", name: `${path}: ${name}`, method: "POST", path, auth: "valid", headers, ...(body ? { body } : {}), expect };
}

/** syntaxCases are bodies that are not one JSON object, for a JSON endpoint. */
function syntaxCases(path: string, valid: (context: CorpusContext) => Record<string, unknown>, all: boolean): HttpCase[] {
  const text = (raw: string) => () => utf8(raw);
  const validText = (c: CorpusContext) => JSON.stringify(valid(c));
  const cases: HttpCase[] = [
    post(path, "empty body", text(""), badJson),
    post(path, "empty body, no content type", undefined, badJson, {}),
    post(path, "a lone '{'", text("{"), badJson),
    post(path, "truncated JSON", (c) => utf8(validText(c).slice(0, -7)), badJson),
    post(path, "JSON null", text("null"), badJson),
    post(path, "a JSON array", text("[]"), badJson),
    post(path, "NaN literal", (c) => utf8(validText(c).replace(/}$/, ',"temperature":NaN}')), badJson),
    post(path, "17 MiB body over the 16 MiB limit", (c) => utf8(validText(c).replace(/}$/, `,"pad":"${"x".repeat(17 * MiB)}"}`)), tooLarge),
    post(path, "invalid UTF-8 in a string", (c) => bytes(validText(c).replace(/}$/, ',"user":"'), [0xff, 0xfe, 0x80], '"}'), badJson),
    post(path, "UTF-8 byte order mark", (c) => bytes([0xef, 0xbb, 0xbf], validText(c)), badJson),
    post(path, "XML body", text("<request><model>x</model></request>"), badJson, { "content-type": "application/xml" }),
  ];
  if (!all) return cases;
  return [
    ...cases,
    post(path, "whitespace only", text(" \r\n\t "), badJson),
    post(path, "a JSON string", text('"hello"'), badJson),
    post(path, "a JSON number", text("42"), badJson),
    post(path, "JSON true", text("true"), badJson),
    post(path, "the request inside an array", (c) => utf8(`[${validText(c)}]`), badJson),
    post(path, "two objects back to back", (c) => utf8(validText(c) + validText(c)), badJson),
    post(path, "Infinity literal", (c) => utf8(validText(c).replace(/}$/, ',"temperature":Infinity}')), badJson),
    post(path, "-Infinity literal", (c) => utf8(validText(c).replace(/}$/, ',"temperature":-Infinity}')), badJson),
    post(path, "a trailing comma", (c) => utf8(validText(c).replace(/}$/, ",}")), badJson),
    post(path, "single-quoted strings", text("{'model':'x','messages':[]}"), badJson),
    post(path, "a comment", (c) => utf8(validText(c).replace(/^{/, "{/* hi */")), badJson),
    post(path, "an unquoted key", (c) => utf8(validText(c).replace(/^{/, "{model2:1,")), badJson),
    post(path, "a raw control character in a string", (c) => utf8(validText(c).replace(/}$/, ',"user":"a\u0001b"}')), badJson),
    post(path, "a NUL byte between tokens", (c) => bytes(validText(c).slice(0, 1), [0x00], validText(c).slice(1)), badJson),
    post(path, "an overlong UTF-8 encoding", (c) => bytes(validText(c).replace(/}$/, ',"user":"'), [0xc0, 0xaf], '"}'), badJson),
    post(path, "a UTF-8-encoded surrogate", (c) => bytes(validText(c).replace(/}$/, ',"user":"'), [0xed, 0xa0, 0x80], '"}'), badJson),
    post(path, "invalid UTF-8 inside the model name", () => bytes('{"model":"sim-', [0xff], '","messages":[]}'), badJson),
    post(
      path,
      "UTF-16LE with a byte order mark",
      (c) => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(validText(c), "utf16le")]),
      badJson,
      {
        "content-type": "application/json; charset=utf-16",
      },
    ),
    post(path, "a string 10 MB long left open", () => utf8(`{"model":"${"m".repeat(10 * 1000 * 1000)}`), badJson),
    post(path, "10,000 nested arrays, unclosed", () => utf8(`{"x":${"[".repeat(10_000)}`), badJson),
    post(path, "form-urlencoded fields", text("model=sim-llama&prompt=hi&messages=hi"), badJson, {
      "content-type": "application/x-www-form-urlencoded",
    }),
    post(path, "a gzip body the gateway does not decode", (c) => gzipSync(utf8(validText(c))), badJson, {
      "content-type": "application/json",
      "content-encoding": "gzip",
    }),
    post(
      path,
      "a multipart form to a JSON endpoint",
      (c) => multipart(BOUNDARY, [{ name: "model", data: String(valid(c).model) }]),
      badJson,
      FORM,
    ),
    post(
      path,
      "a content type that is no media type",
      (c) => json(valid(c)),
      { status: 415, type: "invalid_request_error" },
      {
        "content-type": "not a media type",
      },
    ),
  ];
}

/** modelCases get the model wrong: its type, its presence, its name, its service type. */
type BodyOf = (c: CorpusContext, overrides?: Overrides) => Record<string, unknown>;

function modelCases(path: string, valid: BodyOf, wrongTypes: readonly (keyof CorpusContext["models"])[]): HttpCase[] {
  const body = (overrides: Overrides) => (c: CorpusContext) => json(valid(c, overrides));
  return [
    post(path, "model missing", body({ model: OMIT }), invalid("missing_required_parameter", "model")),
    post(path, "model empty", body({ model: "" }), invalid("missing_required_parameter", "model")),
    post(path, "model null", body({ model: null }), invalid("missing_required_parameter", "model")),
    post(path, "model a number", body({ model: 42 }), invalid("invalid_type", "model")),
    post(path, "model an array", (c) => json(valid(c, { model: [valid(c).model] })), invalid("invalid_type", "model")),
    post(path, "model an object", (c) => json(valid(c, { model: { id: valid(c).model } })), invalid("invalid_type", "model")),
    post(path, "model true", body({ model: true }), invalid("invalid_type", "model")),
    post(path, "an unknown model", body({ model: "gpt-no-such-model" }), noProvider),
    post(path, "a model name 10 MB long", body({ model: "m".repeat(10 * 1000 * 1000) }), noProvider),
    ...wrongTypes.map((type) => post(path, `a ${type} model`, (c) => json(valid(c, { model: c.models[type] })), wrongType)),
  ];
}

function streamCases(path: string, valid: BodyOf): HttpCase[] {
  const body = (overrides: Overrides) => (c: CorpusContext) => json(valid(c, overrides));
  return [
    post(path, 'stream "yes"', body({ stream: "yes" }), invalid("invalid_type", "stream")),
    post(path, "stream 1", body({ stream: 1 }), invalid("invalid_type", "stream")),
    post(path, 'stream "true"', body({ stream: "true" }), invalid("invalid_type", "stream")),
    post(path, "stream an object", body({ stream: {} }), invalid("invalid_type", "stream")),
  ];
}

function chatCases(): HttpCase[] {
  const path = "/v1/chat/completions";
  const body = (overrides: Overrides) => (c: CorpusContext) => json(chatBody(c, overrides));
  const raw = (text: (c: CorpusContext) => string) => (c: CorpusContext) => utf8(text(c));
  const field = (name: string, value: string) => raw((c) => JSON.stringify(chatBody(c)).replace(/}$/, `,"${name}":${value}}`));
  return [
    ...syntaxCases(path, (c) => chatBody(c), true),
    ...modelCases(path, chatBody, ["stt", "image", "tts"]),
    ...streamCases(path, chatBody),
    post(path, "messages missing", body({ messages: OMIT }), invalid("invalid_type", "messages")),
    post(path, "messages a string", body({ messages: "hi" }), invalid("invalid_type", "messages")),
    post(path, "messages an object", body({ messages: { role: "user", content: "hi" } }), invalid("invalid_type", "messages")),
    post(path, "messages null", body({ messages: null }), invalid("invalid_type", "messages")),
    post(path, "messages a number", body({ messages: 42 }), invalid("invalid_type", "messages")),
    post(path, "messages empty", body({ messages: [] }), invalid("empty_array", "messages")),
    post(
      path,
      "messages 10,000 arrays deep",
      raw((c) => JSON.stringify(chatBody(c, { messages: 0 })).replace('"messages":0', `"messages":${nestedArrays(10_000)}`)),
      invalid("json_too_deep"),
    ),
    post(path, "an extra field 10,000 objects deep", field("metadata", nestedObjects(10_000)), invalid("json_too_deep")),
    post(path, "a body nested 129 deep", field("metadata", nestedArrays(128)), invalid("json_too_deep")),
    post(path, "a body nested 128 deep is within the limit", field("metadata", nestedArrays(127)), { status: 200, reachesModel: true }),
    post(path, "a message that is a string", body({ messages: ["hi"] }), invalid("invalid_type", "messages[0]")),
    post(path, "a message that is null", body({ messages: [null] }), invalid("invalid_type", "messages[0]")),
    post(
      path,
      "a message that is an array",
      body({ messages: [[{ role: "user", content: "hi" }]] }),
      invalid("invalid_type", "messages[0]"),
    ),
    post(path, "a message without a role", body({ messages: [{ content: "hi" }] }), invalid("invalid_type", "messages[0].role")),
    post(
      path,
      "a message whose role is a number",
      body({ messages: [{ role: 7, content: "hi" }] }),
      invalid("invalid_type", "messages[0].role"),
    ),
    post(path, 'n "2"', body({ n: "2" }), invalid("invalid_type", "n")),
    post(path, "n -1", body({ n: -1 }), invalid("invalid_value", "n")),
    post(path, "n 0", body({ n: 0 }), invalid("invalid_value", "n")),
    post(path, "n 1.5", body({ n: 1.5 }), invalid("invalid_type", "n")),
    post(path, "n 1e309", field("n", "1e309"), invalid("invalid_value", "n")),
    post(path, "n a billion", body({ n: 1_000_000_000 }), invalid("invalid_value", "n")),
    post(path, 'max_tokens "10"', body({ max_tokens: "10" }), invalid("invalid_type", "max_tokens")),
    post(path, "max_tokens -5", body({ max_tokens: -5 }), invalid("invalid_value", "max_tokens")),
    post(path, "max_tokens 1.5", body({ max_tokens: 1.5 }), invalid("invalid_type", "max_tokens")),
    post(path, "max_tokens 1e309", field("max_tokens", "1e309"), invalid("invalid_value", "max_tokens")),
    post(path, "max_tokens an object", body({ max_tokens: {} }), invalid("invalid_type", "max_tokens")),
    post(path, "max_completion_tokens -1", body({ max_completion_tokens: -1 }), invalid("invalid_value", "max_completion_tokens")),
    post(path, 'temperature "hot"', body({ temperature: "hot" }), invalid("invalid_type", "temperature")),
    post(path, "temperature an array", body({ temperature: [1] }), invalid("invalid_type", "temperature")),
    post(path, "temperature -1", body({ temperature: -1 }), invalid("invalid_value", "temperature")),
    post(path, "temperature 1e309", field("temperature", "1e309"), invalid("invalid_value", "temperature")),
    post(path, 'top_p "0.5"', body({ top_p: "0.5" }), invalid("invalid_type", "top_p")),
    post(path, "stream_options a string", body({ stream: true, stream_options: "yes" }), invalid("invalid_type", "stream_options")),
    post(path, "a 10 MB message, over the input guardrail", body({ messages: [{ role: "user", content: "a ".repeat(5 * 1000 * 1000) }] }), {
      ...tooLarge,
      param: "messages",
    }),
    post(
      path,
      "text/plain JSON is accepted, as llama-server does",
      (c) => json(chatBody(c)),
      { status: 200, reachesModel: true },
      {
        "content-type": "text/plain",
      },
    ),
  ];
}

function completionCases(): HttpCase[] {
  const path = "/v1/completions";
  const body = (overrides: Overrides) => (c: CorpusContext) => json(completionBody(c, overrides));
  return [
    ...syntaxCases(path, (c) => completionBody(c), false),
    ...modelCases(path, completionBody, ["stt", "tts"]),
    ...streamCases(path, completionBody).slice(0, 2),
    post(path, "prompt missing", body({ prompt: OMIT }), invalid("invalid_type", "prompt")),
    post(path, "prompt a number", body({ prompt: 42 }), invalid("invalid_type", "prompt")),
    post(path, "prompt an object", body({ prompt: { text: "hi" } }), invalid("invalid_type", "prompt")),
    post(path, "prompt null", body({ prompt: null }), invalid("invalid_type", "prompt")),
    post(path, 'n "3"', body({ n: "3" }), invalid("invalid_type", "n")),
    post(path, "max_tokens -1", body({ max_tokens: -1 }), invalid("invalid_value", "max_tokens")),
    post(path, 'temperature "warm"', body({ temperature: "warm" }), invalid("invalid_type", "temperature")),
  ];
}

function imageGenerationCases(): HttpCase[] {
  const path = "/v1/images/generations";
  const body = (overrides: Overrides) => (c: CorpusContext) => json(imageBody(c, overrides));
  return [
    ...syntaxCases(path, (c) => imageBody(c), false),
    ...modelCases(path, imageBody, ["llm", "tts"]),
    ...streamCases(path, imageBody).slice(0, 2),
    post(path, "prompt missing", body({ prompt: OMIT }), invalid("missing_required_parameter", "prompt")),
    post(path, "prompt empty", body({ prompt: "" }), invalid("missing_required_parameter", "prompt")),
    post(path, "prompt a number", body({ prompt: 42 }), invalid("missing_required_parameter", "prompt")),
    post(path, "n 0", body({ n: 0 }), invalid("invalid_value", "n")),
    post(path, "n 11", body({ n: 11 }), invalid("invalid_value", "n")),
    post(path, 'n "2"', body({ n: "2" }), invalid("invalid_value", "n")),
    post(path, "n 1.5", body({ n: 1.5 }), invalid("invalid_value", "n")),
    post(path, "n -1", body({ n: -1 }), invalid("invalid_value", "n")),
    post(path, 'size "big"', body({ size: "big" }), invalid("invalid_value", "size")),
    post(path, "size a number", body({ size: 1024 }), invalid("invalid_value", "size")),
    post(path, 'response_format "gif"', body({ response_format: "gif" }), invalid("invalid_value", "response_format")),
    post(path, "partial_images 4", body({ partial_images: 4 }), invalid("invalid_value", "partial_images")),
    post(path, 'partial_images "1"', body({ partial_images: "1" }), invalid("invalid_value", "partial_images")),
  ];
}

function speechCases(): HttpCase[] {
  const path = "/v1/audio/speech";
  const body = (overrides: Overrides) => (c: CorpusContext) => json(speechBody(c, overrides));
  return [
    ...syntaxCases(path, (c) => speechBody(c), false),
    ...modelCases(path, speechBody, ["llm", "stt"]),
    ...streamCases(path, speechBody).slice(0, 2),
    post(path, "input missing", body({ input: OMIT }), invalid("missing_required_parameter", "input")),
    post(path, "input empty", body({ input: "" }), invalid("missing_required_parameter", "input")),
    post(path, "input a number", body({ input: 42 }), invalid("missing_required_parameter", "input")),
    post(path, "input 4,097 characters", body({ input: "a".repeat(4097) }), invalid("string_above_max_length", "input")),
    post(path, "input 10 MB", body({ input: "a".repeat(10 * 1000 * 1000) }), invalid("string_above_max_length", "input")),
    post(path, 'response_format "wma"', body({ response_format: "wma" }), invalid("invalid_value", "response_format")),
    post(path, 'stream_format "chunks"', body({ stream_format: "chunks" }), invalid("invalid_value", "stream_format")),
    post(path, "speed 0", body({ speed: 0 }), invalid("invalid_value", "speed")),
    post(path, "speed 5", body({ speed: 5 }), invalid("invalid_value", "speed")),
    post(path, 'speed "1"', body({ speed: "1" }), invalid("invalid_value", "speed")),
    post(
      path,
      "speed 1e309",
      (c) => utf8(JSON.stringify(speechBody(c)).replace(/}$/, ',"speed":1e309}')),
      invalid("invalid_value", "speed"),
    ),
  ];
}

/** onAnthropicRoute rewrites cases' expectations as one of Anthropic's routes answers them. */
function onAnthropicRoute(cases: readonly HttpCase[]): HttpCase[] {
  return cases.map((testCase) => ({ ...testCase, expect: inAnthropicEnvelope(testCase.expect) }));
}

function modelRetrievalCases(): HttpCase[] {
  const get = (name: string, path: ContextValue, expect: HttpExpectation): HttpCase => ({
    kind: "http",
    name: `GET /v1/models/{model}: ${name}`,
    method: "GET",
    path,
    auth: "valid",
    expect,
  });
  return [
    get("a model of the caller's, in another case", "/v1/models/SIM-LLAMA", { status: 200 }),
    get("an embedding model of the caller's", (c) => `/v1/models/${c.models.embedding}`, { status: 200 }),
    get("a model nobody serves", "/v1/models/gpt-no-such-model", modelNotFound),
    get("an id with an encoded '/' nobody serves", "/v1/models/org%2Fno-such-model", modelNotFound),
    get("an id with '/' nobody serves", "/v1/models/org/no-such-model", modelNotFound),
    get("an id of 300 characters", `/v1/models/${"m".repeat(300)}`, modelNotFound),
    get("an id that is not valid percent-encoding", "/v1/models/%zz", invalid()),
    get("an id with a query string", "/v1/models/gpt-no-such-model?x=1", modelNotFound),
  ];
}

function embeddingCases(): HttpCase[] {
  const path = "/v1/embeddings";
  const body = (overrides: Overrides) => (c: CorpusContext) => json(embeddingBody(c, overrides));
  return [
    ...syntaxCases(path, (c) => embeddingBody(c), false),
    ...modelCases(path, embeddingBody, ["llm", "rerank"]),
    post(path, "input missing", body({ input: OMIT }), invalid("missing_required_parameter", "input")),
    post(path, "input null", body({ input: null }), invalid("missing_required_parameter", "input")),
    post(path, "input an empty string", body({ input: "" }), invalid("missing_required_parameter", "input")),
    post(path, "input an empty array", body({ input: [] }), invalid("empty_array", "input")),
    post(path, "input a number", body({ input: 42 }), invalid("invalid_type", "input")),
    post(path, "input an object", body({ input: { text: "a" } }), invalid("invalid_type", "input")),
    post(path, "input an array of objects", body({ input: [{ text: "a" }] }), invalid("invalid_type", "input[0]")),
    post(path, "an empty string among the inputs", body({ input: ["a", ""] }), invalid("missing_required_parameter", "input[1]")),
    post(path, "an empty token array", body({ input: [[]] }), invalid("empty_array", "input[0]")),
    post(path, "a string inside a token array", body({ input: [[1, "a"]] }), invalid("invalid_type", "input[0][1]")),
    post(path, "a fraction inside a token array", body({ input: [1, 2.5] }), invalid("invalid_type", "input[1]")),
    post(path, 'encoding_format "int8"', body({ encoding_format: "int8" }), invalid("invalid_value", "encoding_format")),
    post(path, "dimensions 0", body({ dimensions: 0 }), invalid("invalid_value", "dimensions")),
    post(path, 'dimensions "256"', body({ dimensions: "256" }), invalid("invalid_type", "dimensions")),
    post(path, "a 10 MB input, over the input guardrail", body({ input: "a".repeat(10 * 1000 * 1000) }), { ...tooLarge, param: "input" }),
  ];
}

function rerankCases(): HttpCase[] {
  const path = "/v1/rerank";
  const body = (overrides: Overrides) => (c: CorpusContext) => json(rerankBody(c, overrides));
  return [
    ...syntaxCases(path, (c) => rerankBody(c), false),
    ...modelCases(path, rerankBody, ["llm", "embedding"]),
    post(path, "query missing", body({ query: OMIT }), invalid("missing_required_parameter", "query")),
    post(path, "query a number", body({ query: 42 }), invalid("invalid_type", "query")),
    post(path, "documents missing", body({ documents: OMIT }), invalid("missing_required_parameter", "documents")),
    post(path, "documents empty", body({ documents: [] }), invalid("empty_array", "documents")),
    post(path, "documents a string", body({ documents: "a lighthouse" }), invalid("invalid_type", "documents")),
    post(path, "a document that is a number", body({ documents: [42] }), invalid("invalid_type", "documents[0]")),
    post(
      path,
      "a document without text",
      body({ documents: [{ title: "t" }] }),
      invalid("missing_required_parameter", "documents[0].text"),
    ),
    post(path, "a document whose text is a number", body({ documents: [{ text: 1 }] }), invalid("invalid_type", "documents[0].text")),
    post(path, "top_n 0", body({ top_n: 0 }), invalid("invalid_value", "top_n")),
    post(path, 'top_n "1"', body({ top_n: "1" }), invalid("invalid_type", "top_n")),
    post(path, "top_n 1.5", body({ top_n: 1.5 }), invalid("invalid_type", "top_n")),
    post(path, "10 MB of documents, over the input guardrail", body({ documents: ["d".repeat(10 * 1000 * 1000)] }), {
      ...tooLarge,
      param: "documents",
    }),
  ];
}

function responseCases(): HttpCase[] {
  const path = "/v1/responses";
  const body = (overrides: Overrides) => (c: CorpusContext) => json(responseBody(c, overrides));
  return [
    ...syntaxCases(path, (c) => responseBody(c), false),
    ...modelCases(path, responseBody, ["stt", "embedding"]),
    ...streamCases(path, responseBody).slice(0, 2),
    post(path, "a model whose providers speak no Responses API", body({}), unsupportedEndpoint),
    post(path, "a streamed request for a model whose providers speak no Responses API", body({ stream: true }), unsupportedEndpoint),
    post(path, "input missing", body({ input: OMIT }), invalid("missing_required_parameter", "input")),
    post(
      path,
      "input missing, previous_response_id a number",
      body({ input: OMIT, previous_response_id: 7 }),
      invalid("missing_required_parameter", "input"),
    ),
    post(path, "input a number", body({ input: 42 }), invalid("invalid_type", "input")),
    post(path, "input null", body({ input: null }), invalid("missing_required_parameter", "input")),
    post(path, "an input item that is a string", body({ input: ["hi"] }), invalid("invalid_type", "input[0]")),
    post(path, "max_output_tokens 0", body({ max_output_tokens: 0 }), invalid("invalid_value", "max_output_tokens")),
    post(path, 'max_output_tokens "16"', body({ max_output_tokens: "16" }), invalid("invalid_type", "max_output_tokens")),
    post(path, "instructions a number", body({ instructions: 42 }), invalid("invalid_type", "instructions")),
    post(
      path,
      "201 input items, over the message guardrail",
      body({ input: Array.from({ length: 201 }, () => ({ role: "user", content: "hi" })) }),
      {
        ...tooLarge,
        param: "input",
      },
    ),
  ];
}

function messageCases(): HttpCase[] {
  const path = "/v1/messages";
  const body = (overrides: Overrides) => (c: CorpusContext) => json(messageBody(c, overrides));
  return onAnthropicRoute([
    ...syntaxCases(path, (c) => messageBody(c), false),
    ...modelCases(path, messageBody, ["embedding", "tts"]),
    ...streamCases(path, messageBody).slice(0, 2),
    post(path, "a model whose providers speak no Messages API", body({}), unsupportedEndpoint),
    post(path, "no max_tokens, for a model whose providers speak no Messages API", body({ max_tokens: OMIT }), unsupportedEndpoint),
    post(path, "messages missing", body({ messages: OMIT }), invalid()),
    post(path, "messages empty", body({ messages: [] }), invalid()),
    post(path, "messages a string", body({ messages: "hi" }), invalid()),
    post(path, "a message that is null", body({ messages: [null] }), invalid()),
    post(path, "a message without a role", body({ messages: [{ content: "hi" }] }), invalid()),
    post(path, "a message without content", body({ messages: [{ role: "user" }] }), invalid()),
    post(path, "a message whose content is a number", body({ messages: [{ role: "user", content: 1 }] }), invalid()),
    post(path, "max_tokens 0", body({ max_tokens: 0 }), invalid()),
    post(path, 'max_tokens "16"', body({ max_tokens: "16" }), invalid()),
    post(path, "max_tokens 1.5", body({ max_tokens: 1.5 }), invalid()),
    post(path, "max_tokens null", body({ max_tokens: null }), invalid()),
    post(path, "system a number", body({ system: 42 }), invalid()),
    post(path, "stop_sequences a string", body({ stop_sequences: "END" }), invalid()),
    post(
      path,
      "a 10 MB message, over the input guardrail",
      body({ messages: [{ role: "user", content: "a ".repeat(5 * 1000 * 1000) }] }),
      tooLarge,
    ),
  ]);
}

function countTokensCases(): HttpCase[] {
  const path = "/v1/messages/count_tokens";
  const body = (overrides: Overrides) => (c: CorpusContext) => json(countTokensBody(c, overrides));
  return onAnthropicRoute([
    ...syntaxCases(path, (c) => countTokensBody(c), false),
    ...modelCases(path, countTokensBody, ["embedding", "stt"]),
    post(path, "a model whose providers do not count tokens", body({}), unsupportedEndpoint),
    post(path, "messages missing", body({ messages: OMIT }), invalid()),
    post(path, "messages empty", body({ messages: [] }), invalid()),
    post(path, "messages an object", body({ messages: { role: "user", content: "hi" } }), invalid()),
    post(path, "system a number", body({ system: 42 }), invalid()),
    post(
      path,
      "201 messages, over the message guardrail",
      body({ messages: Array.from({ length: 201 }, () => ({ role: "user", content: "hi" })) }),
      tooLarge,
    ),
  ]);
}

function translationCases(): HttpCase[] {
  const path = "/v1/audio/translations";
  const send = (name: string, parts: (c: CorpusContext) => FormPart[], expect: HttpExpectation) =>
    post(path, name, (c) => multipart(BOUNDARY, parts(c)), expect, FORM);
  const audio = (name = "file", data: string | Buffer = WAV): FormPart => ({ name, filename: "a.wav", contentType: "audio/wav", data });
  return [
    // The forms valid by design are left out: whether a model server translates is the simulator's to say.
    ...formCases(path, (c) => translationParts(c), invalid("missing_file", "file")).filter((testCase) => !testCase.expect.reachesModel),
    send("no file", (c) => translationParts(c, [], ["file"]), invalid("missing_file", "file")),
    send("two files", (c) => translationParts(c, [audio()]), invalid("missing_file", "file")),
    send("an empty file", (c) => translationParts(c, [audio("file", Buffer.alloc(0))], ["file"]), invalid("empty_file", "file")),
    send(
      "an extra file in 'image'",
      (c) => translationParts(c, [{ name: "image", filename: "a.png", data: PNG }]),
      invalid("unexpected_file", "image"),
    ),
    send("model missing", (c) => translationParts(c, [], ["model"]), invalid("missing_required_parameter", "model")),
    send("model twice", (c) => translationParts(c, [{ name: "model", data: c.models.stt }]), invalid("invalid_value", "model")),
    send("an unknown model", (c) => translationParts(c, [{ name: "model", data: "whisper-nope" }], ["model"]), noProvider),
    send("an llm model", (c) => translationParts(c, [{ name: "model", data: c.models.llm }], ["model"]), wrongType),
    send(
      'response_format "mp4"',
      (c) => translationParts(c, [{ name: "response_format", data: "mp4" }]),
      invalid("invalid_value", "response_format"),
    ),
  ];
}

/** formCases are what a multipart endpoint can get wrong about the form itself, before any field is read. */
function formCases(path: string, parts: (c: CorpusContext) => FormPart[], missingFile: HttpExpectation): HttpCase[] {
  type Build = (c: CorpusContext) => Buffer;
  const valid: Build = (c) => multipart(BOUNDARY, parts(c));
  const plus =
    (...extra: FormPart[]): Build =>
    (c) =>
      multipart(BOUNDARY, [...parts(c), ...extra]);
  const first =
    (...extra: FormPart[]): Build =>
    (c) =>
      multipart(BOUNDARY, [...extra, ...parts(c)]);
  const fieldsOnly = (c: CorpusContext) => parts(c).filter((part) => part.filename === undefined);
  const fileField = (c: CorpusContext) => parts(c).find((part) => part.filename !== undefined)?.name ?? "file";
  const typed = (contentType: string) => ({ "content-type": contentType });
  const cases: [name: string, build: Build, expect: HttpExpectation, headers?: Readonly<Record<string, string>>][] = [
    [
      "a JSON body",
      (c) => json(Object.fromEntries(fieldsOnly(c).map((p) => [p.name, p.data]))),
      invalid("invalid_content_type"),
      JSON_TYPE,
    ],
    ["no body, no content type", () => Buffer.alloc(0), invalid("invalid_content_type"), {}],
    ["multipart/mixed", valid, invalid("invalid_content_type"), typed(`multipart/mixed; boundary=${BOUNDARY}`)],
    ["form-urlencoded", () => utf8("model=x&prompt=y"), invalid("invalid_content_type"), typed("application/x-www-form-urlencoded")],
    ["multipart/form-data without a boundary", valid, invalid("invalid_multipart"), typed("multipart/form-data")],
    ["an empty boundary", valid, invalid("invalid_multipart"), typed("multipart/form-data; boundary=")],
    ["a boundary the body does not use", valid, invalid("invalid_multipart"), typed("multipart/form-data; boundary=not-the-boundary")],
    ["no closing boundary", (c) => multipart(BOUNDARY, parts(c), { close: false }), invalid("invalid_multipart")],
    ["cut off inside the file", (c) => valid(c).subarray(0, valid(c).length - 40), invalid("invalid_multipart")],
    [
      "cut off inside a part's headers",
      () => Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-da`, "latin1"),
      invalid("invalid_multipart"),
    ],
    // @fastify/multipart reads an empty body as an empty form.
    ["an empty body", () => Buffer.alloc(0), missingFile],
    [
      "garbage under a multipart content type",
      () => Buffer.from("\u0000\u00ff garbage \r\n\r\n--", "latin1"),
      invalid("invalid_multipart"),
    ],
    // Valid by design: busboy skips a part it cannot name, as browsers' parsers do, and the rest of the form is valid.
    [
      "a part without Content-Disposition is skipped",
      first({ name: "x", headers: "Content-Type: text/plain", data: "orphan" }),
      { status: 200, reachesModel: true },
    ],
    [
      "a part header line without a colon is skipped",
      first({ name: "x", headers: "this is not a header", data: "x" }),
      { status: 200, reachesModel: true },
    ],
    ["a field named __proto__", first({ name: "__proto__", data: "x" }), invalid("invalid_multipart")],
    ["a field named constructor", first({ name: "constructor", data: "x" }), invalid("invalid_multipart")],
    ["a part header of 100 KB", plus({ name: "n".repeat(100 * 1024), data: "x" }), invalid("invalid_multipart")],
    ["a field value over 1 MiB", plus({ name: "user", data: "u".repeat(MiB + 1) }), tooLarge],
    ["101 text fields", plus(...Array.from({ length: 101 }, (_, i) => ({ name: `f${i}`, data: "x" }))), tooLarge],
    ["18 files", plus(...Array.from({ length: 18 }, (_, i) => ({ name: `extra${i}`, filename: "x.bin", data: "x" }))), tooLarge],
    [
      "a 26 MiB file over the 25 MiB upload limit",
      (c) => multipart(BOUNDARY, [...fieldsOnly(c), { name: fileField(c), filename: "big.bin", data: Buffer.alloc(26 * MiB, 1) }]),
      tooLarge,
    ],
  ];
  return cases.map(([name, build, expect, headers = FORM]) => post(path, name, build, expect, headers));
}

function transcriptionCases(): HttpCase[] {
  const path = "/v1/audio/transcriptions";
  const send = (name: string, parts: (c: CorpusContext) => FormPart[], expect: HttpExpectation) =>
    post(path, name, (c) => multipart(BOUNDARY, parts(c)), expect, FORM);
  const audio = (name = "file", data: string | Buffer = WAV): FormPart => ({ name, filename: "a.wav", contentType: "audio/wav", data });
  const format = (data: string): FormPart => ({ name: "response_format", data });
  return [
    ...formCases(path, (c) => transcriptionParts(c), invalid("missing_file", "file")),
    send("no file", (c) => transcriptionParts(c, [], ["file"]), invalid("missing_file", "file")),
    send("the file in the field 'audio'", (c) => transcriptionParts(c, [audio("audio")], ["file"]), invalid("missing_file", "file")),
    send(
      "the file as a text field",
      (c) => transcriptionParts(c, [{ name: "file", data: "not a file" }], ["file"]),
      invalid("missing_file", "file"),
    ),
    send("two files", (c) => transcriptionParts(c, [audio()]), invalid("missing_file", "file")),
    send(
      "an extra file in 'image'",
      (c) => transcriptionParts(c, [{ name: "image", filename: "a.png", data: PNG }]),
      invalid("unexpected_file", "image"),
    ),
    send("an empty file", (c) => transcriptionParts(c, [audio("file", Buffer.alloc(0))], ["file"]), invalid("empty_file", "file")),
    send("model missing", (c) => transcriptionParts(c, [], ["model"]), invalid("missing_required_parameter", "model")),
    send("model twice", (c) => transcriptionParts(c, [{ name: "model", data: c.models.stt }]), invalid("invalid_value", "model")),
    send("an unknown model", (c) => transcriptionParts(c, [{ name: "model", data: "whisper-nope" }], ["model"]), noProvider),
    send("an llm model", (c) => transcriptionParts(c, [{ name: "model", data: c.models.llm }], ["model"]), wrongType),
    send("a tts model", (c) => transcriptionParts(c, [{ name: "model", data: c.models.tts }], ["model"]), wrongType),
    send('response_format "mp4"', (c) => transcriptionParts(c, [format("mp4")]), invalid("invalid_value", "response_format")),
    send('stream "yes"', (c) => transcriptionParts(c, [{ name: "stream", data: "yes" }]), invalid("invalid_value", "stream")),
    send(
      "response_format twice",
      (c) => transcriptionParts(c, [format("json"), format("text")]),
      invalid("invalid_value", "response_format"),
    ),
    // Valid by design: only the provider decodes audio (the simulator transcribes anything).
    send("bytes that are no audio are the provider's to judge", (c) => transcriptionParts(c, [audio("file", "not audio")], ["file"]), {
      status: 200,
      reachesModel: true,
    }),
  ];
}

function imageEditCases(): HttpCase[] {
  const path = "/v1/images/edits";
  const send = (name: string, parts: (c: CorpusContext) => FormPart[], expect: HttpExpectation) =>
    post(path, name, (c) => multipart(BOUNDARY, parts(c)), expect, FORM);
  const image = (name = "image"): FormPart => ({ name, filename: "a.png", contentType: "image/png", data: PNG });
  return [
    ...formCases(path, (c) => editParts(c), invalid("missing_file", "image")),
    send("no image", (c) => editParts(c, [], ["image"]), invalid("missing_file", "image")),
    send("the image in the field 'file'", (c) => editParts(c, [image("file")], ["image"]), invalid("missing_file", "image")),
    send("an empty image", (c) => editParts(c, [{ ...image(), data: Buffer.alloc(0) }], ["image"]), invalid("empty_file", "image")),
    send("prompt missing", (c) => editParts(c, [], ["prompt"]), invalid("missing_required_parameter", "prompt")),
    send("prompt empty", (c) => editParts(c, [{ name: "prompt", data: "" }], ["prompt"]), invalid("missing_required_parameter", "prompt")),
    send("two masks", (c) => editParts(c, [image("mask"), image("mask")]), invalid("too_many_files", "mask")),
    send(
      "17 images",
      (c) =>
        editParts(
          c,
          Array.from({ length: 17 }, () => image("image[]")),
          ["image"],
        ),
      invalid("too_many_files", "image"),
    ),
    send("an extra file in 'file'", (c) => editParts(c, [image("file")]), invalid("unexpected_file", "file")),
    send('n "0"', (c) => editParts(c, [{ name: "n", data: "0" }]), invalid("invalid_value", "n")),
    send('n "abc"', (c) => editParts(c, [{ name: "n", data: "abc" }]), invalid("invalid_value", "n")),
    send('n "11"', (c) => editParts(c, [{ name: "n", data: "11" }]), invalid("invalid_value", "n")),
    send('n "1.5"', (c) => editParts(c, [{ name: "n", data: "1.5" }]), invalid("invalid_value", "n")),
    send('n "-1"', (c) => editParts(c, [{ name: "n", data: "-1" }]), invalid("invalid_value", "n")),
    send(
      'response_format "gif"',
      (c) => editParts(c, [{ name: "response_format", data: "gif" }]),
      invalid("invalid_value", "response_format"),
    ),
    send('stream "maybe"', (c) => editParts(c, [{ name: "stream", data: "maybe" }]), invalid("invalid_value", "stream")),
    send("model missing", (c) => editParts(c, [], ["model"]), invalid("missing_required_parameter", "model")),
    send("an unknown model", (c) => editParts(c, [{ name: "model", data: "dall-e-nope" }], ["model"]), noProvider),
    send("an stt model", (c) => editParts(c, [{ name: "model", data: c.models.stt }], ["model"]), wrongType),
  ];
}

/** routeCases are unknown routes and wrong methods: 404 unknown_url (under /v1/ after auth). */
function routeCases(): HttpCase[] {
  const route = (method: string, path: string, auth: Auth = "valid", expect: HttpExpectation = unknownRoute): HttpCase => ({
    kind: "http",
    name: `${method} ${path.length > 60 ? `${path.slice(0, 60)}…` : path}`,
    method,
    path,
    auth,
    expect,
  });
  return [
    route("POST", "/v1/models"),
    route("PUT", "/v1/models"),
    route("DELETE", "/v1/models"),
    route("PATCH", "/v1/models"),
    route("DELETE", "/v1/models/sim-llama"),
    route("POST", "/v1/models/sim-llama"),
    route("GET", "/v1/chat/completions"),
    route("PUT", "/v1/chat/completions"),
    route("DELETE", "/v1/chat/completions"),
    route("OPTIONS", "/v1/chat/completions"),
    route("HEAD", "/v1/chat/completions", "valid", { status: 404 }),
    route("GET", "/v1/completions"),
    route("PATCH", "/v1/images/generations"),
    route("GET", "/v1/images/edits"),
    route("GET", "/v1/audio/transcriptions"),
    route("DELETE", "/v1/audio/speech"),
    route("GET", "/v1/audio/speech"),
    route("POST", "/v1/chat/completions/extra"),
    route("POST", "/v1/chat/completions/"),
    route("POST", "/v1/chat//completions"),
    route("GET", "/v1/embeddings"),
    route("PUT", "/v1/rerank"),
    route("GET", "/v1/responses"),
    route("GET", "/v1/audio/translations"),
    route("GET", "/v1/messages", "valid", inAnthropicEnvelope(unknownRoute)),
    route("DELETE", "/v1/messages/count_tokens", "valid", inAnthropicEnvelope(unknownRoute)),
    route("POST", "/v1/messages/batches", "valid", inAnthropicEnvelope(unknownRoute)),
    route("GET", "/v1/messages/batches/x", { apiKeyHeader: (c) => c.apiKey }, inAnthropicEnvelope(unknownRoute)),
    route("PUT", "/v1/messages", "none", inAnthropicEnvelope(unauthorized)),
    route("POST", "/v1/messages/", { apiKeyHeader: "sk-infermesh-not-a-real-key" }, inAnthropicEnvelope(unauthorized)),
    route("GET", "/v1/"),
    route("GET", "/v1/../etc/passwd"),
    route("GET", "/v1/%2e%2e/%2e%2e/etc/passwd"),
    route("GET", "/v1/no-such-endpoint", "none", unauthorized),
    route("POST", "/", "none"),
    route("GET", "/v2/models", "none"),
    route("POST", "/V1/CHAT/COMPLETIONS", "none"),
    route("GET", "/v1", "none"),
    route("GET", "/admin", "none"),
    route("GET", "/v1/%zz", "valid", invalid()),
    route("GET", `/v1/${"a".repeat(10_000)}`),
  ];
}

/** headerCases send headers that are too big or unusual; Node answers the oversized ones itself. */
function headerCases(): HttpCase[] {
  return [
    {
      kind: "http",
      name: "POST /v1/chat/completions: a 100 KB header",
      method: "POST",
      path: "/v1/chat/completions",
      auth: "valid",
      headers: { ...JSON_TYPE, "x-padding": "p".repeat(100 * 1024) },
      body: (c) => json(chatBody(c)),
      expect: { status: 431, type: "invalid_request_error", code: "request_header_fields_too_large" },
    },
    {
      kind: "http",
      name: "GET /v1/models: a 100 KB Authorization header",
      method: "GET",
      path: "/v1/models",
      auth: { header: `Bearer ${"k".repeat(100 * 1024)}` },
      expect: { status: 431, type: "invalid_request_error", code: "request_header_fields_too_large" },
    },
    {
      kind: "http",
      name: "GET /v1/models: a 10 KB bearer token",
      method: "GET",
      path: "/v1/models",
      auth: { header: `Bearer ${"k".repeat(10 * 1024)}` },
      expect: unauthorized,
    },
    {
      kind: "http",
      name: "GET /v1/models: a 100 KB URL",
      method: "GET",
      path: `/v1/models?q=${"q".repeat(100 * 1024)}`,
      auth: "valid",
      expect: { status: 431, type: "invalid_request_error", code: "request_header_fields_too_large" },
    },
    {
      kind: "http",
      name: "POST /v1/chat/completions: a 1000-character x-request-id is replaced, not echoed",
      method: "POST",
      path: "/v1/chat/completions",
      auth: "valid",
      headers: { ...JSON_TYPE, "x-request-id": "r".repeat(1000) },
      body: () => utf8("{"),
      expect: badJson,
    },
  ];
}

/** rawCases break HTTP framing itself; Node's parser refuses them before Fastify routes anything. */
function rawCases(): RawHttpCase[] {
  const badRequest: HttpExpectation = { status: 400, type: "invalid_request_error", code: "malformed_http" };
  const raw = (name: string, bytes: (c: CorpusContext) => Buffer, expect: HttpExpectation = badRequest): RawHttpCase => ({
    kind: "raw",
    name: `raw HTTP: ${name}`,
    bytes,
    expect,
  });
  /** request is a request line, the Host and the user's key, more header lines, and a body, as raw bytes. */
  const request =
    (line: string, headers: readonly string[], body = "", host = true) =>
    (c: CorpusContext) =>
      Buffer.from([line, ...(host ? ["Host: x"] : []), `Authorization: Bearer ${c.apiKey}`, ...headers, "", body].join("\r\n"), "latin1");
  const chatLine = "POST /v1/chat/completions HTTP/1.1";
  const chat = JSON.stringify({ model: "sim-llama", messages: [{ role: "user", content: "hi" }] });
  return [
    raw("a Content-Length that is not a number", request(chatLine, [...JSON_LINES, "Content-Length: abc"])),
    raw("two different Content-Lengths", request(chatLine, [...JSON_LINES, "Content-Length: 2", "Content-Length: 3"], "{}")),
    raw("Content-Length with Transfer-Encoding", request(chatLine, ["Content-Length: 5", "Transfer-Encoding: chunked"], "0\r\n\r\n")),
    raw("a chunk size that is not hex", request(chatLine, [...JSON_LINES, "Transfer-Encoding: chunked"], "zz\r\n{}\r\n0\r\n\r\n")),
    raw("a header line without a colon", request("GET /v1/models HTTP/1.1", ["this is not a header"])),
    raw("an unknown method", request("BREW /v1/models HTTP/1.1", [])),
    raw("a garbage request line", () => Buffer.from("\u0001\u0002 garbage\r\n\r\n", "latin1")),
    // One port serves HTTP/1.1 and, for agents' links, HTTP/2 with prior knowledge: a preface makes the connection
    // HTTP/2, and what follows it must be HTTP/2 frames.
    raw(
      "an HTTP/2 preface followed by HTTP/1.1 text",
      () => Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n", "latin1"),
      {
        status: 0,
        closed: true,
      },
    ),
    raw("a NUL byte in a header value", request("GET /v1/models HTTP/1.1", ["X-Bad: a\u0000b"])),
    raw("an obsolete folded header", request("GET /v1/models HTTP/1.1", ["X-Folded: a", " b"])),
    raw("a space before the colon", request("GET /v1/models HTTP/1.1", ["X-Bad : y"])),
    raw("an unsupported HTTP version", request("GET /v1/models HTTP/3.7", [])),
    // Node answers this one itself, before any handler, with a bare 400 (RFC 9112 requires the 400, not a body).
    raw("HTTP/1.1 without Host", request("GET /v1/models HTTP/1.1", [], "", false), { status: 400, bare: true }),
    raw(
      "17 MiB announced with Expect: 100-continue and never sent",
      request(chatLine, [...JSON_LINES, `Content-Length: ${17 * MiB}`, "Expect: 100-continue"]),
      tooLarge,
    ),
    raw(
      "a stray byte after the JSON, counted by Content-Length",
      request(chatLine, [...JSON_LINES, `Content-Length: ${chat.length + 1}`], `${chat}G`),
      badJson,
    ),
  ];
}

/** httpCorpus is every case of the OpenAI façade and of HTTP itself. */
export function httpCorpus(): (HttpCase | RawHttpCase)[] {
  return [
    ...authCases(),
    ...tenantCases(),
    ...chatCases(),
    ...completionCases(),
    ...imageGenerationCases(),
    ...speechCases(),
    ...transcriptionCases(),
    ...imageEditCases(),
    ...modelRetrievalCases(),
    ...embeddingCases(),
    ...rerankCases(),
    ...responseCases(),
    ...messageCases(),
    ...countTokensCases(),
    ...translationCases(),
    ...routeCases(),
    ...headerCases(),
    ...rawCases(),
  ];
}
