import { bodyFields } from "./generation-request.js";
import { sendError } from "./http-replies.js";
import type { LlamaError } from "./llama-errors.js";
import { invalidRequest, jsonTypeName, llamaError, serverError } from "./llama-errors.js";
import type { JsonBody } from "./llama-replies.js";
import { llamaPacing, wholeLlamaAnswer } from "./llama-replies.js";
import type { MediaContext } from "./media-replies.js";
import { isError } from "./media-replies.js";
import { selectModel } from "./model-selection.js";
import type { EmbeddingPrompt } from "./simulated-embedding.js";
import { embeddingBase64, embeddingTokenCount, expectedEmbedding } from "./simulated-embedding.js";
import type { ResolvedModel } from "./simulator-options.js";

/** EMBEDDINGS_NOT_SUPPORTED is llama-server's answer on /v1/embeddings when it was not started with --embeddings. */
export const EMBEDDINGS_NOT_SUPPORTED: LlamaError = Object.freeze(
  llamaError(501, "This server does not support embeddings. Start it with `--embeddings`", "not_supported_error"),
);

/**
 * EmbeddingsApi is the shape of an embeddings answer: OpenAI's list on /v1/embeddings, or llama-server's own array of
 * `{index, embedding: [vector]}` on /embeddings (and on /v1/embeddings when the request sends `content`, not `input`).
 */
export type EmbeddingsApi = "openai" | "native";

/**
 * answerEmbeddings answers an embeddings request as llama-server started with --embeddings does, for models of kind
 * "embedding" only: any other model (or a simulator serving none) gets llama-server's 501, checked before the body as
 * llama-server does. Vectors and token counts follow simulated-embedding.ts.
 */
export function answerEmbeddings(context: MediaContext, posted: JsonBody, api: EmbeddingsApi): void {
  const { res, config } = context;
  const name = posted.valid ? bodyFields(posted.value)["model"] : undefined;
  context.note(typeof name === "string" ? name : undefined, false);
  const model = embeddingModel(name, context);
  if (model === undefined) return;
  if (!posted.valid) {
    sendError(res, posted.error);
    return;
  }
  const fields = bodyFields(posted.value);
  let shape = api;
  let input: unknown;
  if ("input" in fields) {
    input = fields["input"];
  } else if ("content" in fields) {
    // llama-server answers `content`, its own field, in its own shape even on the OpenAI path.
    shape = "native";
    input = fields["content"];
  } else {
    sendError(res, invalidRequest('"input" or "content" must be provided'));
    return;
  }
  const format = fields["encoding_format"];
  if (format !== undefined && typeof format !== "string") {
    sendError(res, serverError(`[json.exception.type_error.302] type must be string, but is ${jsonTypeName(format)}`));
    return;
  }
  if (format !== undefined && format !== "base64" && format !== "float") {
    sendError(res, invalidRequest("The format to return the embeddings in. Can be either float or base64"));
    return;
  }
  const prompts = embeddingPrompts(input);
  if (isError(prompts)) {
    sendError(res, prompts);
    return;
  }
  if (prompts.some((prompt) => embeddingTokenCount(prompt) === 0)) {
    sendError(res, invalidRequest("Input content cannot be empty"));
    return;
  }
  const pacing = llamaPacing(fields["sim"], config);
  if (isError(pacing)) {
    sendError(res, pacing);
    return;
  }
  const echoed = typeof name === "string" ? name : model.id;
  const base64 = format === "base64" && shape === "openai";
  context.play(wholeLlamaAnswer(pacing, () => (shape === "openai" ? openAiBody(echoed, prompts, base64) : nativeBody(prompts))));
}

/** embeddingModel selects the embedding model a request names; undefined once the refusal has been answered. */
function embeddingModel(name: unknown, context: MediaContext): ResolvedModel | undefined {
  const selection = selectModel(name, "embedding", context.config);
  if (selection.ok) return selection.model;
  switch (selection.problem) {
    case "wrong-kind":
    case "no-model-of-kind":
      sendError(context.res, EMBEDDINGS_NOT_SUPPORTED);
      return undefined;
    case "unknown":
      sendError(context.res, invalidRequest(`model '${selection.name}' not found`));
      return undefined;
    case "missing":
      sendError(context.res, invalidRequest("model name is missing from the request"));
      return undefined;
  }
}

/**
 * embeddingPrompts splits an input into prompts as llama-server's tokenize_input_prompts does: a string, a list of
 * token ids or a list mixing both is one prompt; any other list is a list of prompts.
 */
function embeddingPrompts(input: unknown): readonly EmbeddingPrompt[] | LlamaError {
  if (typeof input === "string" || isMixed(input) || isTokenList(input)) return [input];
  if (!Array.isArray(input)) {
    return serverError('"prompt" must be a string, an list of tokens, a list of mixed strings & tokens, or a list of prompts');
  }
  const prompts: EmbeddingPrompt[] = [];
  for (const prompt of input as readonly unknown[]) {
    if (typeof prompt === "string" || isMixed(prompt) || isTokenList(prompt)) prompts.push(prompt);
    else return serverError('element of "prompt" must be a string, an list of tokens, or a list of mixed strings & tokens');
  }
  return prompts;
}

/** isTokenList is nlohmann's "array of integers" test, true for an empty list. */
function isTokenList(value: unknown): value is readonly number[] {
  return Array.isArray(value) && (value as readonly unknown[]).every((item) => Number.isInteger(item));
}

/** isMixed is llama-server's test for a list of strings and token ids: it has seen both. */
function isMixed(value: unknown): value is readonly (string | number)[] {
  if (!Array.isArray(value)) return false;
  const items = value as readonly unknown[];
  const mixable = items.every((item) => typeof item === "string" || Number.isInteger(item));
  return mixable && items.some((item) => typeof item === "string") && items.some((item) => Number.isInteger(item));
}

/** openAiBody is /v1/embeddings' answer, keys in llama-server's order (see the embeddings captures). */
function openAiBody(model: string, prompts: readonly EmbeddingPrompt[], base64: boolean): string {
  let tokens = 0;
  const data = prompts.map((prompt, index) => {
    tokens += embeddingTokenCount(prompt);
    const vector = expectedEmbedding(prompt);
    return base64
      ? { embedding: embeddingBase64(vector), index, object: "embedding", encoding_format: "base64" }
      : { embedding: vector, index, object: "embedding" };
  });
  return JSON.stringify({ model, object: "list", usage: { prompt_tokens: tokens, total_tokens: tokens }, data });
}

/** nativeBody is llama-server's own embeddings answer: per prompt its index and its pooled vector, as a one-row matrix. */
function nativeBody(prompts: readonly EmbeddingPrompt[]): string {
  return JSON.stringify(prompts.map((prompt, index) => ({ index, embedding: [expectedEmbedding(prompt)] })));
}
