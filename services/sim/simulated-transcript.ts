import { createHash } from "node:crypto";
import { FILE_HEAD_BYTES } from "./form-upload.js";
import { SIMULATED_WORDS, tokenWordIndex } from "./simulated-text.js";
import { wavDurationSeconds } from "./wav-encoder.js";

// Content rules of the simulator's transcripts, shared by the transcription route and by tests that predict them:
// - the audio's duration is read from the header of a WAV upload, else assumed from its size at
//   ASSUMED_BYTES_PER_SECOND (128 kbit/s, a typical compressed rate);
// - the transcript has max(1, round(duration * TRANSCRIPT_WORDS_PER_SECOND)) words, picked from the simulator's
//   vocabulary by a seed made of the first 4 bytes of the upload's SHA-256, so that the same bytes always give the
//   same words and any other bytes almost surely different ones;
// - words are spread evenly over the duration and grouped in segments of WORDS_PER_SEGMENT; each segment is a
//   sentence (first word capitalised, a full stop at the end) and the text is the sentences joined by spaces;
// - a translation (/v1/audio/translations) follows the same rules with a seed made of the next 4 bytes of the
//   SHA-256, so that it has the transcript's length and timing but other words, and tests can tell the two apart.

/** TRANSCRIPT_WORDS_PER_SECOND is the simulated speaking rate (150 words a minute). */
export const TRANSCRIPT_WORDS_PER_SECOND = 2.5;
/** ASSUMED_BYTES_PER_SECOND turns the size of an upload that is not a WAV file into a duration. */
export const ASSUMED_BYTES_PER_SECOND = 16_000;
/** WORDS_PER_SEGMENT is how many words a transcript segment (a sentence) has, the last one fewer. */
export const WORDS_PER_SEGMENT = 8;

/** TranscriptWord is a word with its timing, as in verbose_json `words`. */
export interface TranscriptWord {
  readonly word: string;
  /** start and end are in seconds, rounded to milliseconds. */
  readonly start: number;
  readonly end: number;
}

/** TranscriptSegment is a sentence with its timing, as in verbose_json `segments` (text with a leading space). */
export interface TranscriptSegment {
  readonly id: number;
  readonly start: number;
  readonly end: number;
  readonly text: string;
}

/** SimulatedTranscript is everything the simulator answers about one upload. */
export interface SimulatedTranscript {
  readonly text: string;
  /** durationSeconds is the audio's duration, rounded to milliseconds. */
  readonly durationSeconds: number;
  readonly words: readonly TranscriptWord[];
  readonly segments: readonly TranscriptSegment[];
  /** deltas split text per word, as a stream sends it: joined, they are text. */
  readonly deltas: readonly string[];
}

/** AudioUpload is what a transcript is derived from: the upload's SHA-256, its size and its first bytes. */
export interface AudioUpload {
  readonly digest: Uint8Array;
  readonly size: number;
  readonly head: Uint8Array;
}

/** audioDurationSeconds is the duration the simulator hears in an upload (see the rules above). */
export function audioDurationSeconds(upload: Pick<AudioUpload, "size" | "head">): number {
  return wavDurationSeconds(upload.head, upload.size) ?? upload.size / ASSUMED_BYTES_PER_SECOND;
}

/** transcriptOf derives the transcript of an upload. */
export function transcriptOf(upload: AudioUpload): SimulatedTranscript {
  return spokenText(upload, digestWord(upload.digest, 0));
}

/** translationOf derives the English translation of an upload, as /v1/audio/translations answers it. */
export function translationOf(upload: AudioUpload): SimulatedTranscript {
  return spokenText(upload, digestWord(upload.digest, 4));
}

/** digestWord reads 4 bytes of a digest, from offset, as an unsigned big-endian integer. */
function digestWord(digest: Uint8Array, offset: number): number {
  return (digest[offset] ?? 0) * 2 ** 24 + ((digest[offset + 1] ?? 0) << 16) + ((digest[offset + 2] ?? 0) << 8) + (digest[offset + 3] ?? 0);
}

/** spokenText writes the words seed picks over an upload's duration, timed and grouped in sentences. */
function spokenText(upload: AudioUpload, seed: number): SimulatedTranscript {
  const duration = audioDurationSeconds(upload);
  const count = Math.max(1, Math.round(duration * TRANSCRIPT_WORDS_PER_SECOND));
  const words: TranscriptWord[] = [];
  const segments: TranscriptSegment[] = [];
  const deltas: string[] = [];
  let sentence: string[] = [];
  for (let index = 0; index < count; index++) {
    const opening = index % WORDS_PER_SEGMENT === 0;
    const closing = index % WORDS_PER_SEGMENT === WORDS_PER_SEGMENT - 1 || index === count - 1;
    const picked = SIMULATED_WORDS[tokenWordIndex(seed, index)] ?? "alpha";
    const word = opening ? picked.charAt(0).toUpperCase() + picked.slice(1) : picked;
    const start = roundMs((index * duration) / count);
    const end = roundMs(((index + 1) * duration) / count);
    words.push({ word, start, end });
    deltas.push(`${index === 0 ? "" : " "}${word}${closing ? "." : ""}`);
    sentence.push(word);
    if (closing) {
      const first = words[index + 1 - sentence.length];
      segments.push({ id: segments.length, start: first?.start ?? start, end, text: ` ${sentence.join(" ")}.` });
      sentence = [];
    }
  }
  return { text: deltas.join(""), durationSeconds: roundMs(duration), words, segments, deltas };
}

/** expectedTranscription is the transcript the simulator answers for an upload of fileBytes. */
export function expectedTranscription(fileBytes: Uint8Array): SimulatedTranscript {
  return transcriptOf(uploadOf(fileBytes));
}

/** expectedTranslation is the translation /v1/audio/translations answers for an upload of fileBytes. */
export function expectedTranslation(fileBytes: Uint8Array): SimulatedTranscript {
  return translationOf(uploadOf(fileBytes));
}

function uploadOf(fileBytes: Uint8Array): AudioUpload {
  const digest = createHash("sha256").update(fileBytes).digest();
  // The routes read durations from the first FILE_HEAD_BYTES only; so must the predictions.
  return { digest, size: fileBytes.length, head: fileBytes.subarray(0, FILE_HEAD_BYTES) };
}

/** expectedTranscript is the text the simulator transcribes from an upload of fileBytes. */
export function expectedTranscript(fileBytes: Uint8Array): string {
  return expectedTranscription(fileBytes).text;
}

/** srtText writes a transcript as SubRip subtitles, one cue per segment. */
export function srtText(transcript: SimulatedTranscript): string {
  return transcript.segments
    .map((segment, index) => `${index + 1}\n${timestamp(segment.start, ",")} --> ${timestamp(segment.end, ",")}\n${segment.text.trim()}\n`)
    .join("\n");
}

/** vttText writes a transcript as WebVTT subtitles, one cue per segment. */
export function vttText(transcript: SimulatedTranscript): string {
  const cues = transcript.segments.map(
    (segment) => `${timestamp(segment.start, ".")} --> ${timestamp(segment.end, ".")}\n${segment.text.trim()}\n`,
  );
  return `WEBVTT\n\n${cues.join("\n")}`;
}

/** timestamp writes seconds as HH:MM:SS followed by separator and milliseconds. */
function timestamp(seconds: number, separator: string): string {
  const totalMs = Math.round(seconds * 1000);
  const pad = (value: number, width: number): string => String(value).padStart(width, "0");
  const hours = Math.floor(totalMs / 3_600_000);
  const minutes = Math.floor(totalMs / 60_000) % 60;
  const wholeSeconds = Math.floor(totalMs / 1000) % 60;
  return `${pad(hours, 2)}:${pad(minutes, 2)}:${pad(wholeSeconds, 2)}${separator}${pad(totalMs % 1000, 3)}`;
}

function roundMs(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}
