import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { Code } from "@connectrpc/connect";

/** MAX_ECHOED_CHARS bounds how much of a client's input an error message repeats back. */
const MAX_ECHOED_CHARS = 256;

/** OpenAIError is the body of OpenAI's error envelope, `{"error": {...}}`. */
export interface OpenAIError {
  readonly message: string;
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;
}

/** GatewayError is a failure the gateway answers with an HTTP status and OpenAI's error envelope. */
export class GatewayError extends Error {
  override readonly name = "GatewayError";
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;

  constructor(status: number, type: string, message: string, options: { param?: string; code?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.status = status;
    this.type = type;
    this.param = options.param ?? null;
    this.code = options.code ?? null;
  }

  /** body is the error as OpenAI's envelope. */
  body(): { error: OpenAIError } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** invalidRequest is a 400 about the request's content, naming the offending parameter. */
export function invalidRequest(message: string, param?: string, code?: string): GatewayError {
  return new GatewayError(400, "invalid_request_error", message, {
    ...(param === undefined ? {} : { param }),
    ...(code === undefined ? {} : { code }),
  });
}

/** noProvider is the seed service's 404 for a model no online provider of the caller serves. */
export function noProvider(model: string, kind = ""): GatewayError {
  const what = kind ? `${kind} model` : "model";
  return new GatewayError(404, "no_provider", `No online provider serving ${what} '${echoed(model)}' for this user.`, {
    param: "model",
    code: "model_not_found",
  });
}

/** invalidApiKey is the 401 every authentication failure gets, OpenAI's shape. */
export function invalidApiKey(presented: boolean): GatewayError {
  const message = presented
    ? "Incorrect API key provided."
    : "You didn't provide an API key. Provide it as 'Authorization: Bearer YOUR_KEY'.";
  return new GatewayError(401, "authentication_error", message, { code: "invalid_api_key" });
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
      return new GatewayError(431, "invalid_request_error", "The request's headers and URL are larger than the gateway accepts.", {
        code: "request_header_fields_too_large",
      });
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return new GatewayError(408, "invalid_request_error", "The request did not arrive in time.", { code: "request_timeout" });
    default:
      return new GatewayError(
        400,
        "invalid_request_error",
        typeof error.reason === "string" ? `The request is not valid HTTP/1.1: ${error.reason}.` : "The request is not valid HTTP/1.1.",
        { code: "malformed_http" },
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

/** HttpFailure is how a gRPC status surfaces on the HTTP façade. */
export interface HttpFailure {
  readonly status: number;
  readonly type: string;
}

/**
 * httpFailureFor maps a gRPC status from an agent to the HTTP status and OpenAI error type the client gets. The
 * switch is exhaustive on purpose: a new code fails to compile until it is mapped.
 */
export function httpFailureFor(code: Code): HttpFailure {
  switch (code) {
    case Code.InvalidArgument:
    case Code.OutOfRange:
    case Code.FailedPrecondition:
      return { status: 400, type: "invalid_request_error" };
    case Code.Unauthenticated:
    case Code.PermissionDenied:
      // The gateway's own mesh credential was refused by an agent: the client is not at fault.
      return { status: 502, type: "upstream_error" };
    case Code.NotFound:
      return { status: 404, type: "no_provider" };
    case Code.ResourceExhausted:
      return { status: 429, type: "rate_limit_exceeded" };
    case Code.DeadlineExceeded:
      return { status: 504, type: "timeout" };
    case Code.Canceled:
      return { status: 499, type: "cancelled" };
    case Code.Unimplemented:
      return { status: 501, type: "not_implemented" };
    case Code.Unavailable:
    case Code.Aborted:
    case Code.AlreadyExists:
    case Code.DataLoss:
    case Code.Internal:
    case Code.Unknown:
      return { status: 502, type: "upstream_error" };
  }
}

/** gatewayErrorFromCode wraps a gRPC failure as a GatewayError with the mapped status. */
export function gatewayErrorFromCode(code: Code, message: string, cause?: unknown): GatewayError {
  const { status, type } = httpFailureFor(code);
  return new GatewayError(status, type, message, { cause });
}
