import { Code, ConnectError } from "@connectrpc/connect";
import type { FastifyReply, FastifyRequest } from "fastify";
import { GatewayError, internalError, invalidRequest, notFound, unavailable } from "./gateway-errors.js";

/**
 * fromControlPlane maps a failed registry call made for a member (their keys, usage, providers, account) to the
 * answer the member gets: their own input's faults as 4xx with the registry's words, the registry's absence as 503.
 */
export function fromControlPlane(error: unknown): GatewayError {
  if (error instanceof GatewayError) return error;
  if (!(error instanceof ConnectError)) return internalError("The gateway failed to handle the request.", error);
  switch (error.code) {
    case Code.InvalidArgument:
      return invalidRequest(error.rawMessage, { cause: error });
    case Code.NotFound:
      return notFound(error.rawMessage, { code: "not_found", cause: error });
    case Code.AlreadyExists:
      return new GatewayError(409, "invalid_request_error", error.rawMessage, { code: "already_exists", cause: error });
    case Code.FailedPrecondition:
    case Code.PermissionDenied:
      return new GatewayError(403, "permission_error", error.rawMessage, { cause: error });
    case Code.Unavailable:
    case Code.DeadlineExceeded:
    case Code.Canceled:
      return unavailable("The registry cannot be reached; try again shortly.", error);
    default:
      return internalError("The registry failed to answer.", error);
  }
}

/** controlPlaneRoute wraps a members' route handler so that a failed registry call answers as fromControlPlane says. */
export function controlPlaneRoute<R extends FastifyRequest>(
  handler: (request: R, reply: FastifyReply) => Promise<unknown>,
): (request: R, reply: FastifyReply) => Promise<unknown> {
  return async (request, reply) => {
    try {
      return await handler(request, reply);
    } catch (error) {
      throw fromControlPlane(error);
    }
  };
}
