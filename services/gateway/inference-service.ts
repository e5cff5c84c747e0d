import { randomUUID } from "node:crypto";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { InferenceCall, InferenceService } from "../../gen/infermesh/v1/inference_pb.js";
import type { Principal } from "../../gen/infermesh/v1/registry_pb.js";
import { bearerCredential } from "../shared/bearer.js";
import type { Clock } from "../shared/clock.js";
import { formFieldsOf } from "../shared/form-fields.js";
import type { GrpcImplementation } from "../shared/grpc/server.js";
import { operationInfo, operationLabel } from "../shared/inference-catalog.js";
import type { Dispatch, Dispatcher } from "./dispatcher.js";
import { fromErrorPart, GatewayError } from "./gateway-errors.js";
import { secondsSince } from "./gateway-metrics.js";
import type { InferenceRequest } from "./inference-request.js";
import { parseJsonBody } from "./request-validation.js";
import { grpcCodeFor, httpFailureFor } from "./status-mapping.js";
import { AnswerTally, type UsageCapture } from "./usage-capture.js";

/** InferenceServiceDeps are what the gateway's gRPC face works with. */
export interface InferenceServiceDeps {
  readonly dispatcher: Dispatcher;
  readonly authenticate: (apiKey: string) => Promise<Principal | undefined>;
  readonly clock: Clock;
  readonly requestTimeoutMs: number;
  /** usage, when given, records each authenticated call, as the HTTP façade records its requests. */
  readonly usage?: UsageCapture | undefined;
}

/**
 * createInferenceService serves InferenceService.Infer for internal callers: the same API-key auth, routing and
 * errors as the HTTP façade, as gRPC codes, and the provider's parts streamed back unchanged. A call is read whole
 * before it is routed, so that a malformed one is INVALID_ARGUMENT and never reaches, or counts against, a provider.
 * Each authenticated call gets a usage record whose status is the HTTP status its outcome maps to: the head's, an
 * error's, 499 when the caller cancelled.
 */
export function createInferenceService(deps: InferenceServiceDeps): GrpcImplementation<typeof InferenceService.method> {
  return {
    async *infer(request, { metadata, signal }) {
      const receivedAtNs = process.hrtime.bigint();
      const apiKey = bearerCredential(metadata);
      const principal = apiKey ? await deps.authenticate(apiKey).catch(toConnectError) : undefined;
      if (!principal) throw new ConnectError("missing, invalid or revoked API key", Code.Unauthenticated);
      const { call } = request;
      const tally = new AnswerTally(call?.model ?? "");
      let dispatch: Dispatch | undefined;
      let status = OK;
      try {
        const inference = readCall(call);
        const now = deps.clock.now();
        const deadlineMs = Math.min(call?.deadline ? timestampMs(call.deadline) : Number.POSITIVE_INFINITY, now + deps.requestTimeoutMs);
        // A deadline that passed before the call arrived is the caller's to fix, not a provider's failure.
        if (deadlineMs <= now) throw new ConnectError("call.deadline has passed", Code.DeadlineExceeded);
        dispatch = deps.dispatcher.dispatch({
          ...inference,
          principal,
          requestId: call?.requestId || randomUUID(),
          deadlineMs,
          signal,
        });
        for await (const part of dispatch.parts) {
          const p = part.part;
          if (p.case === "head") status = p.value.status || OK;
          else if (p.case === "error") status = fromErrorPart(p.value).status;
          else if (p.case === "trailer") tally.usage = p.value.usage;
          else if (tally.firstByteSeconds === 0) tally.firstByteSeconds = secondsSince(receivedAtNs);
          yield { part };
        }
      } catch (error) {
        status = signal.aborted ? CLIENT_CLOSED_REQUEST : httpStatusOf(error);
        toConnectError(error);
      } finally {
        if (deps.usage) {
          const seconds = secondsSince(receivedAtNs);
          const arrivalMs = deps.clock.now() - seconds * 1000;
          deps.usage.record(principal, dispatch?.answeredBy, operationLabel(call?.operation), status, arrivalMs, seconds, tally);
        }
      }
    },
  };
}

/** OK is the status of a call whose head gave none. */
const OK = 200;
/** CLIENT_CLOSED_REQUEST is the status of a call its caller cancelled, as httpFailureFor maps CANCELLED. */
const CLIENT_CLOSED_REQUEST = 499;

/**
 * readCall reads an internal caller's call into an InferenceRequest, or throws INVALID_ARGUMENT: a known operation,
 * a model, and a body that is a JSON object (the client's request, or a form's text fields as strings). As on the
 * HTTP façade no provider is sent a body it cannot parse: llama-server answers one with a 500, which would fail over
 * and count against a healthy provider.
 */
export function readCall(call: InferenceCall | undefined): InferenceRequest {
  const operation = operationInfo(call?.operation);
  if (!call || !operation) throw new ConnectError("call.operation must be a known operation", Code.InvalidArgument);
  if (!call.model) throw new ConnectError("call.model is required", Code.InvalidArgument);
  let fields: Record<string, unknown>;
  try {
    fields = parseJsonBody(call.body, false).json;
  } catch (error) {
    throw new ConnectError(`call.body: ${(error as Error).message}`, Code.InvalidArgument, undefined, undefined, error);
  }
  if (fields === null || typeof fields !== "object" || Array.isArray(fields)) {
    throw new ConnectError("call.body must be a JSON object", Code.InvalidArgument);
  }
  // The agent reads a form's fields by the same rules; a call that breaks them stops here, before any provider.
  if (operation.body === "form") {
    try {
      formFieldsOf(fields);
    } catch (error) {
      throw new ConnectError(`call.body: ${(error as ConnectError).rawMessage}`, Code.InvalidArgument, undefined, undefined, error);
    }
  }
  return {
    operation: operation.operation,
    model: call.model,
    stream: call.stream,
    body: { bytes: call.body, fields },
    media: call.media,
    hideUsageChunks: false,
  };
}

/** httpStatusOf is the HTTP status the HTTP façade would answer a failure with. */
function httpStatusOf(error: unknown): number {
  if (error instanceof GatewayError) return error.status;
  return httpFailureFor(error instanceof ConnectError ? error.code : Code.Internal).status;
}

/** toConnectError rethrows a gateway failure with the gRPC code that means the same. */
function toConnectError(error: unknown): never {
  if (error instanceof ConnectError) throw error;
  if (error instanceof GatewayError) throw new ConnectError(error.message, grpcCodeFor(error.status), undefined, undefined, error);
  throw new ConnectError("internal error", Code.Internal, undefined, undefined, error);
}
