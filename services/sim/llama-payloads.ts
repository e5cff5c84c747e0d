import type { FinishReason } from "./generation-request.js";
import type { ResolvedModel } from "./simulator-options.js";

// The builders below keep llama-server's keys in its order (as captured from a real server), because golden tests
// and hand-written parsers downstream compare text, not just parsed values.

/** Usage is llama-server's `usage` object. */
export interface Usage {
  readonly completion_tokens: number;
  readonly prompt_tokens: number;
  readonly total_tokens: number;
  readonly prompt_tokens_details: { readonly cached_tokens: number };
}

/** Timings is llama-server's `timings` object (prompt processing and generation speed). */
export interface Timings {
  readonly cache_n: number;
  readonly prompt_n: number;
  readonly prompt_ms: number;
  readonly prompt_per_token_ms: number;
  readonly prompt_per_second: number;
  readonly predicted_n: number;
  readonly predicted_ms: number;
  readonly predicted_per_token_ms: number;
  readonly predicted_per_second: number;
}

/** CompletionIdentity is what every body and chunk of one answer repeats. */
export interface CompletionIdentity {
  /** id is "chatcmpl-" and 32 alphanumerics, for completions too, as llama-server does. */
  readonly id: string;
  /** created is the answer's Unix time in seconds. */
  readonly created: number;
  readonly model: string;
  readonly systemFingerprint: string;
}

/** usageOf builds a usage object; the simulator has no prompt cache, so cached_tokens is 0. */
export function usageOf(promptTokens: number, completionTokens: number): Usage {
  return {
    completion_tokens: completionTokens,
    prompt_tokens: promptTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: 0 },
  };
}

/** timingsOf builds a timings object from measured durations. */
export function timingsOf(promptTokens: number, promptMs: number, predictedTokens: number, predictedMs: number): Timings {
  return {
    cache_n: 0,
    prompt_n: promptTokens,
    prompt_ms: roundMs(promptMs),
    prompt_per_token_ms: promptTokens > 0 ? promptMs / promptTokens : 0,
    prompt_per_second: promptMs > 0 ? (1000 * promptTokens) / promptMs : 0,
    predicted_n: predictedTokens,
    predicted_ms: roundMs(predictedMs),
    predicted_per_token_ms: predictedTokens > 0 ? predictedMs / predictedTokens : 0,
    predicted_per_second: predictedMs > 0 ? (1000 * predictedTokens) / predictedMs : 0,
  };
}

function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** chatCompletionBody is a non-streamed chat answer, one choice per text. */
export function chatCompletionBody(
  identity: CompletionIdentity,
  texts: readonly string[],
  finishReason: FinishReason,
  usage: Usage,
  timings: Timings,
): string {
  return JSON.stringify({
    choices: texts.map((content, index) => ({
      finish_reason: finishReason,
      index,
      message: { role: "assistant", content },
    })),
    created: identity.created,
    model: identity.model,
    system_fingerprint: identity.systemFingerprint,
    object: "chat.completion",
    usage,
    id: identity.id,
    timings,
  });
}

/** textCompletionBody is a non-streamed /v1/completions answer, one choice per text. */
export function textCompletionBody(
  identity: CompletionIdentity,
  texts: readonly string[],
  finishReason: FinishReason,
  usage: Usage,
  timings: Timings,
): string {
  return JSON.stringify({
    choices: texts.map((text, index) => ({ text, index, logprobs: null, finish_reason: finishReason })),
    created: identity.created,
    model: identity.model,
    system_fingerprint: identity.systemFingerprint,
    object: "text_completion",
    usage,
    id: identity.id,
    timings,
  });
}

/**
 * modelsListBody is /v1/models: an Ollama-style `models` list and the OpenAI `data` list, as llama-server sends. A
 * simulator that serves models of several kinds, which no llama-server does, says each model's kind in a last
 * `service_type` field of its `data` entry, in the mesh's words (as the gateway's own /v1/models does), so that one
 * simulator can stand for a multi-type server such as LocalAI.
 */
export function modelsListBody(models: readonly ResolvedModel[], createdSeconds: number): string {
  const mixed = models.some((model) => model.kind !== models[0]?.kind);
  return JSON.stringify({
    models: models.map((model) => ({
      name: model.id,
      model: model.id,
      modified_at: "",
      size: "",
      digest: "",
      type: "model",
      description: "",
      tags: [""],
      capabilities: ["completion"],
      parameters: "",
      details: {
        parent_model: "",
        format: "gguf",
        family: "",
        families: [""],
        parameter_size: "",
        quantization_level: "",
      },
    })),
    object: "list",
    data: models.map((model) => ({
      id: model.id,
      aliases: model.aliases,
      tags: [],
      object: "model",
      created: createdSeconds,
      owned_by: model.ownedBy,
      meta: {
        // The captured server reports vocab_type as a boolean; copied as is.
        vocab_type: true,
        n_vocab: 32000,
        n_ctx: model.contextLength,
        n_ctx_train: model.contextLength,
        n_embd: 64,
        n_params: 4178240,
        size: 16712960,
        ftype: "all F32",
      },
      ...(mixed ? { service_type: model.kind } : {}),
    })),
  });
}

/** propsBody is a minimal /props: the fields clients read (context size, slots, model name, build). */
export function propsBody(model: ResolvedModel, systemFingerprint: string, totalSlots: number): string {
  return JSON.stringify({
    default_generation_settings: {
      params: { n_predict: -1, max_tokens: -1, temperature: 0.8, top_k: 40, top_p: 0.95, stream: false },
      n_ctx: model.contextLength,
    },
    total_slots: totalSlots,
    model_alias: model.id,
    model_path: model.id,
    modalities: { vision: false, video: false, audio: false },
    build_info: systemFingerprint,
    is_sleeping: false,
  });
}

/** HEALTH_OK_BODY is /health's answer once the model is loaded. */
export const HEALTH_OK_BODY = '{"status":"ok"}';
