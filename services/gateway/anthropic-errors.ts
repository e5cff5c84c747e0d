import { STATUS_CODES } from "node:http";
import { isObject } from "../shared/json-object.js";
import type { GatewayError } from "./gateway-errors.js";

/**
 * anthropic-errors writes failures on Anthropic's routes (/v1/messages and its count_tokens) in Anthropic's error
 * envelope, `{"type":"error","error":{"type","message"},"request_id"}`, which Anthropic's clients read instead of
 * OpenAI's: the gateway's own errors, agents' error parts, a provider's own error answer, and a stream's last event.
 */

/** AnthropicErrorType is an error type of Anthropic's API. */
export type AnthropicErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "request_too_large"
  | "rate_limit_error"
  | "api_error"
  | "overloaded_error";

/** AnthropicError is the inner object of Anthropic's error envelope. */
export interface AnthropicError {
  readonly type: AnthropicErrorType;
  readonly message: string;
}

/** AnthropicErrorBody is Anthropic's error envelope. */
export interface AnthropicErrorBody {
  readonly type: "error";
  readonly error: AnthropicError;
  readonly request_id: string;
}

/** MAX_RELAYED_MESSAGE_CHARS bounds the message taken from a provider's error answer that is not JSON. */
const MAX_RELAYED_MESSAGE_CHARS = 1_000;

/**
 * anthropicErrorType is the error type Anthropic's API gives a status. 503, which the mesh answers while a service it
 * needs is briefly out of reach or the gateway is stopping, is Anthropic's "try again shortly", overloaded_error, as
 * its own 529; the other 5xx are api_error, and the 4xx Anthropic names no type for are invalid_request_error.
 */
export function anthropicErrorType(status: number): AnthropicErrorType {
  switch (status) {
    case 400:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 503:
    case 529:
      return "overloaded_error";
    default:
      return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

/** anthropicError is a gateway failure as Anthropic's inner error object. */
export function anthropicError(failure: GatewayError): AnthropicError {
  return { type: anthropicErrorType(failure.status), message: failure.message };
}

/** anthropicErrorBody is a gateway failure in Anthropic's envelope, with the request's id. */
export function anthropicErrorBody(failure: GatewayError, requestId: string): AnthropicErrorBody {
  return { type: "error", error: anthropicError(failure), request_id: requestId };
}

/**
 * anthropicRelayedError rewrites a provider's own error answer (status 4xx or 5xx) into Anthropic's envelope: one
 * that is in it already goes as it is; otherwise the message is taken from OpenAI's envelope
 * (`{"error":{"message"}}`, as llama-server and vLLM answer), from `{"error":"..."}` (Ollama), from a bare `message` or
 * `detail`, or from the text itself, and the type from the status.
 */
export function anthropicRelayedError(status: number, body: Uint8Array, requestId: string): Buffer {
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const text = bytes.toString("utf8");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (isAnthropicEnvelope(parsed)) return bytes;
  const message =
    messageOf(parsed) ?? plainText(text) ?? `The provider answered with status ${status} ${STATUS_CODES[status] ?? ""}`.trim();
  const envelope: AnthropicErrorBody = { type: "error", error: { type: anthropicErrorType(status), message }, request_id: requestId };
  return Buffer.from(JSON.stringify(envelope));
}

function isAnthropicEnvelope(value: unknown): boolean {
  if (!isObject(value) || value.type !== "error" || !isObject(value.error)) return false;
  return typeof value.error.type === "string" && typeof value.error.message === "string";
}

function messageOf(value: unknown): string | undefined {
  if (!isObject(value)) return undefined;
  const error = value.error;
  if (isObject(error) && nonEmpty(error.message)) return error.message;
  if (nonEmpty(error)) return error;
  if (nonEmpty(value.message)) return value.message;
  if (nonEmpty(value.detail)) return value.detail;
  return undefined;
}

function plainText(text: string): string | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  return trimmed.length > MAX_RELAYED_MESSAGE_CHARS ? `${trimmed.slice(0, MAX_RELAYED_MESSAGE_CHARS)}…` : trimmed;
}

function nonEmpty(value: unknown): value is string {
  return typeof value === "string" && value !== "";
}
