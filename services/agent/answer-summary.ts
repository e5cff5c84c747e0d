import type { MessageInitShape } from "@bufbuild/protobuf";
import { type InferenceCall, Operation, type TrailerSchema, type UsageSchema } from "../../gen/infermesh/v1/inference_pb.js";
import { isObject } from "../shared/json-object.js";
import { AudioDurationMeter, type AudioFormat } from "./audio-duration.js";
import { JsonDataCounter } from "./json-data-counter.js";
import { mediaType } from "./upstream-client.js";

/** UsageInit is a proto Usage under construction. */
export type UsageInit = MessageInitShape<typeof UsageSchema>;

/** TrailerInit is a proto Trailer under construction. */
export type TrailerInit = MessageInitShape<typeof TrailerSchema>;

/** SummarizedCall is what of a call decides what its answer's trailer counts. */
export type SummarizedCall = Pick<InferenceCall, "operation" | "body">;

/** MAX_SUMMARIZED_BYTES bounds a JSON answer kept aside to read its usage; a larger one is relayed without. */
export const MAX_SUMMARIZED_BYTES = 8 * 1024 * 1024;

const MAX_UINT32 = 0xffff_ffff;
const TOKEN_KEYS = ["prompt_tokens", "completion_tokens", "total_tokens", "input_tokens", "output_tokens"];

/**
 * MediaCount is what a trailer counts besides tokens: the audio's length as the server reported it (a transcription's
 * input), the length of the audio relayed (speech, measured from its bytes), or the images returned.
 */
type MediaCount = "none" | "reported_audio" | "relayed_audio" | "images";

/** mediaCountOf says what an operation's trailer counts besides tokens. */
function mediaCountOf(operation: Operation): MediaCount {
  switch (operation) {
    case Operation.TRANSCRIPTION:
    case Operation.TRANSLATION:
      return "reported_audio";
    case Operation.SPEECH:
      return "relayed_audio";
    case Operation.IMAGE_GENERATION:
    case Operation.IMAGE_EDIT:
      return "images";
    case Operation.CHAT_COMPLETION:
    case Operation.COMPLETION:
    case Operation.EMBEDDING:
    case Operation.RERANK:
    case Operation.RESPONSE:
    case Operation.MESSAGE:
    case Operation.COUNT_TOKENS:
    case Operation.UNSPECIFIED:
      return "none";
  }
}

/**
 * UsageShape is where an operation's answers report their tokens and how they ended:
 * - "openai": `usage` with prompt and completion tokens (chat, completions, embeddings, rerank) or input and output
 *   tokens (audio, images), and `choices[].finish_reason`;
 * - "responses": OpenAI's Responses API, the response's `usage` (input tokens include the cached ones) and `status`,
 *   at the top of a non-streamed answer and under `response` in a stream's response.completed or .incomplete event;
 * - "anthropic": Anthropic's Messages API, `usage` whose input_tokens leave out the tokens read from or written to
 *   the prompt cache, and `stop_reason`; a stream reports the input in message_start's `message.usage` and the
 *   output, growing, in message_delta's `usage`, with the stop reason in its `delta`;
 * - "none": count_tokens, which generates nothing; the tokens it counts are its answer, not its usage.
 */
type UsageShape = "openai" | "responses" | "anthropic" | "none";

/** usageShapeOf says where an operation's answers report usage. */
function usageShapeOf(operation: Operation): UsageShape {
  switch (operation) {
    case Operation.RESPONSE:
      return "responses";
    case Operation.MESSAGE:
      return "anthropic";
    case Operation.COUNT_TOKENS:
      return "none";
    case Operation.CHAT_COMPLETION:
    case Operation.COMPLETION:
    case Operation.EMBEDDING:
    case Operation.RERANK:
    case Operation.TRANSCRIPTION:
    case Operation.TRANSLATION:
    case Operation.IMAGE_GENERATION:
    case Operation.IMAGE_EDIT:
    case Operation.SPEECH:
    case Operation.UNSPECIFIED:
      return "openai";
  }
}

/**
 * summarizeJsonAnswer reads an answer for the trailer: its usage (see UsageShape), for chat and completions its
 * choices' finish reasons in choice order, for responses and messages how the one answer ended (see
 * responseFinishReason, ANTHROPIC_STOP_REASONS), for a transcription or a translation the audio's length it reports,
 * for images how many it holds (`data`). Anything missing or malformed is left out rather than guessed.
 */
export function summarizeJsonAnswer(body: unknown, operation: Operation): TrailerInit {
  const summary = new AnswerSummary(mediaCountOf(operation), usageShapeOf(operation));
  summary.add(body);
  return summary.trailer();
}

/**
 * StreamSummary collects usage and finish reasons from a streamed answer's events without parsing every chunk: only
 * an event whose bytes hold a `"usage"` object or a string `"finish_reason"` or `"stop_reason"` is parsed, which in a
 * typical stream is the last one or two (a Messages stream's message_start and message_delta); a Responses stream's
 * response.completed, .incomplete or .failed event is parsed for the response it carries; an image stream's
 * `...completed` events are parsed to count its images, and a speech stream's `speech.audio.delta` events to measure
 * the audio they carry. JSON escapes quotes inside strings, so generated text cannot fake the unescaped key.
 */
export class StreamSummary {
  readonly #summary: AnswerSummary;
  readonly #count: MediaCount;
  readonly #shape: UsageShape;

  constructor(call: SummarizedCall) {
    this.#count = mediaCountOf(call.operation);
    this.#shape = usageShapeOf(call.operation);
    const audio = this.#count === "relayed_audio" ? new AudioDurationMeter(declaredAudio("", requestedAudio(call))) : undefined;
    this.#summary = new AnswerSummary(this.#count, this.#shape, audio);
  }

  /** observe looks at one event's data. */
  observe(data: Uint8Array): void {
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const wanted =
      keyWithValue(bytes, USAGE_KEY, OPEN_BRACE) ||
      keyWithValue(bytes, FINISH_REASON_KEY, QUOTE) ||
      keyWithValue(bytes, STOP_REASON_KEY, QUOTE) ||
      (this.#shape === "responses" && RESPONSE_ENDS.some((end) => bytes.includes(end))) ||
      (this.#count === "images" && bytes.includes(COMPLETED)) ||
      (this.#count === "relayed_audio" && bytes.includes(SPEECH_DELTA));
    if (!wanted) return;
    let chunk: unknown;
    try {
      chunk = JSON.parse(bytes.toString("utf8"));
    } catch {
      return;
    }
    this.#summary.add(chunk);
  }

  /** trailer is what the stream reported so far. */
  trailer(): TrailerInit {
    return this.#summary.trailer();
  }
}

/**
 * BodySummary reads a 2xx body that is not an event stream as it is relayed, piece by piece: a JSON answer of up to
 * MAX_SUMMARIZED_BYTES is kept aside and read whole (see summarizeJsonAnswer); a larger image answer is let go and its
 * images counted as they pass instead (see JsonDataCounter); speech is measured by an AudioDurationMeter, which keeps
 * only header bytes.
 */
export class BodySummary {
  readonly #count: MediaCount;
  readonly #shape: UsageShape;
  #chunks: Uint8Array[] | undefined;
  #size = 0;
  #images: JsonDataCounter | undefined;
  readonly #audio: AudioDurationMeter | undefined;

  constructor(call: SummarizedCall, contentType: string) {
    this.#count = mediaCountOf(call.operation);
    this.#shape = usageShapeOf(call.operation);
    this.#chunks = /^application\/([\w.+-]*\+)?json$/.test(mediaType(contentType)) ? [] : undefined;
    this.#audio = this.#count === "relayed_audio" ? new AudioDurationMeter(declaredAudio(contentType, requestedAudio(call))) : undefined;
  }

  /** add reads the next piece of the body. */
  add(chunk: Uint8Array): void {
    this.#audio?.push(chunk);
    this.#images?.push(chunk);
    if (!this.#chunks) return;
    this.#size += chunk.length;
    if (this.#size <= MAX_SUMMARIZED_BYTES) {
      this.#chunks.push(chunk);
      return;
    }
    if (this.#count === "images") {
      this.#images = new JsonDataCounter();
      for (const kept of this.#chunks) this.#images.push(kept);
      this.#images.push(chunk);
    }
    this.#chunks = undefined;
  }

  /** trailer is what the body reported. */
  trailer(): TrailerInit {
    const summary = new AnswerSummary(this.#count, this.#shape, this.#audio);
    if (this.#chunks) {
      try {
        summary.add(JSON.parse(Buffer.concat(this.#chunks, this.#size).toString("utf8")));
      } catch {
        // Not JSON after all: nothing to read in it.
      }
    }
    if (this.#images) summary.addImages(this.#images.count);
    return summary.trailer();
  }
}

/**
 * AnswerSummary folds answer bodies or chunks: the last usage wins (an Anthropic stream's usage is folded field by
 * field instead, its events each reporting part of it), and each choice keeps its last finish reason.
 */
class AnswerSummary {
  readonly #count: MediaCount;
  readonly #shape: UsageShape;
  readonly #audio: AudioDurationMeter | undefined;
  #usage: UsageInit | undefined;
  readonly #anthropic: AnthropicUsage = {};
  readonly #finishReasons = new Map<number, string>();
  #reportedSeconds = 0;
  #images = 0;

  constructor(count: MediaCount, shape: UsageShape, audio?: AudioDurationMeter) {
    this.#count = count;
    this.#shape = shape;
    this.#audio = audio;
  }

  add(body: unknown): void {
    if (!isObject(body)) return;
    switch (this.#shape) {
      case "openai":
        this.#addOpenAi(body);
        break;
      case "responses":
        this.#addResponse(isObject(body["response"]) ? body["response"] : body);
        break;
      case "anthropic":
        this.#addMessage(body);
        break;
      case "none":
        break;
    }
    switch (this.#count) {
      case "reported_audio":
        this.#reportedSeconds = reportedSeconds(body) ?? this.#reportedSeconds;
        break;
      case "images":
        if (Array.isArray(body["data"])) this.#images += body["data"].length;
        if (body["type"] === "image_generation.completed" || body["type"] === "image_edit.completed") this.#images++;
        break;
      case "relayed_audio":
        if (body["type"] === "speech.audio.delta" && typeof body["audio"] === "string")
          this.#audio?.push(Buffer.from(body["audio"], "base64"));
        break;
      case "none":
        break;
    }
  }

  #addOpenAi(body: Readonly<Record<string, unknown>>): void {
    const usage = usageOf(body["usage"]);
    if (usage) this.#usage = usage;
    const choices = body["choices"];
    if (!Array.isArray(choices)) return;
    choices.forEach((choice: unknown, position) => {
      if (!isObject(choice) || typeof choice["finish_reason"] !== "string") return;
      const index = choice["index"];
      this.#finishReasons.set(typeof index === "number" && Number.isInteger(index) ? index : position, choice["finish_reason"]);
    });
  }

  /** #addResponse reads a Responses API response object: a non-streamed answer, or the one a stream event carries. */
  #addResponse(response: Readonly<Record<string, unknown>>): void {
    const usage = usageOf(response["usage"]);
    if (usage) this.#usage = usage;
    const reason = responseFinishReason(response);
    if (reason !== undefined) this.#finishReasons.set(0, reason);
  }

  /**
   * #addMessage reads a Messages answer, or one event of its stream: message_start's `message`, message_delta's
   * `usage` and `delta.stop_reason`. Each usage field present replaces the one before (message_delta's output_tokens
   * are the total so far).
   */
  #addMessage(body: Readonly<Record<string, unknown>>): void {
    const message = isObject(body["message"]) ? body["message"] : body;
    const usage = message["usage"];
    if (isObject(usage)) {
      for (const key of ANTHROPIC_USAGE_KEYS) if (isTokenCount(usage[key])) this.#anthropic[key] = count(usage[key]);
    }
    const delta = isObject(body["delta"]) ? body["delta"] : {};
    const stop = typeof message["stop_reason"] === "string" ? message["stop_reason"] : delta["stop_reason"];
    if (typeof stop === "string") this.#finishReasons.set(0, ANTHROPIC_STOP_REASONS[stop] ?? stop);
  }

  addImages(count: number): void {
    this.#images += count;
  }

  trailer(): TrailerInit {
    if (this.#shape === "anthropic") this.#usage = anthropicUsage(this.#anthropic);
    const finishReasons = [...this.#finishReasons.entries()].sort(([a], [b]) => a - b).map(([, reason]) => reason);
    const audioSeconds = this.#count === "relayed_audio" ? (this.#audio?.seconds() ?? 0) : this.#reportedSeconds;
    const images = Math.min(MAX_UINT32, this.#images);
    if (!this.#usage && audioSeconds === 0 && images === 0) return { finishReasons };
    return {
      usage: { ...this.#usage, ...(audioSeconds > 0 ? { audioSeconds } : {}), ...(images > 0 ? { images } : {}) },
      finishReasons,
    };
  }
}

/**
 * reportedSeconds reads the length of the audio a transcription answer (or its stream's `transcript.text.done`)
 * reports: usage `{"type": "duration", "seconds": N}` where the server gives one (OpenAI's whisper-1, in every
 * response format), else verbose_json's top-level `duration`, so that one audio counts the same in every format.
 */
function reportedSeconds(body: Readonly<Record<string, unknown>>): number | undefined {
  const usage = body["usage"];
  if (isObject(usage) && usage["type"] === "duration" && isSeconds(usage["seconds"])) return usage["seconds"];
  return isSeconds(body["duration"]) ? body["duration"] : undefined;
}

function isSeconds(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}

/** PCM_TYPES are the content types of headerless samples. */
const PCM_TYPES = new Set(["audio/pcm", "audio/l16", "audio/x-pcm", "audio/raw"]);

/**
 * declaredAudio is the format an AudioDurationMeter is told: only pcm, which has no signature to recognise, needs
 * telling. A content type that names another audio type wins over the request, the server having sent what it names.
 */
function declaredAudio(contentType: string, requested: string | undefined): AudioFormat | undefined {
  const type = mediaType(contentType);
  if (PCM_TYPES.has(type)) return "pcm";
  if (type.startsWith("audio/")) return undefined;
  return requested === "pcm" ? "pcm" : undefined;
}

/** requestedAudio is a speech call's `response_format`, when its body says. */
function requestedAudio(call: SummarizedCall): string | undefined {
  try {
    const body: unknown = JSON.parse(Buffer.from(call.body.buffer, call.body.byteOffset, call.body.byteLength).toString("utf8"));
    return isObject(body) && typeof body["response_format"] === "string" ? body["response_format"] : undefined;
  } catch {
    return undefined;
  }
}

/**
 * usageOf reads a usage object: chat's prompt_tokens and completion_tokens (with their details), or the input_tokens
 * and output_tokens (with input_tokens_details and output_tokens_details) that the Responses API and OpenAI's audio
 * and image answers (and their streams' final events) report. A usage that counts no tokens (whisper-1's
 * `{"type": "duration", "seconds": ...}`) is none.
 */
function usageOf(value: unknown): UsageInit | undefined {
  if (!isObject(value)) return undefined;
  const promptDetails = isObject(value["prompt_tokens_details"])
    ? value["prompt_tokens_details"]
    : isObject(value["input_tokens_details"])
      ? value["input_tokens_details"]
      : {};
  const completionDetails = isObject(value["completion_tokens_details"])
    ? value["completion_tokens_details"]
    : isObject(value["output_tokens_details"])
      ? value["output_tokens_details"]
      : {};
  const promptTokens = count(value["prompt_tokens"]) || count(value["input_tokens"]);
  const completionTokens = count(value["completion_tokens"]) || count(value["output_tokens"]);
  if (!TOKEN_KEYS.some((key) => key in value)) return undefined;
  return {
    promptTokens,
    completionTokens,
    totalTokens: count(value["total_tokens"]) || Math.min(MAX_UINT32, promptTokens + completionTokens),
    cachedPromptTokens: count(promptDetails["cached_tokens"]),
    reasoningTokens: count(completionDetails["reasoning_tokens"]),
  };
}

/** AnthropicUsage is an Anthropic usage as folded so far, by its field names. */
type AnthropicUsage = { -readonly [K in (typeof ANTHROPIC_USAGE_KEYS)[number]]?: number };

/** ANTHROPIC_USAGE_KEYS are the token counts of an Anthropic usage. */
const ANTHROPIC_USAGE_KEYS = ["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"] as const;

/**
 * anthropicUsage turns an Anthropic usage into the mesh's: its input_tokens count only the prompt tokens after the
 * last cache breakpoint, so the prompt is those plus the ones read from the cache (the cached prompt tokens) plus the
 * ones written to it. None when no field was reported.
 */
function anthropicUsage(usage: AnthropicUsage): UsageInit | undefined {
  if (Object.keys(usage).length === 0) return undefined;
  const cached = usage.cache_read_input_tokens ?? 0;
  const promptTokens = Math.min(MAX_UINT32, (usage.input_tokens ?? 0) + cached + (usage.cache_creation_input_tokens ?? 0));
  const completionTokens = usage.output_tokens ?? 0;
  return {
    promptTokens,
    completionTokens,
    totalTokens: Math.min(MAX_UINT32, promptTokens + completionTokens),
    cachedPromptTokens: cached,
    reasoningTokens: 0,
  };
}

/**
 * ANTHROPIC_STOP_REASONS spell Anthropic's stop reasons as chat's finish reasons, so that trailers speak one
 * vocabulary; a reason without an equivalent (pause_turn) is kept as sent.
 */
const ANTHROPIC_STOP_REASONS: Readonly<Record<string, string>> = {
  end_turn: "stop",
  stop_sequence: "stop",
  max_tokens: "length",
  model_context_window_exceeded: "length",
  tool_use: "tool_calls",
  refusal: "content_filter",
};

/**
 * responseFinishReason spells how a Responses API response ended as chat's finish reason: a completed one "stop", or
 * "tool_calls" when its output calls a function; an incomplete one by its incomplete_details.reason
 * (max_output_tokens is "length", content_filter stays); a failed or cancelled one by its status. None while it runs.
 */
function responseFinishReason(response: Readonly<Record<string, unknown>>): string | undefined {
  switch (response["status"]) {
    case "completed": {
      const output = Array.isArray(response["output"]) ? response["output"] : [];
      return output.some((item) => isObject(item) && item["type"] === "function_call") ? "tool_calls" : "stop";
    }
    case "incomplete": {
      const details = isObject(response["incomplete_details"]) ? response["incomplete_details"] : {};
      const reason = details["reason"];
      if (reason === "max_output_tokens") return "length";
      return typeof reason === "string" ? reason : "incomplete";
    }
    case "failed":
    case "cancelled":
      return response["status"];
    default:
      return undefined;
  }
}

function isTokenCount(value: unknown): boolean {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}

function count(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? Math.min(MAX_UINT32, Math.floor(value)) : 0;
}

const USAGE_KEY = Buffer.from('"usage"');
const FINISH_REASON_KEY = Buffer.from('"finish_reason"');
const STOP_REASON_KEY = Buffer.from('"stop_reason"');
/** RESPONSE_ENDS end the types of the Responses stream events that carry the finished response. */
const RESPONSE_ENDS = ['.completed"', '.incomplete"', '.failed"'].map((end) => Buffer.from(end));
const COMPLETED = Buffer.from('.completed"');
const SPEECH_DELTA = Buffer.from('"speech.audio.delta"');
const OPEN_BRACE = 0x7b;
const QUOTE = 0x22;
const COLON = 0x3a;

/** keyWithValue tells whether key occurs followed by a colon and a value starting with firstValueByte. */
function keyWithValue(bytes: Buffer, key: Buffer, firstValueByte: number): boolean {
  for (let at = bytes.indexOf(key); at !== -1; at = bytes.indexOf(key, at + key.length)) {
    let i = skipSpace(bytes, at + key.length);
    if (bytes[i] !== COLON) continue;
    i = skipSpace(bytes, i + 1);
    if (bytes[i] === firstValueByte) return true;
  }
  return false;
}

function skipSpace(bytes: Buffer, from: number): number {
  let i = from;
  while (bytes[i] === 0x20 || bytes[i] === 0x09 || bytes[i] === 0x0a || bytes[i] === 0x0d) i++;
  return i;
}
