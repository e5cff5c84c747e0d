import { Operation } from "../../gen/infermesh/v1/inference_pb.js";
import type { KnownOperation } from "../shared/inference-catalog.js";
import { tooLarge } from "./gateway-errors.js";
import type { JsonObject } from "./request-validation.js";

/** Guardrails bound what one request that gives a model text to read may ask of a provider; 0 switches a bound off. */
export interface Guardrails {
  /** maxMessages bounds a conversation's messages, or a Responses input's items (inference.club's API: 200). */
  readonly maxMessages: number;
  /** maxInputChars bounds the characters of a request's text input, whatever its protocol (inference.club's API: 100,000). */
  readonly maxInputChars: number;
  /** maxTokens is the ceiling that the token limits of each protocol are clamped to (inference.club's API: 8192). */
  readonly maxTokens: number;
}

/** DEFAULT_GUARDRAILS are inference.club's bounds. */
export const DEFAULT_GUARDRAILS: Guardrails = Object.freeze({ maxMessages: 200, maxInputChars: 100_000, maxTokens: 8192 });

/** TextInput is what a request gives a model to read: its list of messages, if it has one, and its characters. */
interface TextInput {
  /** param names the field the input is in, for the 413. */
  readonly param: string;
  readonly messages: readonly unknown[] | undefined;
  readonly chars: number;
}

/**
 * textInputOf measures a request's text input by its protocol: chat's messages, a completion's prompt, embeddings'
 * input, a rerank's query and documents, a Responses input and instructions, Anthropic's messages and system prompt.
 * Token ids count as one character each. Media requests have none: their uploads have bounds of their own.
 */
function textInputOf(operation: KnownOperation, body: JsonObject): TextInput | undefined {
  switch (operation) {
    case Operation.CHAT_COMPLETION:
      return { param: "messages", messages: listOf(body.messages), chars: textChars(body.messages) };
    case Operation.COMPLETION:
      return { param: "prompt", messages: undefined, chars: textChars(body.prompt) };
    case Operation.EMBEDDING:
      return { param: "input", messages: undefined, chars: textChars(body.input) };
    case Operation.RERANK:
      return { param: "documents", messages: undefined, chars: textChars(body.query) + textChars(body.documents) };
    case Operation.RESPONSE:
      return { param: "input", messages: listOf(body.input), chars: textChars(body.instructions) + textChars(body.input) };
    case Operation.MESSAGE:
    case Operation.COUNT_TOKENS:
      return { param: "messages", messages: listOf(body.messages), chars: textChars(body.system) + textChars(body.messages) };
    case Operation.TRANSCRIPTION:
    case Operation.TRANSLATION:
    case Operation.IMAGE_GENERATION:
    case Operation.IMAGE_EDIT:
    case Operation.SPEECH:
      return undefined;
  }
}

/** tokenFieldsOf names the fields in which a protocol's requests bound the tokens to generate. */
function tokenFieldsOf(operation: KnownOperation): readonly string[] {
  switch (operation) {
    case Operation.CHAT_COMPLETION:
    case Operation.COMPLETION:
      return ["max_tokens", "max_completion_tokens"];
    case Operation.RESPONSE:
      return ["max_output_tokens"];
    case Operation.MESSAGE:
      return ["max_tokens"];
    case Operation.COUNT_TOKENS:
    case Operation.EMBEDDING:
    case Operation.RERANK:
    case Operation.TRANSCRIPTION:
    case Operation.TRANSLATION:
    case Operation.IMAGE_GENERATION:
    case Operation.IMAGE_EDIT:
    case Operation.SPEECH:
      return [];
  }
}

/** checkInputSize answers a request over the message or character bounds with a 413 request_too_large. */
export function checkInputSize(operation: KnownOperation, body: JsonObject, guardrails: Guardrails): void {
  const input = textInputOf(operation, body);
  if (input === undefined) return;
  const { messages, param } = input;
  if (messages && guardrails.maxMessages > 0 && messages.length > guardrails.maxMessages) {
    const noun = param === "messages" ? "messages" : "input items";
    throw tooLarge(`The request has ${messages.length} ${noun}; at most ${guardrails.maxMessages} are allowed.`, { param });
  }
  if (guardrails.maxInputChars > 0 && input.chars > guardrails.maxInputChars) {
    throw tooLarge(`The input has ${input.chars} characters; at most ${guardrails.maxInputChars} are allowed.`, { param });
  }
}

/**
 * clampTokens returns the body with its protocol's token limits lowered to the ceiling, as inference.club's API
 * does, or undefined when none is over it and the body is to go as the client sent it.
 */
export function clampTokens(operation: KnownOperation, body: JsonObject, guardrails: Guardrails): JsonObject | undefined {
  if (guardrails.maxTokens <= 0) return undefined;
  const over = tokenFieldsOf(operation).filter(
    (field) => typeof body[field] === "number" && (body[field] as number) > guardrails.maxTokens,
  );
  if (over.length === 0) return undefined;
  const clamped: JsonObject = { ...body };
  for (const field of over) clamped[field] = guardrails.maxTokens;
  return clamped;
}

function listOf(value: unknown): readonly unknown[] | undefined {
  return Array.isArray(value) ? value : undefined;
}

/**
 * textChars counts the characters of text as the protocols nest it: a string; a list of strings, token ids or parts;
 * a part's or document's `text`; a message's or tool result's `content`; a Responses tool output's `output`.
 */
function textChars(value: unknown): number {
  if (typeof value === "string") return value.length;
  if (typeof value === "number") return 1;
  if (Array.isArray(value)) {
    let chars = 0;
    for (const item of value) chars += textChars(item);
    return chars;
  }
  if (value === null || typeof value !== "object") return 0;
  const fields = value as JsonObject;
  return (
    (typeof fields.text === "string" ? fields.text.length : 0) +
    textChars(fields.content) +
    (typeof fields.output === "string" ? fields.output.length : 0)
  );
}
