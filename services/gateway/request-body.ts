import { invalidRequest } from "./error-envelope.js";

/** JsonObject is a parsed JSON request body. */
export type JsonObject = Record<string, unknown>;

/** parseJsonObject parses a request body that must be a JSON object, or throws a 400 saying what is wrong. */
export function parseJsonObject(body: unknown): JsonObject {
  if (!(body instanceof Uint8Array) || body.byteLength === 0) {
    throw invalidRequest("The request body is empty; send a JSON object.", undefined, "invalid_json");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8"));
  } catch (error) {
    throw invalidRequest(`The request body is not valid JSON: ${(error as Error).message}`, undefined, "invalid_json");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw invalidRequest("The request body must be a JSON object.", undefined, "invalid_json");
  }
  return parsed as JsonObject;
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
