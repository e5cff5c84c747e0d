import type { SpeechFormat } from "./audio-encoder.js";
import { SPEECH_CONTENT_TYPES, SPEECH_FORMATS } from "./audio-encoder.js";
import { sendError } from "./http-replies.js";
import type { MediaContext } from "./media-replies.js";
import { isError, MEDIA_SSE_HEADERS, mediaPacing, pickModel } from "./media-replies.js";
import { invalidValue, missingParameter } from "./openai-errors.js";
import { SpeechRender, speechCharacters } from "./simulated-speech.js";
import { promptTokenCount } from "./simulated-text.js";
import { sseFrame } from "./sse.js";

/** MAX_SPEECH_CHARACTERS bounds `input`, as OpenAI does. */
export const MAX_SPEECH_CHARACTERS = 4096;
/** MIN_SPEED is the slowest `speed` OpenAI accepts. */
const MIN_SPEED = 0.25;
/** MAX_SPEED is the fastest `speed` OpenAI accepts. */
const MAX_SPEED = 4;
/** SAMPLES_PER_OUTPUT_TOKEN turns audio into the output tokens an SSE answer's usage reports (one per 20 ms). */
const SAMPLES_PER_OUTPUT_TOKEN = 480;

/**
 * answerSpeech answers POST /v1/audio/speech: audio whose duration follows the input (see simulated-speech.ts) in the
 * requested container, sent in chunks paced by chunkIntervalMs, so that clients receive the first bytes long before
 * the last; with `stream_format: "sse"` each chunk is a base64 `speech.audio.delta` event, then `speech.audio.done`.
 */
export function answerSpeech(context: MediaContext, body: unknown): void {
  const { res } = context;
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    sendError(res, invalidValue("body", "The request body must be a JSON object."));
    return;
  }
  const fields = body as Readonly<Record<string, unknown>>;
  context.note(typeof fields["model"] === "string" ? fields["model"] : undefined, true);
  if (pickModel(context, fields["model"], "tts") === undefined) return;
  const input = fields["input"];
  if (input === undefined || input === null || input === "") {
    sendError(res, missingParameter("input"));
    return;
  }
  if (typeof input !== "string") {
    sendError(res, invalidValue("input", "'input' must be a string."));
    return;
  }
  if (speechCharacters(input) > MAX_SPEECH_CHARACTERS) {
    sendError(res, invalidValue("input", `'input' is longer than ${MAX_SPEECH_CHARACTERS} characters.`));
    return;
  }
  const voice = fields["voice"];
  const voiceId = typeof voice === "object" && voice !== null ? (voice as Readonly<Record<string, unknown>>)["id"] : undefined;
  if (voice !== undefined && typeof voice !== "string" && typeof voiceId !== "string") {
    sendError(res, invalidValue("voice", "'voice' must be a voice name or an object with an 'id'."));
    return;
  }
  const format = fields["response_format"] ?? "mp3";
  if (!(SPEECH_FORMATS as readonly unknown[]).includes(format)) {
    sendError(res, invalidValue("response_format", `'response_format' must be one of ${SPEECH_FORMATS.join(", ")}.`));
    return;
  }
  const speed = fields["speed"] ?? 1;
  if (typeof speed !== "number" || !(speed >= MIN_SPEED && speed <= MAX_SPEED)) {
    sendError(res, invalidValue("speed", `'speed' must be a number from ${MIN_SPEED} to ${MAX_SPEED}.`));
    return;
  }
  const instructions = fields["instructions"];
  if (instructions !== undefined && typeof instructions !== "string") {
    sendError(res, invalidValue("instructions", "'instructions' must be a string."));
    return;
  }
  const streamFormat = fields["stream_format"] ?? "audio";
  if (streamFormat !== "audio" && streamFormat !== "sse") {
    sendError(res, invalidValue("stream_format", "'stream_format' must be 'audio' or 'sse'."));
    return;
  }
  const pacing = mediaPacing(fields["sim"], context.config);
  if (isError(pacing)) {
    sendError(res, pacing);
    return;
  }

  const render = new SpeechRender(input, format as SpeechFormat, speed);
  const timing = {
    firstDelayMs: pacing.firstDelayMs,
    intervalMs: pacing.chunkIntervalMs,
    failure: pacing.failure,
    units: render.chunkCount,
  };
  if (streamFormat === "audio") {
    context.play({
      ...timing,
      headers: { "Content-Type": SPEECH_CONTENT_TYPES[format as SpeechFormat] },
      sized: false,
      unit: (index) => render.chunk(index),
      closing: undefined,
      framing: "body",
    });
    return;
  }
  const inputTokens = promptTokenCount(input);
  const outputTokens = Math.ceil(render.totalSamples / SAMPLES_PER_OUTPUT_TOKEN);
  context.play({
    ...timing,
    headers: MEDIA_SSE_HEADERS,
    sized: false,
    unit: (index) => sseFrame(JSON.stringify({ type: "speech.audio.delta", audio: render.chunk(index).toString("base64") })),
    closing: () =>
      sseFrame(
        JSON.stringify({
          type: "speech.audio.done",
          usage: { input_tokens: inputTokens, output_tokens: outputTokens, total_tokens: inputTokens + outputTokens },
        }),
      ),
    framing: "sse",
  });
}
