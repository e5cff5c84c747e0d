import type { MessageInitShape } from "@bufbuild/protobuf";
import type { TrailerSchema, UsageSchema } from "../../gen/infermesh/v1/inference_pb.js";

/** UsageInit is a proto Usage under construction. */
export type UsageInit = MessageInitShape<typeof UsageSchema>;

/** TrailerInit is a proto Trailer under construction. */
export type TrailerInit = MessageInitShape<typeof TrailerSchema>;

const MAX_UINT32 = 0xffff_ffff;
const TOKEN_KEYS = ["prompt_tokens", "completion_tokens", "total_tokens", "input_tokens", "output_tokens"];

/**
 * summarizeJsonAnswer reads an OpenAI answer for the trailer: its usage and, for chat and completions, its choices'
 * finish reasons in choice order. Anything missing or malformed is left out rather than guessed.
 */
export function summarizeJsonAnswer(body: unknown): TrailerInit {
  const summary = new AnswerSummary();
  summary.add(body);
  return summary.trailer();
}

/**
 * StreamSummary collects usage and finish reasons from a streamed answer's events without parsing every chunk: only
 * an event whose bytes hold a `"usage"` object or a string `"finish_reason"` is parsed, which in a typical stream is
 * the last one or two. JSON escapes quotes inside strings, so generated text cannot fake the unescaped key.
 */
export class StreamSummary {
  readonly #summary = new AnswerSummary();

  /** observe looks at one event's data. */
  observe(data: Uint8Array): void {
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (!keyWithValue(bytes, USAGE_KEY, OPEN_BRACE) && !keyWithValue(bytes, FINISH_REASON_KEY, QUOTE)) return;
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

/** AnswerSummary folds answer bodies or chunks: the last usage wins, and each choice keeps its last finish reason. */
class AnswerSummary {
  #usage: UsageInit | undefined;
  readonly #finishReasons = new Map<number, string>();

  add(body: unknown): void {
    if (!isObject(body)) return;
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

  trailer(): TrailerInit {
    const finishReasons = [...this.#finishReasons.entries()].sort(([a], [b]) => a - b).map(([, reason]) => reason);
    return this.#usage ? { usage: this.#usage, finishReasons } : { finishReasons };
  }
}

/**
 * usageOf reads a usage object: chat's prompt_tokens and completion_tokens, or the input_tokens and output_tokens
 * that OpenAI's audio and image answers (and their streams' final events) report. A usage that counts no tokens
 * (whisper-1's `{"type": "duration", "seconds": ...}`) is none.
 */
function usageOf(value: unknown): UsageInit | undefined {
  if (!isObject(value)) return undefined;
  const promptDetails = isObject(value["prompt_tokens_details"])
    ? value["prompt_tokens_details"]
    : isObject(value["input_tokens_details"])
      ? value["input_tokens_details"]
      : {};
  const completionDetails = isObject(value["completion_tokens_details"]) ? value["completion_tokens_details"] : {};
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

function count(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? Math.min(MAX_UINT32, Math.floor(value)) : 0;
}

function isObject(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const USAGE_KEY = Buffer.from('"usage"');
const FINISH_REASON_KEY = Buffer.from('"finish_reason"');
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
