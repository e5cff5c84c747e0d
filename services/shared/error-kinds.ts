import { ErrorKind } from "../../gen/infermesh/v1/inference_pb.js";

/** ErrorKindInfo is what an answer's error kind means on the OpenAI façade and for the provider's health. */
export interface ErrorKindInfo {
  /** type is OpenAI's error type the client gets. */
  readonly type: string;
  /** httpStatus is the status the gateway answers with while no byte has gone to the client. */
  readonly httpStatus: number;
  /** failover tells whether another provider may be tried when the error comes before the answer began. */
  readonly failover: boolean;
}

/**
 * ERROR_KINDS are the error kinds of InferenceError, the one table agent and gateway agree on: the agent fills an
 * error part's type and status from it, the gateway decides failover and the circuit breaker by it. Every kind counts
 * against the provider's health: each says its model server, or the agent itself, failed the call.
 */
export const ERROR_KINDS: Readonly<Record<ErrorKind, ErrorKindInfo>> = Object.freeze({
  // Agents that predate kinds sent only upstream errors as parts.
  [ErrorKind.UNSPECIFIED]: { type: "upstream_error", httpStatus: 502, failover: false },
  [ErrorKind.UPSTREAM]: { type: "upstream_error", httpStatus: 502, failover: true },
  [ErrorKind.TIMEOUT]: { type: "timeout", httpStatus: 504, failover: false },
  [ErrorKind.SHUTDOWN]: { type: "upstream_error", httpStatus: 502, failover: true },
});

/** errorKindInfo describes a kind, reading a number from a newer contract as UNSPECIFIED. */
export function errorKindInfo(kind: ErrorKind): ErrorKindInfo {
  return ERROR_KINDS[kind] ?? ERROR_KINDS[ErrorKind.UNSPECIFIED];
}

/**
 * UNSUPPORTED_ENDPOINT is the code of the 400 a client gets for a model that cannot serve the route it called: from
 * the gateway when none of its providers declares the protocol, from an agent when its server lacks the route.
 */
export const UNSUPPORTED_ENDPOINT = "unsupported_endpoint";
