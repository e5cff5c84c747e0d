import { isUtf8 } from "node:buffer";
import { invalidRequest } from "./error-envelope.js";

/** JsonObject is a parsed JSON request body. */
export type JsonObject = Record<string, unknown>;

/**
 * MAX_JSON_DEPTH bounds how deeply a request body may nest arrays and objects, as serde_json's recursion limit does:
 * the provider gets the client's bytes, and a JSON library that recurses once per level must never see 10,000 of them.
 */
export const MAX_JSON_DEPTH = 128;
/** MAX_CHOICES is OpenAI's bound on `n`. */
const MAX_CHOICES = 128;

/**
 * parseJsonObject parses a request body that must be a JSON object in UTF-8 (RFC 8259: no byte order mark, no other
 * encoding), nested at most MAX_JSON_DEPTH deep, or throws a 400 saying what is wrong. The bytes are checked, not
 * decoded leniently, because they are what the provider receives.
 */
export function parseJsonObject(body: unknown): JsonObject {
  if (!(body instanceof Uint8Array) || body.byteLength === 0) {
    throw invalidRequest("The request body is empty; send a JSON object.", undefined, "invalid_json");
  }
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    throw invalidRequest("The request body starts with a byte order mark; send JSON without one.", undefined, "invalid_json");
  }
  if (!isUtf8(bytes)) throw invalidRequest("The request body is not valid UTF-8.", undefined, "invalid_json");
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    throw invalidRequest(`The request body is not valid JSON: ${(error as Error).message}`, undefined, "invalid_json");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw invalidRequest("The request body must be a JSON object.", undefined, "invalid_json");
  }
  if (nestsDeeper(parsed, MAX_JSON_DEPTH)) {
    throw invalidRequest(`The request body nests arrays and objects more than ${MAX_JSON_DEPTH} deep.`, undefined, "json_too_deep");
  }
  return parsed as JsonObject;
}

/** nestsDeeper tells whether a parsed value nests arrays and objects more than depth deep; it recurses no deeper. */
function nestsDeeper(value: unknown, depth: number): boolean {
  if (value === null || typeof value !== "object") return false;
  if (depth === 0) return true;
  if (Array.isArray(value)) return value.some((item) => nestsDeeper(item, depth - 1));
  for (const key in value) if (nestsDeeper((value as JsonObject)[key], depth - 1)) return true;
  return false;
}

/**
 * checkGenerationFields throws a 400 naming the field when a chat or completion request has a message that is not an
 * object with a string role, or a sampling field of the wrong type or out of OpenAI's range. The provider would
 * otherwise guess (llama-server quietly uses its default for a mistyped field, and -1 tokens means no limit there).
 */
export function checkGenerationFields(body: JsonObject): void {
  if (Array.isArray(body.messages)) {
    body.messages.forEach((message: unknown, index) => {
      const param = `messages[${index}]`;
      if (message === null || typeof message !== "object" || Array.isArray(message)) {
        throw invalidRequest(`'${param}' must be an object with a role`, param, "invalid_type");
      }
      if (typeof (message as JsonObject).role !== "string") {
        throw invalidRequest(`'${param}.role' must be a string`, `${param}.role`, "invalid_type");
      }
    });
  }
  numberField(body, "n", { min: 1, max: MAX_CHOICES, integer: true });
  numberField(body, "max_tokens", { min: 0, integer: true });
  numberField(body, "max_completion_tokens", { min: 0, integer: true });
  numberField(body, "temperature", { min: 0, max: 2 });
  numberField(body, "top_p", { min: 0, max: 1 });
  const options = body.stream_options;
  if (options !== undefined && options !== null && (typeof options !== "object" || Array.isArray(options))) {
    throw invalidRequest("'stream_options' must be an object", "stream_options", "invalid_type");
  }
}

/** numberField checks an optional number (null counts as absent): its type, then that it is finite and in range. */
function numberField(body: JsonObject, name: string, range: { min: number; max?: number; integer?: boolean }): void {
  const value = body[name];
  if (value === undefined || value === null) return;
  const kind = range.integer ? "an integer" : "a number";
  if (typeof value !== "number") throw invalidRequest(`'${name}' must be ${kind}`, name, "invalid_type");
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isFinite(value) || value < range.min || value > max) {
    const bound = range.max === undefined ? `at least ${range.min}` : `from ${range.min} to ${range.max}`;
    throw invalidRequest(`'${name}' must be ${kind} ${bound}`, name, "invalid_value");
  }
  if (range.integer && !Number.isInteger(value)) throw invalidRequest(`'${name}' must be ${kind}`, name, "invalid_type");
}

/** requireModel returns the body's `model`, or throws a 400 naming the param. */
export function requireModel(body: JsonObject): string {
  const model = body.model;
  if (model === undefined || model === null || model === "") {
    throw invalidRequest("you must provide a model parameter", "model", "missing_required_parameter");
  }
  if (typeof model !== "string") throw invalidRequest("'model' must be a string", "model", "invalid_type");
  return model;
}

/** streamFlag returns the body's `stream` flag, or throws a 400 when it is not a boolean. */
export function streamFlag(body: JsonObject): boolean {
  const stream = body.stream;
  if (stream === undefined || stream === null) return false;
  if (typeof stream !== "boolean") throw invalidRequest("'stream' must be a boolean", "stream", "invalid_type");
  return stream;
}

/**
 * upstreamBody returns the body to send upstream: the client's bytes untouched when they already name the model as
 * the provider serves it and need no change, else re-serialised with the served name (ids match case-insensitively)
 * and whatever `patch` adds.
 */
export function upstreamBody(
  raw: Uint8Array,
  body: JsonObject,
  requested: string,
  served: string,
  patch?: (body: JsonObject) => JsonObject,
): Uint8Array {
  if (requested === served && !patch) return raw;
  const renamed = { ...body, model: served };
  return Buffer.from(JSON.stringify(patch ? patch(renamed) : renamed));
}
