import { Code, ConnectError } from "@connectrpc/connect";
import { Operation, type InferenceService } from "../../gen/infermesh/v1/inference_pb.js";
import type { Principal } from "../../gen/infermesh/v1/registry_pb.js";
import { bearerCredential } from "../shared/bearer.js";
import type { GrpcImplementation } from "../shared/grpc-service.js";
import type { Dispatcher } from "./dispatcher.js";
import { GatewayError } from "./error-envelope.js";
import { parseJsonObject, upstreamBody, type JsonObject } from "./request-body.js";

/** JSON_OPERATIONS are the operations whose body is the client's JSON request; the others carry form fields. */
const JSON_OPERATIONS: ReadonlySet<Operation> = new Set([Operation.CHAT_COMPLETION, Operation.COMPLETION, Operation.IMAGE_GENERATION, Operation.SPEECH]);

/** InferenceServiceDeps are what the gateway's gRPC face works with. */
export interface InferenceServiceDeps {
  readonly dispatcher: Dispatcher;
  readonly authenticate: (apiKey: string) => Promise<Principal | undefined>;
  readonly requestTimeoutMs: number;
}

/**
 * createInferenceService serves InferenceService.Infer for internal callers: the same API-key auth, routing and
 * errors as the HTTP façade, as gRPC codes, and the provider's parts streamed back unchanged.
 */
export function createInferenceService(deps: InferenceServiceDeps): GrpcImplementation<typeof InferenceService.method> {
  return {
    async *infer(request, { metadata, signal }) {
      const apiKey = bearerCredential(metadata);
      const principal = apiKey ? await deps.authenticate(apiKey).catch(toConnectError) : undefined;
      if (!principal) throw new ConnectError("missing, invalid or revoked API key", Code.Unauthenticated);
      const call = request.call;
      if (!call || call.operation === Operation.UNSPECIFIED) {
        throw new ConnectError("call.operation is required", Code.InvalidArgument);
      }
      if (!call.model) throw new ConnectError("call.model is required", Code.InvalidArgument);
      // As on the HTTP façade, no provider is sent a body it cannot parse: llama-server answers one with a 500, which
      // would fail over and count against a healthy provider.
      let json: JsonObject | undefined;
      if (JSON_OPERATIONS.has(call.operation)) {
        try {
          json = parseJsonObject(call.body);
        } catch (error) {
          toConnectError(error);
        }
      }
      const deadlineMs = call.deadline
        ? Math.min(Number(call.deadline.seconds) * 1000 + call.deadline.nanos / 1e6, Date.now() + deps.requestTimeoutMs)
        : Date.now() + deps.requestTimeoutMs;
      let dispatch;
      try {
        dispatch = deps.dispatcher.dispatch({
          principal,
          operation: call.operation,
          model: call.model,
          stream: call.stream,
          requestId: call.requestId || crypto.randomUUID(),
          deadlineMs,
          media: call.media,
          body: (served) => (served === call.model ? call.body : upstreamBody(call.body, json ?? parseJsonObject(call.body), call.model, served)),
          signal,
        });
      } catch (error) {
        toConnectError(error);
      }
      try {
        for await (const part of dispatch.parts) yield { part };
      } catch (error) {
        toConnectError(error);
      }
    },
  };
}

/** toConnectError rethrows a gateway failure with the gRPC code that means the same. */
function toConnectError(error: unknown): never {
  if (error instanceof ConnectError) throw error;
  if (error instanceof GatewayError) {
    const code =
      error.status === 404 ? Code.NotFound
      : error.status === 400 ? Code.InvalidArgument
      : error.status === 401 ? Code.Unauthenticated
      : error.status === 429 || error.status === 413 ? Code.ResourceExhausted
      : error.status === 501 ? Code.Unimplemented
      : error.status === 504 ? Code.DeadlineExceeded
      : Code.Unavailable;
    throw new ConnectError(error.message, code, undefined, undefined, error);
  }
  throw new ConnectError("internal error", Code.Internal, undefined, undefined, error);
}
