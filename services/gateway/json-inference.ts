import { Operation } from "../../gen/infermesh/v1/inference_pb.js";
import type { KnownOperation } from "../shared/inference-catalog.js";
import { checkInputSize, clampTokens, type Guardrails } from "./guardrails.js";
import { type InferenceRequest, jsonProviderBody } from "./inference-request.js";
import type { JsonBody } from "./request-validation.js";
import { needsUsageInjection, withUsageRequested } from "./usage-injection.js";

/**
 * jsonInference reads a JSON inference request that passed its schema: the guardrails bound its input (413) and
 * clamp its protocol's token limits. A chat or completion stream is made to ask for usage when the client did not, so
 * that every stream's tokens are counted, and that usage chunk is then hidden from the client; the other protocols
 * report usage unasked (embeddings and rerank in the answer, responses and messages in their last events).
 */
export function jsonInference(operation: KnownOperation, body: JsonBody, guardrails: Guardrails): InferenceRequest {
  const json = body.json;
  checkInputSize(operation, json, guardrails);
  const stream = json.stream === true;
  const injectUsage = asksForUsage(operation) && needsUsageInjection(json, stream);
  const clamped = clampTokens(operation, json, guardrails);
  const changed = injectUsage ? withUsageRequested(clamped ?? json) : clamped;
  return {
    operation,
    model: json.model as string,
    stream,
    body: jsonProviderBody(body, changed),
    media: [],
    hideUsageChunks: injectUsage,
  };
}

/** asksForUsage tells whether a protocol's streams report usage only when asked (stream_options.include_usage). */
function asksForUsage(operation: KnownOperation): boolean {
  return operation === Operation.CHAT_COMPLETION || operation === Operation.COMPLETION;
}
