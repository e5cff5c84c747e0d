import { tooLarge } from "./gateway-errors.js";
import type { JsonObject } from "./request-validation.js";

/** Guardrails bound what one chat or completion request may ask of a provider; 0 switches a bound off. */
export interface Guardrails {
  /** maxMessages bounds a chat's messages (inference.club's API: 200). */
  readonly maxMessages: number;
  /** maxInputChars bounds the characters of a request's messages or prompt (inference.club's API: 100,000). */
  readonly maxInputChars: number;
  /** maxTokens is the ceiling that max_tokens and max_completion_tokens are clamped to (inference.club's API: 8192). */
  readonly maxTokens: number;
}

/** DEFAULT_GUARDRAILS are inference.club's bounds. */
export const DEFAULT_GUARDRAILS: Guardrails = Object.freeze({ maxMessages: 200, maxInputChars: 100_000, maxTokens: 8192 });

const TOKEN_FIELDS = ["max_tokens", "max_completion_tokens"] as const;

/** checkInputSize answers a request over the message or character bounds with a 413 request_too_large. */
export function checkInputSize(body: JsonObject, guardrails: Guardrails): void {
  const messages = Array.isArray(body.messages) ? body.messages : undefined;
  if (messages && guardrails.maxMessages > 0 && messages.length > guardrails.maxMessages) {
    throw tooLarge(`The request has ${messages.length} messages; at most ${guardrails.maxMessages} are allowed.`, { param: "messages" });
  }
  if (guardrails.maxInputChars <= 0) return;
  const chars = messages ? messages.reduce<number>((sum, message) => sum + messageChars(message), 0) : textChars(body.prompt);
  if (chars > guardrails.maxInputChars) {
    throw tooLarge(`The input has ${chars} characters; at most ${guardrails.maxInputChars} are allowed.`, {
      param: messages ? "messages" : "prompt",
    });
  }
}

/** overTokenCeiling tells whether the body asks for more output tokens than the ceiling allows. */
export function overTokenCeiling(body: JsonObject, guardrails: Guardrails): boolean {
  return (
    guardrails.maxTokens > 0 &&
    TOKEN_FIELDS.some((field) => typeof body[field] === "number" && (body[field] as number) > guardrails.maxTokens)
  );
}

/** clampTokens returns the body with its token limits lowered to the ceiling, as inference.club's API does. */
export function clampTokens(body: JsonObject, guardrails: Guardrails): JsonObject {
  const clamped: JsonObject = { ...body };
  for (const field of TOKEN_FIELDS) {
    const value = clamped[field];
    if (typeof value === "number" && value > guardrails.maxTokens) clamped[field] = guardrails.maxTokens;
  }
  return clamped;
}

function messageChars(message: unknown): number {
  if (message === null || typeof message !== "object") return 0;
  return textChars((message as JsonObject).content);
}

/** textChars counts the characters of a prompt or content: a string, or an array of strings and text parts. */
function textChars(value: unknown): number {
  if (typeof value === "string") return value.length;
  if (!Array.isArray(value)) return 0;
  let chars = 0;
  for (const item of value) {
    if (typeof item === "string") chars += item.length;
    else if (item !== null && typeof item === "object" && typeof (item as JsonObject).text === "string") {
      chars += ((item as JsonObject).text as string).length;
    }
  }
  return chars;
}
