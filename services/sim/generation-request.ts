import type { LlamaError } from "./llama-errors.js";
import { contextExceeded, fieldTypeError, invalidRequest, serverError } from "./llama-errors.js";
import { selectModel } from "./model-selection.js";
import { modelSelectionError } from "./openai-errors.js";
import { decideFailure, parseSimOverrides } from "./sim-overrides.js";
import type { ChatMessageLike } from "./simulated-text.js";
import { hashText, promptTokenCount, seedText } from "./simulated-text.js";
import type { ResolvedFailure, ResolvedModel, SimulatorConfig } from "./simulator-options.js";
import { MAX_CHOICES } from "./simulator-options.js";

/** GenerationKind tells the two generation endpoints apart: /v1/chat/completions and /v1/completions. */
export type GenerationKind = "chat" | "completion";

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

/**
 * parseGenerationRequest validates a parsed body in llama-server's order (messages, then field types, then context
 * size) and extracts a GenerationRequest.
 */
export function parseGenerationRequest(kind: GenerationKind, body: unknown, config: SimulatorConfig): ParsedGeneration {
  // nlohmann's contains() is false on a non-object, so llama-server treats such a body as an empty object.
  const fields: Readonly<Record<string, unknown>> =
    typeof body === "object" && body !== null && !Array.isArray(body) ? (body as Readonly<Record<string, unknown>>) : {};

  const selection = selectModel(fields["model"], "llm", config);
  if (!selection.ok) {
    switch (selection.problem) {
      case "unknown":
        return fail(invalidRequest(`model '${selection.name}' not found`));
      case "missing":
        return fail(invalidRequest("model name is missing from the request"));
      default:
        return fail(modelSelectionError(selection, kind === "chat" ? "/v1/chat/completions" : "/v1/completions", "llm"));
    }
  }
  const model = selection.model;

  let seed: string;
  let promptTokens: number;
  if (kind === "chat") {
    const checked = checkMessages(fields);
    if (!checked.ok) return checked;
    seed = seedText(checked.messages);
    promptTokens = promptTokenCount(checked.messages);
  } else {
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
    seed = text;
    promptTokens = promptTokenCount(text);
  }

  for (const field of ["n_predict", "max_completion_tokens", "max_tokens", "n"]) {
    const value = fields[field];
    if (value !== undefined && value !== null && typeof value !== "number") return fail(fieldTypeError(field, "number", value));
  }
  const choices = numberField(fields, "n") ?? 1;
  if (!Number.isInteger(choices) || choices < 1 || choices > MAX_CHOICES) {
    return fail(invalidRequest(`n must be an integer between 1 and ${MAX_CHOICES}`));
  }

  if (promptTokens >= model.contextLength) return fail(contextExceeded(promptTokens, model.contextLength));

  // llama-server lets n_predict override max_tokens; max_completion_tokens is OpenAI's newer name for max_tokens.
  const requested = numberField(fields, "n_predict") ?? numberField(fields, "max_completion_tokens") ?? numberField(fields, "max_tokens");
  const unlimited = requested === undefined || requested < 0;
  const wanted = unlimited ? config.completionTokens : Math.floor(requested);
  // llama-server stops a slot at the end of its context, with finish_reason "length".
  const room = model.contextLength - promptTokens;
  const tokens = Math.min(wanted, room);
  const finishReason: FinishReason = unlimited && tokens === wanted ? "stop" : "length";

  const overrides = parseSimOverrides(fields["sim"]);
  if (!overrides.ok) return fail(invalidRequest(overrides.message));
  const sim = overrides.overrides;

  const streamOptions = fields["stream_options"];
  const includeUsage =
    typeof streamOptions === "object" &&
    streamOptions !== null &&
    (streamOptions as Readonly<Record<string, unknown>>)["include_usage"] === true;

  return {
    ok: true,
    request: {
      kind,
      model,
      seed: hashText(seed),
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

function fail(error: LlamaError): ParsedGeneration {
  return { ok: false, error };
}

type CheckedMessages =
  | { readonly ok: true; readonly messages: readonly ChatMessageLike[] }
  | { readonly ok: false; readonly error: LlamaError };

/** checkMessages applies oaicompat_chat_params_parse's checks, with its messages and statuses. */
function checkMessages(fields: Readonly<Record<string, unknown>>): CheckedMessages {
  if (!("messages" in fields)) return { ok: false, error: invalidRequest("'messages' is required") };
  const messages = fields["messages"];
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
