import type { MediaFile } from "../../gen/infermesh/v1/inference_pb.js";
import type { KnownOperation } from "../shared/inference-catalog.js";
import type { JsonBody, JsonObject } from "./request-validation.js";

/**
 * ProviderBody is what a provider is sent as the call's body: the bytes, and the object they encode, from which the
 * body is written again when the provider serves the model under a name that differs in case from the client's.
 */
export interface ProviderBody {
  readonly bytes: Uint8Array;
  readonly fields: JsonObject;
}

/**
 * InferenceRequest is one inference request read and validated at the edge it came in by, as plain data: what to
 * route on, what to send, and how to answer. Nothing in it can fail later; whatever is wrong with a request has been
 * answered before it reaches a provider, so a client's mistake never counts against one.
 */
export interface InferenceRequest {
  readonly operation: KnownOperation;
  /** model is the model as the client named it. */
  readonly model: string;
  readonly stream: boolean;
  readonly body: ProviderBody;
  readonly media: readonly MediaFile[];
  /** hideUsageChunks says the gateway asked for a stream's usage on the client's behalf: the client must not see it. */
  readonly hideUsageChunks: boolean;
}

/** jsonProviderBody is a JSON request's body for the provider: the client's bytes, or the gateway's changed object. */
export function jsonProviderBody(body: JsonBody, changed?: JsonObject): ProviderBody {
  return changed === undefined ? { bytes: body.bytes, fields: body.json } : { bytes: encode(changed), fields: changed };
}

/** formProviderBody is a multipart request's body for the provider: its text fields as a JSON object. */
export function formProviderBody(fields: JsonObject): ProviderBody {
  return { bytes: encode(fields), fields };
}

/**
 * bodyForModel is the body for a provider that serves the model as servedModel: the bytes as they are when the name
 * is the client's, else the object with the provider's exact name, since model ids match case-insensitively.
 */
export function bodyForModel(request: Pick<InferenceRequest, "model" | "body">, servedModel: string): Uint8Array {
  return servedModel === request.model ? request.body.bytes : encode({ ...request.body.fields, model: servedModel });
}

function encode(value: JsonObject): Uint8Array {
  return Buffer.from(JSON.stringify(value));
}
