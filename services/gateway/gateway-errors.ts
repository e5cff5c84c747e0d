import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import type { Code } from "@connectrpc/connect";
import type { InferenceError } from "../../gen/infermesh/v1/inference_pb.js";
import { UNSUPPORTED_ENDPOINT } from "../shared/error-kinds.js";
import type { OperationInfo, ProtocolFeature } from "../shared/inference-catalog.js";
import type { NoRouteReason } from "./routing-table.js";
import { httpFailureFor } from "./status-mapping.js";

/** Api is whose API a route belongs to, which decides its error envelope (see anthropic-errors.ts). */
export type Api = OperationInfo["api"];

/** MAX_ECHOED_CHARS bounds how much of a client's input an error message repeats back. */
const MAX_ECHOED_CHARS = 256;

/** OpenAIError is the body of OpenAI's error envelope, `{"error": {...}}`; a few errors add a field of their own. */
export interface OpenAIError {
  readonly message: string;
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;
  /** offline_since is when the caller's own provider of the model went offline (no_provider, providers_offline). */
  readonly offline_since?: string;
}

/** ErrorDetail is what an error may add to its message: the offending parameter, OpenAI's code, the cause. */
export interface ErrorDetail {
  readonly param?: string | undefined;
  readonly code?: string | undefined;
  readonly cause?: unknown;
}

/**
 * GatewayError is a failure the gateway answers with an HTTP status and OpenAI's error envelope. Make one with the
 * constructors below, which say which kind of failure it is; the envelope lives in `detail` so that frameworks that
 * stamp their own `code` on errors passing through cannot change what the client reads.
 */
export class GatewayError extends Error {
  override readonly name = "GatewayError";
  readonly status: number;
  readonly detail: OpenAIError;
  /** retryAfterSeconds, when set, goes out as Retry-After. */
  readonly retryAfterSeconds: number | undefined;

  constructor(status: number, type: string, message: string, detail: ErrorDetail & { retryAfterSeconds?: number } = {}) {
    super(message, { cause: detail.cause });
    this.status = status;
    this.detail = { message, type, param: detail.param ?? null, code: detail.code ?? null };
    this.retryAfterSeconds = detail.retryAfterSeconds;
  }

  /** body is the error as OpenAI's envelope. */
  body(): { error: OpenAIError } {
    return { error: this.detail };
  }
}

/** invalidRequest is a 400: the request's content is wrong, in the named parameter when there is one. */
export function invalidRequest(message: string, detail: ErrorDetail = {}): GatewayError {
  return new GatewayError(400, "invalid_request_error", message, detail);
}

/** tooLarge is a 413 request_too_large: a body, an upload or a guardrail's bound exceeded. */
export function tooLarge(message: string, detail: Omit<ErrorDetail, "code"> = {}): GatewayError {
  return new GatewayError(413, "invalid_request_error", message, { ...detail, code: "request_too_large" });
}

/** refusedHttp is a request refused for how it came over HTTP (its framing, headers, media type): a 4xx. */
export function refusedHttp(status: number, message: string, code?: string, cause?: unknown): GatewayError {
  return new GatewayError(status, "invalid_request_error", message, { code, cause });
}

/** unknownRoute is the 404 for a method and path the gateway does not serve. */
export function unknownRoute(method: string, url: string): GatewayError {
  return new GatewayError(404, "invalid_request_error", `Unknown route: ${method} ${echoed(url.split("?")[0] ?? "")}`, {
    code: "unknown_url",
  });
}

/**
 * invalidApiKey is the 401 every authentication failure gets, in OpenAI's words; on Anthropic's routes the words for
 * a missing key name the x-api-key header that Anthropic's clients send as well.
 */
export function invalidApiKey(presented: boolean, api: Api = "openai"): GatewayError {
  const message = presented
    ? "Incorrect API key provided."
    : api === "anthropic"
      ? "You didn't provide an API key. Provide it as 'x-api-key: YOUR_KEY' or 'Authorization: Bearer YOUR_KEY'."
      : "You didn't provide an API key. Provide it as 'Authorization: Bearer YOUR_KEY'.";
  return new GatewayError(401, "authentication_error", message, { code: "invalid_api_key" });
}

/** sessionExpired is the 401 of a session cookie the registry no longer accepts: signed out, expired, or disabled. */
export function sessionExpired(): GatewayError {
  return new GatewayError(401, "authentication_error", "Your session has ended: sign in again.", { code: "session_expired" });
}

/** csrfRefused is the 403 of a write a session cookie authenticates without the session's CSRF token. */
export function csrfRefused(): GatewayError {
  return new GatewayError(403, "permission_error", "A write authenticated by a session cookie needs the session's X-CSRF-Token header.", {
    code: "csrf_token_invalid",
  });
}

/** permissionDenied is a 403: the key is good, but what it asks for belongs to someone else. */
export function permissionDenied(message: string, detail: ErrorDetail = {}): GatewayError {
  return new GatewayError(403, "permission_error", message, detail);
}

/** notFound is a 404 for a named thing the caller has none of (a provider, a model of theirs). */
export function notFound(message: string, detail: ErrorDetail = {}): GatewayError {
  return new GatewayError(404, "invalid_request_error", message, detail);
}

/** REASON_WORDS say why no provider answers, for people reading the message; the code says it for programs. */
const REASON_WORDS: Readonly<Record<NoRouteReason["code"], string>> = {
  model_not_served: "",
  providers_offline: ": the providers that serve it are offline",
  providers_paused: ": your providers that serve it are paused; resume one to use it",
  providers_draining: ": the providers that serve it are shutting down",
};

/**
 * noProvider is inference.club's 404 for a model no online provider of the caller serves; noun names the kind of
 * model ("speech-to-text model"), and the code says why (see NoRouteReason). A model the caller may not use gets
 * exactly the answer of a model nobody serves.
 */
export function noProvider(model: string, noun = "model", reason: NoRouteReason = { code: "model_not_served" }): GatewayError {
  const error = new GatewayError(
    404,
    "no_provider",
    `No online provider serving ${noun} '${echoed(model)}' for this user${REASON_WORDS[reason.code]}.`,
    {
      param: "model",
      code: reason.code,
    },
  );
  if (reason.code === "providers_offline" && reason.sinceMs !== undefined) {
    return Object.assign(error, { detail: { ...error.detail, offline_since: new Date(reason.sinceMs).toISOString() } });
  }
  return error;
}

/** modelNotFound is OpenAI's 404 for a model GET /v1/models/{model} does not list for the caller. */
export function modelNotFound(model: string): GatewayError {
  return new GatewayError(404, "invalid_request_error", `The model '${echoed(model)}' does not exist or you do not have access to it.`, {
    param: "model",
    code: "model_not_found",
  });
}

/** PROTOCOL_NAMES name the protocol each feature stands for, as an error message reads it. */
const PROTOCOL_NAMES: Readonly<Record<ProtocolFeature, string>> = {
  responses: "the Responses API",
  messages: "the Anthropic Messages API",
  count_tokens: "Anthropic's token counting",
};

/**
 * unsupportedEndpoint is the 400 for a model the caller reaches with the right service type whose providers do not
 * declare the protocol the route needs: the model exists, this endpoint of it does not. Its servers speak chat
 * completions, as every llm server does, and the message says to use them.
 */
export function unsupportedEndpoint(model: string, operation: OperationInfo): GatewayError {
  const protocol = operation.feature === undefined ? "its protocol" : PROTOCOL_NAMES[operation.feature];
  return invalidRequest(
    `Model '${echoed(model)}' is served by no provider whose server speaks ${protocol} ` +
      `(POST ${operation.path}); its servers serve chat completions: use /v1/chat/completions`,
    { param: "model", code: UNSUPPORTED_ENDPOINT },
  );
}

/** rateLimited is a 429 rate_limit_exceeded; code says which limit. */
export function rateLimited(message: string, code: string, retryAfterSeconds?: number): GatewayError {
  return new GatewayError(429, "rate_limit_exceeded", message, {
    code,
    ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }),
  });
}

/** upstreamFailed is a 502 upstream_error: a provider, or the service behind the gateway, failed to answer. */
export function upstreamFailed(message: string, cause?: unknown): GatewayError {
  return new GatewayError(502, "upstream_error", message, { cause });
}

/** unavailable is a 503: a service the gateway needs cannot be reached now; retrying later may work. */
export function unavailable(message: string, cause?: unknown): GatewayError {
  return new GatewayError(503, "service_unavailable", message, { cause });
}

/** internalError is a 500: the gateway itself failed. The message never carries the cause's internals. */
export function internalError(message: string, cause?: unknown): GatewayError {
  return new GatewayError(500, "internal_error", message, { cause });
}

/** fromGrpcStatus is the HTTP answer to a gRPC failure, by the one mapping of status-mapping.ts. */
export function fromGrpcStatus(code: Code, message: string, cause?: unknown): GatewayError {
  const { status, type } = httpFailureFor(code);
  return new GatewayError(status, type, message, { cause });
}

/** fromErrorPart is the HTTP answer to an answer's error part: the status and words the agent gave it. */
export function fromErrorPart(error: InferenceError): GatewayError {
  return new GatewayError(error.httpStatus || 502, error.type || "upstream_error", error.message, {
    ...(error.code ? { code: error.code } : {}),
    ...(error.param ? { param: error.param } : {}),
  });
}

/** echoed is a client's input as an error message may repeat it: cut short, so a 10 MB name is not sent back whole. */
export function echoed(input: string): string {
  return input.length > MAX_ECHOED_CHARS ? `${input.slice(0, MAX_ECHOED_CHARS)}…` : input;
}

/**
 * clientErrorFailure is the answer to a request Node's HTTP parser refused before any route saw it: 431 for headers
 * (or a URL) over the size limit, 408 for a request that did not arrive in time, 400 for anything that is not HTTP/1.1.
 */
export function clientErrorFailure(error: Error & { code?: string; reason?: unknown }): GatewayError {
  switch (error.code) {
    case "HPE_HEADER_OVERFLOW":
      return refusedHttp(431, "The request's headers and URL are larger than the gateway accepts.", "request_header_fields_too_large");
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return refusedHttp(408, "The request did not arrive in time.", "request_timeout");
    default:
      return refusedHttp(
        400,
        typeof error.reason === "string" ? `The request is not valid HTTP/1.1: ${error.reason}.` : "The request is not valid HTTP/1.1.",
        "malformed_http",
      );
  }
}

/**
 * answerClientError is the HTTP server's clientErrorHandler: it writes clientErrorFailure as OpenAI's envelope on the
 * raw socket, as Fastify's default handler writes its own body, then closes the connection. A reset connection, or one
 * already closed, gets nothing.
 */
export function answerClientError(error: Error & { code?: string; reason?: unknown }, socket: Duplex): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const failure = clientErrorFailure(error);
  const body = JSON.stringify(failure.body());
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${failure.status} ${STATUS_CODES[failure.status] ?? ""}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}
