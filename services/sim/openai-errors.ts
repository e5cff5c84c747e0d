import type { LlamaError } from "./llama-errors.js";
import { errorTypeForStatus } from "./llama-errors.js";
import type { ModelSelection } from "./model-selection.js";
import type { ModelKind } from "./simulator-options.js";

// The media endpoints are not llama-server's (it serves none of them): their errors take OpenAI's own shape,
// {"error":{"message","type","param","code"}}, which the openai SDK and the mesh parse. LlamaError is reused as the
// carrier because it is only a status and the exact body.

/** openAiError builds an error answer in OpenAI's shape. */
export function openAiError(
  status: number,
  message: string,
  param: string | null = null,
  code: string | null = null,
  type: string = errorTypeForStatus(status),
): LlamaError {
  return { status, body: JSON.stringify({ error: { message, type, param, code } }) };
}

/** missingParameter answers a request without a required field. */
export function missingParameter(param: string): LlamaError {
  return openAiError(400, `Missing required parameter: '${param}'.`, param, "missing_required_parameter", "invalid_request_error");
}

/** invalidValue answers a field with a wrong value; message says what was expected. */
export function invalidValue(param: string, message: string): LlamaError {
  return openAiError(400, message, param, "invalid_value", "invalid_request_error");
}

/** INVALID_JSON_BODY answers a JSON endpoint whose body does not parse, in OpenAI's words. */
export const INVALID_JSON_BODY: LlamaError = openAiError(
  400,
  "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.",
  null,
  null,
  "invalid_request_error",
);

/** uploadTooLarge answers a body larger than the simulator's maxUploadBytes, in OpenAI's words. */
export function uploadTooLarge(maxBytes: number, readBytes: number): LlamaError {
  return openAiError(
    413,
    `Maximum content size limit (${maxBytes}) exceeded (${readBytes} bytes read)`,
    null,
    null,
    "invalid_request_error",
  );
}

/** injectedMediaFailure is a "status" failure of a media request (see injectedFailureError for the messages). */
export function injectedMediaFailure(status: number): LlamaError {
  return openAiError(status, status === 503 ? "Loading model" : `simulated failure (HTTP ${status})`);
}

/** KIND_NAMES names what each model kind is for, for the wrong-kind message. */
const KIND_NAMES: Readonly<Record<ModelKind, string>> = Object.freeze({
  llm: "a text generation (llm)",
  stt: "a speech-to-text (stt)",
  image: "an image generation (image)",
  tts: "a text-to-speech (tts)",
  embedding: "an embedding (embedding)",
  rerank: "a rerank (rerank)",
});

/**
 * modelSelectionError answers a request whose model does not fit the endpoint at path: a model of another kind, a
 * kind the simulator serves no model of, or (with strictModels) a missing or unknown name.
 */
export function modelSelectionError(selection: Exclude<ModelSelection, { ok: true }>, path: string, kind: ModelKind): LlamaError {
  switch (selection.problem) {
    case "wrong-kind":
      return openAiError(
        400,
        `The model '${selection.name}' is ${KIND_NAMES[selection.model.kind]} model and cannot be used with ${path}, which needs ${KIND_NAMES[kind]} model.`,
        "model",
        "model_not_supported",
        "invalid_request_error",
      );
    case "no-model-of-kind":
      return openAiError(
        400,
        `No ${kind} model is served here, which ${path} needs.`,
        "model",
        "model_not_supported",
        "invalid_request_error",
      );
    case "missing":
      return missingParameter("model");
    case "unknown":
      return openAiError(
        404,
        `The model '${selection.name}' does not exist or you do not have access to it.`,
        "model",
        "model_not_found",
        "invalid_request_error",
      );
  }
}
