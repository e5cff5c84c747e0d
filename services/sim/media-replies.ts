import type { ServerResponse } from "node:http";
import { sendError } from "./http-replies.js";
import type { LlamaError } from "./llama-errors.js";
import type { ModelSelection } from "./model-selection.js";
import { selectModel } from "./model-selection.js";
import { invalidValue, modelSelectionError } from "./openai-errors.js";
import type { PacedAnswerPlan } from "./paced-answer.js";
import { wholeAnswerPlan } from "./paced-answer.js";
import type { SimOverrides } from "./sim-overrides.js";
import { decideFailure, parseSimOverrides, simObjectFromForm } from "./sim-overrides.js";
import type { ModelKind, ResolvedFailure, ResolvedModel, SimulatorConfig } from "./simulator-options.js";

/** MEDIA_SSE_HEADERS are the headers of the media endpoints' event streams. */
export const MEDIA_SSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-cache",
  "X-Accel-Buffering": "no",
});

/** JSON_CONTENT_TYPE is the content type of the media endpoints' JSON answers, as OpenAI sends it. */
export const JSON_CONTENT_TYPE = "application/json";
/** TEXT_CONTENT_TYPE is the content type of transcripts answered as text, srt or vtt. */
export const TEXT_CONTENT_TYPE = "text/plain; charset=utf-8";

/** MediaContext is what a route with a paced answer (media, embeddings, rerank) gets from the simulator for one request. */
export interface MediaContext {
  readonly config: SimulatorConfig;
  readonly res: ServerResponse;
  /** path is the request path, named in errors. */
  readonly path: string;
  /** note tells the simulator's abort record which model the request named and whether its answer streams. */
  note(model: string | undefined, stream: boolean): void;
  /** play starts a paced answer, tracked as an active generation until it settles. */
  play(plan: PacedAnswerPlan): void;
}

/** MediaPacing is a media request's timing and failure, from the options and the request's `sim` overrides. */
export interface MediaPacing {
  readonly firstDelayMs: number;
  /** chunkIntervalMs paces speech chunks and image stream events. */
  readonly chunkIntervalMs: number;
  /** wordIntervalMs paces transcript words (one token each). */
  readonly wordIntervalMs: number;
  readonly failure: ResolvedFailure | undefined;
}

/** mediaPacing validates a request's `sim` object and resolves its pacing; a bad object is a 400. */
export function mediaPacing(sim: unknown, config: SimulatorConfig): MediaPacing | LlamaError {
  const parsed = parseSimOverrides(sim);
  if (!parsed.ok) return invalidValue("sim", parsed.message);
  const overrides: SimOverrides = parsed.overrides;
  const tokensPerSecond = overrides.tokens_per_second ?? config.tokensPerSecond;
  return {
    firstDelayMs: overrides.ttft_ms ?? config.timeToFirstTokenMs,
    chunkIntervalMs: overrides.chunk_interval_ms ?? config.speechChunkIntervalMs,
    wordIntervalMs: tokensPerSecond > 0 ? 1000 / tokensPerSecond : 0,
    failure: decideFailure(overrides, config),
  };
}

/**
 * formPacing is mediaPacing for a multipart request, whose `sim` overrides come as `sim[<name>]` fields (what the
 * openai SDK makes of an object) or as one `sim` field holding JSON.
 */
export function formPacing(fields: ReadonlyMap<string, readonly string[]>, config: SimulatorConfig): MediaPacing | LlamaError {
  const json = fields.get("sim")?.at(-1);
  let sim: unknown = simObjectFromForm(fields);
  if (json !== undefined) {
    try {
      sim = JSON.parse(json) as unknown;
    } catch {
      return invalidValue("sim", "Field 'sim' must be a JSON object");
    }
  }
  return mediaPacing(sim, config);
}

/** isError tells a LlamaError from a successful parse result. */
export function isError<T extends object>(value: T | LlamaError): value is LlamaError {
  return "status" in value && "body" in value && typeof (value as LlamaError).body === "string";
}

/** pickModel selects the model of kind for a media request; undefined once the error has been answered. */
export function pickModel(context: MediaContext, name: unknown, kind: ModelKind): ResolvedModel | undefined {
  const selection: ModelSelection = selectModel(name, kind, context.config);
  if (selection.ok) return selection.model;
  sendError(context.res, modelSelectionError(selection, context.path, kind));
  return undefined;
}

/** wholeAnswer plans a one-piece media answer (JSON or text) of contentType, as wholeAnswerPlan does. */
export function wholeAnswer(pacing: MediaPacing, contentType: string, body: () => string | Buffer): PacedAnswerPlan {
  return wholeAnswerPlan(pacing, { "Content-Type": contentType }, body);
}
