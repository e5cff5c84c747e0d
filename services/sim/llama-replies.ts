import type { LlamaError } from "./llama-errors.js";
import { injectedFailureError, invalidRequest } from "./llama-errors.js";
import type { AnswerTiming, PacedAnswerPlan } from "./paced-answer.js";
import { wholeAnswerPlan } from "./paced-answer.js";
import { decideFailure, parseSimOverrides } from "./sim-overrides.js";
import type { SimulatorConfig } from "./simulator-options.js";

/** LLAMA_JSON_HEADERS are llama-server's headers of a JSON answer, in its order; Content-Length follows them. */
export const LLAMA_JSON_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  Server: "llama.cpp",
  "Access-Control-Allow-Origin": "",
  "Content-Type": "application/json; charset=utf-8",
});

/**
 * JsonBody is a llama-server route's request body: parsed, or the error llama-server answers for JSON it cannot parse
 * (a 500 with nlohmann's message).
 */
export type JsonBody = { readonly valid: true; readonly value: unknown } | { readonly valid: false; readonly error: LlamaError };

/** LlamaPacing is when a one-piece llama-server answer comes, and the failure it meets. */
export type LlamaPacing = AnswerTiming;

/** llamaPacing reads a request's `sim` overrides (see SimOverrides) for a one-piece answer; a bad object is a 400. */
export function llamaPacing(sim: unknown, config: SimulatorConfig): LlamaPacing | LlamaError {
  const parsed = parseSimOverrides(sim);
  if (!parsed.ok) return invalidRequest(parsed.message);
  return { firstDelayMs: parsed.overrides.ttft_ms ?? config.timeToFirstTokenMs, failure: decideFailure(parsed.overrides, config) };
}

/**
 * wholeLlamaAnswer plans a one-piece JSON answer of llama-server (embeddings, rerank) produced after the pacing's
 * first delay, as long as a prompt takes to read, as wholeAnswerPlan does; a failure takes llama-server's error shape.
 */
export function wholeLlamaAnswer(pacing: LlamaPacing, body: () => string): PacedAnswerPlan {
  return wholeAnswerPlan(pacing, LLAMA_JSON_HEADERS, body, injectedFailureError);
}
