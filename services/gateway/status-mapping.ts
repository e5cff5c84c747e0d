import { Code } from "@connectrpc/connect";

/** HttpFailure is how a gRPC status surfaces on the HTTP façade: a status and OpenAI's error type. */
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

/**
 * grpcCodeFor maps an HTTP status the gateway answers with to the gRPC code its gRPC face answers with instead, the
 * other direction of httpFailureFor: every status httpFailureFor yields comes back to a code that yields it again.
 * Statuses only the HTTP face produces map to the code that means the same to a gRPC caller.
 */
export function grpcCodeFor(status: number): Code {
  switch (status) {
    case 400:
      return Code.InvalidArgument;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 404:
      return Code.NotFound;
    case 413:
    case 429:
      return Code.ResourceExhausted;
    case 499:
      return Code.Canceled;
    case 500:
      return Code.Internal;
    case 501:
      return Code.Unimplemented;
    case 504:
      return Code.DeadlineExceeded;
    default:
      return status >= 400 && status < 500 ? Code.FailedPrecondition : Code.Unavailable;
  }
}
