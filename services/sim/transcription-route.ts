import type { UploadedFile, UploadedForm } from "./form-upload.js";
import { sendError } from "./http-replies.js";
import type { MediaContext } from "./media-replies.js";
import { formPacing, isError, JSON_CONTENT_TYPE, MEDIA_SSE_HEADERS, pickModel, TEXT_CONTENT_TYPE, wholeAnswer } from "./media-replies.js";
import { invalidValue, missingParameter, openAiError } from "./openai-errors.js";
import { promptTokenCount, SIMULATED_WORDS } from "./simulated-text.js";
import type { SimulatedTranscript } from "./simulated-transcript.js";
import { srtText, transcriptOf, vttText } from "./simulated-transcript.js";
import { sseFrame } from "./sse.js";

/** TranscriptionFormat is a `response_format` of /v1/audio/transcriptions. */
export type TranscriptionFormat = "json" | "text" | "srt" | "verbose_json" | "vtt";

const TRANSCRIPTION_FORMATS: readonly TranscriptionFormat[] = ["json", "text", "srt", "verbose_json", "vtt"];
const GRANULARITIES: readonly string[] = ["word", "segment"];
/** AUDIO_TOKENS_PER_SECOND turns audio duration into the input tokens a streamed answer's usage reports. */
const AUDIO_TOKENS_PER_SECOND = 10;
/** TOKEN_ID_OFFSET places the vocabulary's indexes after Whisper's special tokens in verbose_json `tokens`. */
const TOKEN_ID_OFFSET = 50_365;
/** LANGUAGE_NAMES are the names verbose_json reports for common ISO-639-1 codes, as Whisper does. */
const LANGUAGE_NAMES: ReadonlyMap<string, string> = new Map([
  ["en", "english"],
  ["de", "german"],
  ["fr", "french"],
  ["es", "spanish"],
  ["it", "italian"],
  ["pt", "portuguese"],
  ["nl", "dutch"],
  ["ru", "russian"],
  ["ja", "japanese"],
  ["zh", "chinese"],
  ["ko", "korean"],
  ["pl", "polish"],
]);

/**
 * answerTranscription answers POST /v1/audio/transcriptions like OpenAI: the transcript is derived from the uploaded
 * bytes (see simulated-transcript.ts) and answered as json, text, srt, vtt or verbose_json, or streamed as
 * `transcript.text.delta` events (one per word) and a final `transcript.text.done`, with no [DONE] after it.
 */
export function answerTranscription(context: MediaContext, form: UploadedForm): void {
  const { res, config } = context;
  const field = (name: string): string | undefined => form.fields.get(name)?.at(-1);
  const streamField = field("stream")?.toLowerCase();
  const stream = streamField === "true";
  context.note(field("model"), stream);
  const model = pickModel(context, field("model"), "stt");
  if (model === undefined) return;
  if (streamField !== undefined && streamField !== "true" && streamField !== "false") {
    sendError(res, invalidValue("stream", "'stream' must be true or false."));
    return;
  }
  const upload = checkAudioUpload(context, form);
  if (upload === undefined) return;
  const { file, format, temperature } = upload;
  const granularities = [...(form.fields.get("timestamp_granularities[]") ?? []), ...(form.fields.get("timestamp_granularities") ?? [])];
  const unknown = granularities.find((granularity) => !GRANULARITIES.includes(granularity));
  if (unknown !== undefined) {
    sendError(res, invalidValue("timestamp_granularities", `'timestamp_granularities' values must be word or segment; got '${unknown}'.`));
    return;
  }
  const pacing = formPacing(form.fields, config);
  if (isError(pacing)) {
    sendError(res, pacing);
    return;
  }

  const transcript = transcriptOf(file);
  if (stream) {
    const usage = {
      type: "tokens",
      input_tokens: 0,
      input_token_details: {
        text_tokens: promptTokenCount(field("prompt") ?? ""),
        audio_tokens: Math.ceil(transcript.durationSeconds * AUDIO_TOKENS_PER_SECOND),
      },
      output_tokens: transcript.deltas.length,
      total_tokens: 0,
    };
    usage.input_tokens = usage.input_token_details.text_tokens + usage.input_token_details.audio_tokens;
    usage.total_tokens = usage.input_tokens + usage.output_tokens;
    context.play({
      headers: MEDIA_SSE_HEADERS,
      sized: false,
      units: transcript.deltas.length,
      unit: (index) => sseFrame(JSON.stringify({ type: "transcript.text.delta", delta: transcript.deltas[index] ?? "" })),
      closing: () => sseFrame(JSON.stringify({ type: "transcript.text.done", text: transcript.text, usage })),
      firstDelayMs: pacing.firstDelayMs,
      intervalMs: pacing.wordIntervalMs,
      failure: pacing.failure,
      framing: "sse",
    });
    return;
  }
  const verbose = {
    task: "transcribe",
    language: LANGUAGE_NAMES.get(field("language") ?? "en") ?? field("language") ?? "english",
    temperature,
    words: granularities.includes("word"),
    segments: granularities.length === 0 || granularities.includes("segment"),
  };
  context.play(
    wholeAnswer(pacing, transcriptContentType(format), () =>
      transcriptionBody(transcript, format, verbose, { type: "duration", seconds: Math.ceil(transcript.durationSeconds) }),
    ),
  );
}

/** CheckedAudioUpload is the part of an audio request that transcriptions and translations read alike. */
export interface CheckedAudioUpload {
  readonly file: UploadedFile;
  readonly format: TranscriptionFormat;
  /** temperature is the sampling temperature asked for, 0 when absent. */
  readonly temperature: number;
}

/**
 * checkAudioUpload checks an audio request's file, response_format and temperature as OpenAI does; undefined once the
 * refusal has been answered.
 */
export function checkAudioUpload(context: MediaContext, form: UploadedForm): CheckedAudioUpload | undefined {
  const { res } = context;
  const field = (name: string): string | undefined => form.fields.get(name)?.at(-1);
  const file = form.files.find((upload) => upload.field === "file");
  if (file === undefined) {
    sendError(res, missingParameter("file"));
    return undefined;
  }
  if (file.size === 0) {
    sendError(res, openAiError(400, "The audio file could not be decoded or its format is not supported.", "file", "invalid_value"));
    return undefined;
  }
  const format = field("response_format") ?? "json";
  if (!isTranscriptionFormat(format)) {
    sendError(
      res,
      invalidValue("response_format", `'response_format' must be one of ${TRANSCRIPTION_FORMATS.join(", ")}; got '${format}'.`),
    );
    return undefined;
  }
  const temperature = field("temperature");
  if (temperature !== undefined && !(temperature.trim() !== "" && Number(temperature) >= 0 && Number(temperature) <= 1)) {
    sendError(res, invalidValue("temperature", `'temperature' must be a number between 0 and 1; got '${temperature}'.`));
    return undefined;
  }
  return { file, format, temperature: temperature === undefined ? 0 : Number(temperature) };
}

/** transcriptContentType is the content type of a transcript answered in format. */
export function transcriptContentType(format: TranscriptionFormat): string {
  return format === "text" || format === "srt" || format === "vtt" ? TEXT_CONTENT_TYPE : JSON_CONTENT_TYPE;
}

function isTranscriptionFormat(format: string): format is TranscriptionFormat {
  return (TRANSCRIPTION_FORMATS as readonly string[]).includes(format);
}

/** VerboseOptions are what a verbose_json transcript says besides the transcript. */
export interface VerboseOptions {
  /** task is Whisper's: "transcribe" or "translate". */
  readonly task: string;
  readonly language: string;
  readonly temperature: number;
  readonly words: boolean;
  readonly segments: boolean;
}

/**
 * transcriptionBody writes a transcript in one of the non-streamed formats; usage, which OpenAI reports for
 * transcriptions only, is left out when undefined.
 */
export function transcriptionBody(
  transcript: SimulatedTranscript,
  format: TranscriptionFormat,
  verbose: VerboseOptions,
  usage: Readonly<Record<string, unknown>> | undefined,
): string {
  switch (format) {
    case "json":
      return JSON.stringify({ text: transcript.text, ...(usage === undefined ? {} : { usage }) });
    case "text":
      return transcript.text;
    case "srt":
      return srtText(transcript);
    case "vtt":
      return vttText(transcript);
    case "verbose_json":
      return JSON.stringify({
        task: verbose.task,
        language: verbose.language,
        duration: transcript.durationSeconds,
        text: transcript.text,
        ...(verbose.segments ? { segments: transcript.segments.map((segment) => verboseSegment(segment, verbose.temperature)) } : {}),
        ...(verbose.words ? { words: transcript.words } : {}),
        ...(usage === undefined ? {} : { usage }),
      });
  }
}

function verboseSegment(segment: SimulatedTranscript["segments"][number], temperature: number): Record<string, unknown> {
  const tokens = segment.text
    .replace(/\.$/, "")
    .trim()
    .split(" ")
    .map((word) => TOKEN_ID_OFFSET + SIMULATED_WORDS.indexOf(word.toLowerCase()));
  return {
    id: segment.id,
    seek: 0,
    start: segment.start,
    end: segment.end,
    text: segment.text,
    tokens,
    temperature,
    avg_logprob: -0.25,
    compression_ratio: 1.2,
    no_speech_prob: 0.01,
  };
}
