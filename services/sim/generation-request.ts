import { anthropicMessages } from "./anthropic-input.js";
import type { LlamaError } from "./llama-errors.js";
import { contextExceeded, fieldTypeError, invalidRequest, serverError } from "./llama-errors.js";
import { selectModel } from "./model-selection.js";
import { modelSelectionError } from "./openai-errors.js";
import { responsesMessages } from "./responses-input.js";
import { decideFailure, parseSimOverrides } from "./sim-overrides.js";
import type { ChatMessageLike } from "./simulated-text.js";
import { hashText, promptTokenCount, seedText } from "./simulated-text.js";
import type { ModelKind, ResolvedFailure, ResolvedModel, SimulatorConfig } from "./simulator-options.js";
import { MAX_CHOICES } from "./simulator-options.js";

/**
 * GenerationKind tells the generation endpoints apart: /v1/chat/completions, /v1/completions, OpenAI's /v1/responses
 * and Anthropic's /v1/messages. llama-server turns the last two into a chat before generating, and so does the
 * simulator: they differ only in how the request is read and how the answer is framed (see AnswerFormat).
 */
export type GenerationKind = "chat" | "completion" | "response" | "message";

/** GENERATION_PATHS are each generation endpoint's canonical path, named in errors. */
export const GENERATION_PATHS: Readonly<Record<GenerationKind, string>> = Object.freeze({
  chat: "/v1/chat/completions",
  completion: "/v1/completions",
  response: "/v1/responses",
  message: "/v1/messages",
});

/**
 * ANTHROPIC_DEFAULT_MAX_TOKENS is the limit llama-server sets on a /v1/messages request without max_tokens (which
 * Anthropic's own API requires); the simulated model usually ends by itself before it, as the captured one did.
 */
export const ANTHROPIC_DEFAULT_MAX_TOKENS = 4096;

/** FinishReason is why a choice ended: its token budget ("length") or its natural end ("stop"). */
export type FinishReason = "length" | "stop";

/**
 * GenerationRequest is everything a generation needs, extracted from the request body so that the body itself is
 * not retained while a (possibly very long) stream runs.
 */
export interface GenerationRequest {
  readonly kind: GenerationKind;
  readonly model: ResolvedModel;
  /** seed is the hash of the text the reply is a function of (see simulated-text.ts). */
  readonly seed: number;
  readonly promptTokens: number;
  /** tokens is the number of tokens each choice produces. */
  readonly tokens: number;
  readonly finishReason: FinishReason;
  readonly choices: number;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly tokensPerSecond: number;
  readonly timeToFirstTokenMs: number;
  readonly failure: ResolvedFailure | undefined;
}

/** ParsedGeneration is a validated request, or the exact error llama-server would answer. */
export type ParsedGeneration =
  | { readonly ok: true; readonly request: GenerationRequest }
  | { readonly ok: false; readonly error: LlamaError };

/** ParsedPrompt is what a generation request asks about: the text its reply is seeded by, and its size. */
export type ParsedPrompt =
  | { readonly ok: true; readonly seed: string; readonly promptTokens: number }
  | { readonly ok: false; readonly error: LlamaError };

/** SelectedModel is the model a generation request gets, or the error it is answered. */
export type SelectedModel = { readonly ok: true; readonly model: ResolvedModel } | { readonly ok: false; readonly error: LlamaError };

type Fields = Readonly<Record<string, unknown>>;

/**
 * parseGenerationRequest validates a parsed body in llama-server's order (messages, then field types, then context
 * size) and extracts a GenerationRequest.
 */
export function parseGenerationRequest(kind: GenerationKind, body: unknown, config: SimulatorConfig): ParsedGeneration {
  const fields = bodyFields(body);
  const selection = selectGenerationModel(fields["model"], kind, config);
  if (!selection.ok) return selection;
  const model = selection.model;
  const prompt = parsePrompt(kind, fields);
  if (!prompt.ok) return prompt;
  const { promptTokens } = prompt;

  // What llama-server reads the limits from: the body itself, or the chat it converted the request into.
  const limits = limitFields(kind, fields);
  for (const field of ["n_predict", "max_completion_tokens", "max_tokens", "n"]) {
    const value = limits[field];
    if (value !== undefined && value !== null && typeof value !== "number") return fail(fieldTypeError(field, "number", value));
  }
  const choices = numberField(limits, "n") ?? 1;
  if (!Number.isInteger(choices) || choices < 1 || choices > MAX_CHOICES) {
    return fail(invalidRequest(`n must be an integer between 1 and ${MAX_CHOICES}`));
  }

  if (promptTokens >= model.contextLength) return fail(contextExceeded(promptTokens, model.contextLength));

  // llama-server lets n_predict override max_tokens; max_completion_tokens is OpenAI's newer name for max_tokens.
  const requested = numberField(limits, "n_predict") ?? numberField(limits, "max_completion_tokens") ?? numberField(limits, "max_tokens");
  const unlimited = requested === undefined || requested < 0;
  let wanted = unlimited ? config.completionTokens : Math.floor(requested);
  let ownEnd = unlimited;
  if (kind === "message" && requested === undefined && wanted > ANTHROPIC_DEFAULT_MAX_TOKENS) {
    wanted = ANTHROPIC_DEFAULT_MAX_TOKENS;
    ownEnd = false;
  }
  // llama-server stops a slot at the end of its context, with finish_reason "length".
  const room = model.contextLength - promptTokens;
  const tokens = Math.min(wanted, room);
  const finishReason: FinishReason = ownEnd && tokens === wanted ? "stop" : "length";

  const overrides = parseSimOverrides(fields["sim"]);
  if (!overrides.ok) return fail(invalidRequest(overrides.message));
  const sim = overrides.overrides;

  const streamOptions = fields["stream_options"];
  const includeUsage =
    kind === "chat" && typeof streamOptions === "object" && streamOptions !== null && (streamOptions as Fields)["include_usage"] === true;

  return {
    ok: true,
    request: {
      kind,
      model,
      seed: hashText(prompt.seed),
      promptTokens,
      tokens,
      finishReason,
      choices,
      // llama-server reads `stream` with a default, so anything but true means a single answer.
      stream: fields["stream"] === true,
      includeUsage,
      tokensPerSecond: sim.tokens_per_second ?? config.tokensPerSecond,
      timeToFirstTokenMs: sim.ttft_ms ?? config.timeToFirstTokenMs,
      failure: decideFailure(sim, config),
    },
  };
}

/**
 * bodyFields reads a parsed body as an object; nlohmann's contains() is false on a non-object, so llama-server treats
 * such a body as empty.
 */
export function bodyFields(body: unknown): Fields {
  return typeof body === "object" && body !== null && !Array.isArray(body) ? (body as Fields) : {};
}

/**
 * generationModelKind is the kind of model that generates: "llm", or "embedding" when the simulator serves no llm
 * but embedding models, since a llama-server started with --embeddings still answers chat with its one model.
 */
export function generationModelKind(config: SimulatorConfig): ModelKind {
  const servesLlm = config.models.some((model) => model.kind === "llm");
  return !servesLlm && config.models.some((model) => model.kind === "embedding") ? "embedding" : "llm";
}

/** selectGenerationModel picks the model a generation request names (see selectModel), or its error. */
export function selectGenerationModel(name: unknown, kind: GenerationKind, config: SimulatorConfig): SelectedModel {
  const selection = selectModel(name, generationModelKind(config), config);
  if (selection.ok) return selection;
  switch (selection.problem) {
    case "unknown":
      return fail(invalidRequest(`model '${selection.name}' not found`));
    case "missing":
      return fail(invalidRequest("model name is missing from the request"));
    default:
      return fail(modelSelectionError(selection, GENERATION_PATHS[kind], "llm"));
  }
}

/** parsePrompt reads the prompt of a request of kind, converted to a chat as llama-server does, and checks it. */
export function parsePrompt(kind: GenerationKind, fields: Fields): ParsedPrompt {
  if (kind === "completion") {
    const prompt = fields["prompt"];
    if (prompt === undefined) return fail(serverError('"prompt" is required'));
    const text = promptText(prompt);
    if (text === undefined) {
      return fail(
        serverError(
          '"prompt" elements must be a string, a list of tokens, a JSON object containing a prompt string, or a list of mixed strings & tokens.',
        ),
      );
    }
    return { ok: true, seed: text, promptTokens: promptTokenCount(text) };
  }
  let messages: unknown;
  if (kind === "chat") {
    if (!("messages" in fields)) return fail(invalidRequest("'messages' is required"));
    messages = fields["messages"];
  } else {
    const converted = kind === "response" ? responsesMessages(fields) : anthropicMessages(fields);
    if (!converted.ok) return converted;
    messages = converted.messages;
  }
  const checked = checkMessages(messages);
  if (!checked.ok) return checked;
  return { ok: true, seed: seedText(checked.messages), promptTokens: promptTokenCount(checked.messages) };
}

/**
 * limitFields are the fields llama-server reads the answer's limits from: a chat or completion's own; a Responses
 * request's with max_output_tokens renamed max_tokens and `n` ignored (one output message); an Anthropic request's
 * max_tokens alone, since its conversion keeps nothing else of them.
 */
function limitFields(kind: GenerationKind, fields: Fields): Fields {
  switch (kind) {
    case "chat":
    case "completion":
      return fields;
    case "response": {
      const { n: _n, max_output_tokens, ...rest } = fields;
      return max_output_tokens === undefined ? rest : { ...rest, max_tokens: max_output_tokens };
    }
    case "message":
      return fields["max_tokens"] === undefined ? {} : { max_tokens: fields["max_tokens"] };
  }
}

function fail(error: LlamaError): { readonly ok: false; readonly error: LlamaError } {
  return { ok: false, error };
}

type CheckedMessages =
  | { readonly ok: true; readonly messages: readonly ChatMessageLike[] }
  | { readonly ok: false; readonly error: LlamaError };

/** checkMessages applies oaicompat_chat_params_parse's checks of `messages`, with its messages and statuses. */
function checkMessages(messages: unknown): CheckedMessages {
  if (!Array.isArray(messages)) return { ok: false, error: invalidRequest("Expected 'messages' to be an array") };
  for (const message of messages as readonly unknown[]) {
    const entry = typeof message === "object" && message !== null ? (message as Readonly<Record<string, unknown>>) : {};
    const hasContent = "content" in entry;
    if (entry["role"] === "assistant") {
      if (!hasContent && !("tool_calls" in entry)) {
        return { ok: false, error: invalidRequest("Assistant message must contain either 'content' or 'tool_calls'!") };
      }
      if (!hasContent) continue;
    } else if (!hasContent) {
      return { ok: false, error: invalidRequest("All non-assistant messages must contain 'content'") };
    }
    const content = entry["content"];
    if (typeof content === "string" || content === null) continue;
    if (!Array.isArray(content)) {
      return { ok: false, error: invalidRequest("Expected 'content' to be a string or an array") };
    }
    for (const part of content as readonly unknown[]) {
      const type = typeof part === "object" && part !== null ? (part as Readonly<Record<string, unknown>>)["type"] : undefined;
      if (type === "image_url") {
        return {
          ok: false,
          error: serverError("image input is not supported - hint: if this is unexpected, you may need to provide the mmproj"),
        };
      }
      if (type === "input_audio") {
        return {
          ok: false,
          error: serverError("audio input is not supported - hint: if this is unexpected, you may need to provide the mmproj"),
        };
      }
      if (type !== "text") return { ok: false, error: invalidRequest("unsupported content[].type") };
    }
  }
  return { ok: true, messages: messages as readonly ChatMessageLike[] };
}

/** promptText flattens a completion prompt: a string, or an array whose strings are joined by spaces. */
function promptText(prompt: unknown): string | undefined {
  if (typeof prompt === "string") return prompt;
  if (!Array.isArray(prompt)) return undefined;
  const parts: string[] = [];
  for (const part of prompt as readonly unknown[]) {
    if (typeof part === "string") parts.push(part);
    else if (typeof part === "number") parts.push(String(part));
    else return undefined;
  }
  return parts.join(" ");
}

function numberField(fields: Readonly<Record<string, unknown>>, name: string): number | undefined {
  const value = fields[name];
  return typeof value === "number" ? value : undefined;
}
