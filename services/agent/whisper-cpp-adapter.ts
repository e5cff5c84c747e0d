import { type MediaFile, Operation } from "../../gen/infermesh/v1/inference_pb.js";
import type { FormFields } from "../shared/form-fields.js";
import { isObject } from "../shared/json-object.js";
import { type FormParts, fieldValue, fieldValues, mediaFor, withoutFields } from "./multipart-form.js";
import { failedAnswer, invalidRequestAnswer, jsonAnswer, jsonEvent, type TranslatedAnswer, type Translation } from "./translated-answer.js";
import { mediaType } from "./upstream-client.js";

/*
 * whisper.cpp's `server` example (examples/server) transcribes with `POST /inference`, a multipart form: `file`, and
 * optional `response_format` (json, text, srt, verbose_json, vtt), `language` ("auto" detects), `translate` ("true"
 * translates the speech to English instead; the server's --translate flag sets its default), `prompt`,
 * `temperature`, `temperature_inc` and its own decoding fields (beam_size, best_of, no_timestamps, diarize, ...). It
 * has no model list: it serves the one model it was started with. Its quirks, which this adapter absorbs: input
 * errors come back as HTTP 200 with `{"error": "..."}`; text is labelled text/html, srt application/x-subrip;
 * verbose_json resembles openai/whisper's output but with whisper tokens as "words".
 */

/** WHISPER_CPP_INFERENCE_PATH is the server's transcription endpoint. */
export const WHISPER_CPP_INFERENCE_PATH = "/inference";
/** WHISPER_CPP_PROBE_PATH answers while the server is up ({"status":"ok"}; 503 while it loads its model). */
export const WHISPER_CPP_PROBE_PATH = "/health";

/** TRANSCRIPTION_FORMATS are OpenAI's response formats; whisper.cpp knows the same names. */
const TRANSCRIPTION_FORMATS = ["json", "text", "srt", "verbose_json", "vtt"] as const;
type TranscriptionFormat = (typeof TRANSCRIPTION_FORMATS)[number];

/** CONSUMED_FIELDS are OpenAI fields the adapter translates or that mean nothing to whisper.cpp. */
const CONSUMED_FIELDS = [
  "model",
  "translate",
  "response_format",
  "language",
  "stream",
  "timestamp_granularities[]",
  "timestamp_granularities",
  "chunking_strategy",
  "include[]",
];

const TEXT_CONTENT_TYPE = "text/plain; charset=utf-8";

/**
 * WhisperTask is what the audio is asked for, in whisper's words: its transcript in the language spoken
 * (/v1/audio/transcriptions), or an English translation (/v1/audio/translations).
 */
export type WhisperTask = "transcribe" | "translate";

/** WhisperCppPlan is a transcription as the adapter will ask for it and answer it. */
export interface WhisperCppPlan {
  readonly form: FormParts;
  readonly format: TranscriptionFormat;
  /** segments and words say which timestamp granularities verbose_json carries (OpenAI: segments by default). */
  readonly segments: boolean;
  readonly words: boolean;
  /** stream is set when the client asked for a stream in a format OpenAI streams (json or text). */
  readonly stream: boolean;
}

/**
 * whisperCppRequest translates an OpenAI transcription or translation (task) into an /inference request: the audio
 * as `file`, `response_format` as asked (json by default), `language` as given or "auto" (OpenAI detects the language
 * when none is given; whisper.cpp would assume its start-up language, English by default), `translate` as the task
 * says (always sent, so that a server started with --translate still transcribes), and every other field as the
 * client sent it, so that `prompt`, `temperature` and whisper.cpp's own fields reach it. Fields without meaning there
 * (model, stream, timestamp_granularities[], ...) are left out. A format it cannot produce is the client's error.
 */
export function whisperCppRequest(fields: FormFields, media: readonly MediaFile[], stream: boolean, task: WhisperTask): Translation {
  const plan = whisperCppPlan(fields, media, stream, task);
  if ("kind" in plan) return plan;
  return {
    body: { kind: "form", form: plan.form },
    answer: (status, contentType, body) => whisperCppAnswer(plan, status, contentType, body),
  };
}

/** whisperCppPlan is what whisperCppRequest asks for and how it answers, or the client's error. */
export function whisperCppPlan(
  fields: FormFields,
  media: readonly MediaFile[],
  stream: boolean,
  task: WhisperTask = "transcribe",
): WhisperCppPlan | TranslatedAnswer {
  const { audio } = mediaFor(task === "translate" ? Operation.TRANSLATION : Operation.TRANSCRIPTION, media);
  const requested = fieldValue(fields, "response_format") ?? "json";
  if (!(TRANSCRIPTION_FORMATS as readonly string[]).includes(requested)) {
    return invalidRequestAnswer(`response_format must be one of ${TRANSCRIPTION_FORMATS.join(", ")}`, "response_format");
  }
  const format = requested as TranscriptionFormat;
  const granularities = [...fieldValues(fields, "timestamp_granularities[]"), ...fieldValues(fields, "timestamp_granularities")];
  const language = fieldValue(fields, "language");
  return {
    form: {
      fields: [
        ["response_format", format],
        ["language", language === undefined || language === "" ? "auto" : language],
        ["translate", task === "translate" ? "true" : "false"],
        ...withoutFields(fields, CONSUMED_FIELDS),
      ],
      files: audio.map((file) => ({ field: "file", file })),
    },
    format,
    segments: granularities.length === 0 || granularities.includes("segment"),
    words: granularities.includes("word"),
    stream: stream && (format === "json" || format === "text"),
  };
}

/**
 * whisperCppAnswer translates the server's answer: json and text to OpenAI's transcript (whisper.cpp puts each
 * segment on its own line, with the leading space Whisper gives it; OpenAI gives the joined text), srt and vtt as
 * they are but as text/plain like OpenAI, verbose_json to OpenAI's shape (see openAiVerboseJson), and, for a client
 * that asked to stream, the transcript as a `transcript.text.delta` and a `transcript.text.done` event. An
 * `{"error": ...}` answer is the client's error (bad or unreadable audio), a 404 means the URL is not a whisper.cpp
 * server.
 */
export function whisperCppAnswer(plan: WhisperCppPlan, status: number, contentType: string, body: Buffer): TranslatedAnswer {
  const text = body.toString("utf8");
  const json = mediaType(contentType) === "application/json" ? parseJson(text) : undefined;
  if (isObject(json) && typeof json["error"] === "string") {
    if (status === 404) return notWhisperCpp(status);
    return invalidRequestAnswer(`whisper.cpp could not transcribe the audio: ${json["error"]}`, "file");
  }
  if (status === 404) return notWhisperCpp(status);
  if (status >= 400) return invalidRequestAnswer(`whisper.cpp refused the request (HTTP ${status}): ${text.slice(0, 300)}`);
  switch (plan.format) {
    case "json":
    case "text": {
      const transcript = plan.format === "json" ? (isObject(json) && typeof json["text"] === "string" ? json["text"] : undefined) : text;
      if (transcript === undefined) return failedAnswer(`answered without a transcript: ${text.slice(0, 300)}`);
      const joined = joinedTranscript(transcript);
      if (plan.stream) {
        return {
          kind: "events",
          events: [jsonEvent({ type: "transcript.text.delta", delta: joined }), jsonEvent({ type: "transcript.text.done", text: joined })],
        };
      }
      return plan.format === "json"
        ? jsonAnswer({ text: joined })
        : { kind: "body", status: 200, contentType: TEXT_CONTENT_TYPE, body: Buffer.from(`${joined}\n`, "utf8") };
    }
    case "srt":
    case "vtt":
      return { kind: "body", status: 200, contentType: TEXT_CONTENT_TYPE, body };
    case "verbose_json":
      if (!isObject(json)) return failedAnswer(`answered verbose_json that is not a JSON object: ${text.slice(0, 300)}`);
      return jsonAnswer(openAiVerboseJson(json, plan));
  }
}

/**
 * openAiVerboseJson maps whisper.cpp's verbose_json (task, language, duration, text, segments with id, text, start,
 * end, tokens, words = whisper tokens with start, end and probability, temperature, avg_logprob, no_speech_prob) to
 * OpenAI's: the same top-level fields with the joined text, `segments` (seek is the segment's start in 10 ms frames;
 * compression_ratio, which whisper.cpp does not compute, is left out) when segment timestamps were asked for or none
 * were, `words` (tokens joined into words, punctuation trimmed) when word timestamps were, and the audio's duration as
 * usage, as OpenAI reports it for whisper-1.
 */
export function openAiVerboseJson(
  whisper: Readonly<Record<string, unknown>>,
  granularity: { readonly segments: boolean; readonly words: boolean },
): Record<string, unknown> {
  const segments = Array.isArray(whisper["segments"]) ? whisper["segments"].filter(isObject) : [];
  const duration = typeof whisper["duration"] === "number" ? whisper["duration"] : undefined;
  const answer: Record<string, unknown> = {
    task: typeof whisper["task"] === "string" ? whisper["task"] : "transcribe",
    language: typeof whisper["language"] === "string" ? whisper["language"] : "",
    duration: duration ?? 0,
    text: joinedTranscript(typeof whisper["text"] === "string" ? whisper["text"] : segments.map((s) => String(s["text"] ?? "")).join("")),
  };
  if (granularity.words) answer["words"] = wordsOf(segments);
  if (granularity.segments) {
    answer["segments"] = segments.map((segment, index) => {
      const start = seconds(segment["start"]);
      return {
        id: typeof segment["id"] === "number" ? segment["id"] : index,
        seek: Math.round(start * 100),
        start,
        end: seconds(segment["end"]),
        text: typeof segment["text"] === "string" ? segment["text"] : "",
        tokens: Array.isArray(segment["tokens"]) ? segment["tokens"].filter((t) => typeof t === "number") : [],
        ...numberField(segment, "temperature"),
        ...numberField(segment, "avg_logprob"),
        ...numberField(segment, "no_speech_prob"),
      };
    });
  }
  if (duration !== undefined) answer["usage"] = { type: "duration", seconds: Math.ceil(duration) };
  return answer;
}

/** TimedWord is one word of OpenAI's `words` list. */
export interface TimedWord {
  readonly word: string;
  readonly start: number;
  readonly end: number;
}

/**
 * wordsOf joins whisper tokens into words: a token that starts with a space (or a segment's first) begins a word,
 * the others continue it ("Amer" + "icans"); special tokens such as [_BEG_] are skipped; punctuation at a word's
 * edges is trimmed, as OpenAI's words carry none.
 */
export function wordsOf(segments: readonly Readonly<Record<string, unknown>>[]): TimedWord[] {
  const words: TimedWord[] = [];
  for (const segment of segments) {
    let current: { word: string; start: number; end: number } | undefined;
    const flush = () => {
      const word = current?.word.trim().replace(/^\p{P}+|\p{P}+$/gu, "");
      if (current && word) words.push({ word, start: current.start, end: current.end });
      current = undefined;
    };
    for (const token of Array.isArray(segment["words"]) ? segment["words"].filter(isObject) : []) {
      const text = typeof token["word"] === "string" ? token["word"] : "";
      if (/^\s*\[_[^\]]*\]\s*$/.test(text) || text === "") continue;
      const start = seconds(token["start"]);
      const end = seconds(token["end"]);
      if (current === undefined || /^\s/.test(text)) {
        flush();
        current = { word: text, start, end };
      } else {
        current.word += text;
        current.end = end;
      }
    }
    flush();
  }
  return words;
}

/**
 * joinedTranscript turns whisper.cpp's text (each segment on its own line, with Whisper's leading space) into the
 * transcript OpenAI gives: the segments joined as Whisper wrote them (so languages without spaces stay without),
 * trimmed.
 */
export function joinedTranscript(text: string): string {
  return text.split(/\r?\n/).join("").trim();
}

function notWhisperCpp(status: number): TranslatedAnswer {
  return failedAnswer(`answered HTTP ${status} on ${WHISPER_CPP_INFERENCE_PATH}: is it whisper.cpp's server?`);
}

/** seconds reads a time in seconds, rounded to whisper's 10 ms resolution (whisper.cpp multiplies by 0.01). */
function seconds(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) ? Math.round(value * 100) / 100 : 0;
}

function numberField(object: Readonly<Record<string, unknown>>, key: string): Record<string, number> {
  const value = object[key];
  return typeof value === "number" && Number.isFinite(value) ? { [key]: value } : {};
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
