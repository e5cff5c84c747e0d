/**
 * LlamaErrorType is one of llama-server's error `type` values (format_error_response in server-common.cpp).
 */
export type LlamaErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "not_found_error"
  | "server_error"
  | "permission_error"
  | "not_supported_error"
  | "unavailable_error"
  | "exceed_context_size_error";

/** LlamaError is an error answer: its HTTP status and its exact body. */
export interface LlamaError {
  readonly status: number;
  readonly body: string;
}

/**
 * NOT_FOUND is llama-server's answer to an unknown route or method; its key order (message, type, code) differs from
 * other errors because cpp-httplib's error handler writes it, and the bytes match the captured sample.
 */
export const NOT_FOUND: LlamaError = Object.freeze({
  status: 404,
  body: '{"error":{"message":"File Not Found","type":"not_found_error","code":404}}',
});

/** INVALID_API_KEY is llama-server's answer to a missing or wrong API key, byte for byte. */
export const INVALID_API_KEY: LlamaError = Object.freeze({
  status: 401,
  body: '{"error":{"message":"Invalid API Key","type":"authentication_error","code":401}}',
});

/** llamaError builds an error in llama-server's usual shape `{"error":{"code","message","type"}}`. */
export function llamaError(status: number, message: string, type: LlamaErrorType, extra?: Readonly<Record<string, number>>): LlamaError {
  return { status, body: JSON.stringify({ error: { code: status, message, type, ...extra } }) };
}

/** invalidRequest is a 400 invalid_request_error, what llama-server answers for std::invalid_argument. */
export function invalidRequest(message: string): LlamaError {
  return llamaError(400, message, "invalid_request_error");
}

/** serverError is a 500 server_error, what llama-server answers for any other exception. */
export function serverError(message: string): LlamaError {
  return llamaError(500, message, "server_error");
}

/**
 * errorTypeForStatus picks the llama-server error type that goes with an injected status; statuses llama-server never
 * sends fall back to the generic type of their class.
 */
export function errorTypeForStatus(status: number): LlamaErrorType {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 501:
      return "not_supported_error";
    case 503:
      return "unavailable_error";
    default:
      return status < 500 ? "invalid_request_error" : "server_error";
  }
}

/**
 * injectedFailureError is the error of a "status" failure; 503 carries llama-server's own "Loading model" message so
 * that retry logic keyed on it can be exercised.
 */
export function injectedFailureError(status: number): LlamaError {
  const message = status === 503 ? "Loading model" : `simulated failure (HTTP ${status})`;
  return llamaError(status, message, errorTypeForStatus(status));
}

/** contextExceeded is llama-server's answer when the prompt does not fit the context. */
export function contextExceeded(promptTokens: number, contextLength: number): LlamaError {
  return llamaError(
    400,
    `request (${promptTokens} tokens) exceeds the available context size (${contextLength} tokens), try increasing it`,
    "exceed_context_size_error",
    { n_prompt_tokens: promptTokens, n_ctx: contextLength },
  );
}

/**
 * fieldTypeError is llama-server's answer when a typed field holds the wrong JSON type, worded as nlohmann::json's
 * type_error.302.
 */
export function fieldTypeError(field: string, expected: "number" | "boolean" | "string", value: unknown): LlamaError {
  return invalidRequest(`Field '${field}': [json.exception.type_error.302] type must be ${expected}, but is ${jsonTypeName(value)}`);
}

/** jsonTypeName is nlohmann::json's type_name() of a parsed JSON value. */
export function jsonTypeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  switch (typeof value) {
    case "string":
      return "string";
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "object":
      return "object";
    default:
      return "discarded";
  }
}
