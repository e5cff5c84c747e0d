import type { AudioEncoder, SpeechFormat } from "./audio-encoder.js";
import { createAudioEncoder } from "./audio-encoder.js";

// Content rules of the simulator's speech, shared by the speech route and by tests that predict it:
// - the audio is 24 kHz mono 16-bit and lasts SPEECH_MS_PER_CHARACTER per character (code point) of the input,
//   divided by speed: speechSampleCount(input, speed) = round(characters * 1440 / speed) samples;
// - each character gets an equal share of the samples and sounds as a tone whose pitch follows its code point;
//   whitespace is silence (the tone survives in wav, pcm and flac; mp3, aac and opus carry framed silence);
// - the audio is produced in SPEECH_CHUNK_COUNT chunks of equal sample counts, each encoded when it is due.

/** SPEECH_SAMPLE_RATE is the rate of all simulated speech (Hz), OpenAI's rate for its pcm format. */
export const SPEECH_SAMPLE_RATE = 24_000;
/** SPEECH_MS_PER_CHARACTER is how long one input character is spoken at speed 1. */
export const SPEECH_MS_PER_CHARACTER = 60;
/** SPEECH_CHUNK_COUNT is how many chunks an answer is produced (and paced) in. */
export const SPEECH_CHUNK_COUNT = 20;
/** TONE_AMPLITUDE keeps the tones well below full scale. */
const TONE_AMPLITUDE = 0.25 * 32767;
/**
 * SINE_TABLE holds one sine period in SPEECH_SAMPLE_RATE steps: tones have whole-hertz pitches, so sample `at` of a
 * tone of `hz` is SINE_TABLE[(hz * at) % SPEECH_SAMPLE_RATE] exactly, with no Math.sin per sample (long answers have
 * millions of samples).
 */
const SINE_TABLE: Int16Array = Int16Array.from({ length: SPEECH_SAMPLE_RATE }, (_, step) =>
  Math.round(Math.sin((2 * Math.PI * step) / SPEECH_SAMPLE_RATE) * TONE_AMPLITUDE),
);

/** speechCharacters counts the input's characters as code points, so that an emoji counts once. */
export function speechCharacters(input: string): number {
  let count = 0;
  for (const _ of input) count++;
  return count;
}

/** speechSampleCount is the number of samples the simulator speaks input in at speed. */
export function speechSampleCount(input: string, speed = 1): number {
  return Math.round((speechCharacters(input) * SPEECH_MS_PER_CHARACTER * SPEECH_SAMPLE_RATE) / 1000 / speed);
}

/** speechDurationMs is the duration of the simulator's speech for input at speed, in milliseconds. */
export function speechDurationMs(input: string, speed = 1): number {
  return (speechSampleCount(input, speed) * 1000) / SPEECH_SAMPLE_RATE;
}

/**
 * SpeechRender produces one answer's audio chunk by chunk; chunk(i) must be called for i = 0, 1, ... in order, and
 * the last chunk carries the container's closing bytes. Only the current chunk's samples are in memory.
 */
export class SpeechRender {
  readonly totalSamples: number;
  readonly chunkCount: number;
  private readonly codePoints: readonly number[];
  private readonly samplesPerCharacter: number;
  private readonly encoder: AudioEncoder;

  constructor(input: string, format: SpeechFormat, speed: number) {
    this.codePoints = Array.from(input, (character) => character.codePointAt(0) ?? 0);
    this.totalSamples = speechSampleCount(input, speed);
    this.chunkCount = Math.max(1, Math.min(SPEECH_CHUNK_COUNT, this.totalSamples));
    this.samplesPerCharacter = this.codePoints.length === 0 ? 1 : this.totalSamples / this.codePoints.length;
    this.encoder = createAudioEncoder(format, SPEECH_SAMPLE_RATE, this.totalSamples);
  }

  /** chunk encodes chunk index (0-based) of chunkCount. */
  chunk(index: number): Buffer {
    const from = Math.floor((this.totalSamples * index) / this.chunkCount);
    const to = Math.floor((this.totalSamples * (index + 1)) / this.chunkCount);
    const bytes = this.encoder.push(this.samples(from, to));
    return index === this.chunkCount - 1 ? Buffer.concat([bytes, this.encoder.finish()]) : bytes;
  }

  private samples(from: number, to: number): Int16Array {
    const samples = new Int16Array(to - from);
    // Silent containers only count samples; computing tones for them would be wasted work.
    if (this.encoder.silent) return samples;
    const last = this.codePoints.length - 1;
    let at = from;
    while (at < to) {
      // One run per character: its samples share a pitch, so the sine table is walked with a fixed step.
      const character = Math.min(last, Math.floor(at / this.samplesPerCharacter));
      const runEnd = character === last ? to : Math.max(at + 1, Math.min(to, Math.ceil((character + 1) * this.samplesPerCharacter)));
      const codePoint = this.codePoints[character] ?? 32;
      if (isSilent(codePoint)) {
        at = runEnd;
        continue;
      }
      const hz = 200 + ((codePoint * 37) % 600);
      let step = (hz * at) % SPEECH_SAMPLE_RATE;
      for (; at < runEnd; at++) {
        samples[at - from] = SINE_TABLE[step] ?? 0;
        step += hz;
        if (step >= SPEECH_SAMPLE_RATE) step -= SPEECH_SAMPLE_RATE;
      }
    }
    return samples;
  }
}

function isSilent(codePoint: number): boolean {
  return codePoint === 32 || (codePoint >= 9 && codePoint <= 13) || codePoint === 0xa0;
}

/** expectedSpeech is the whole audio file the simulator answers for input in format at speed. */
export function expectedSpeech(input: string, format: SpeechFormat, speed = 1): Buffer {
  const render = new SpeechRender(input, format, speed);
  const chunks: Buffer[] = [];
  for (let index = 0; index < render.chunkCount; index++) chunks.push(render.chunk(index));
  return Buffer.concat(chunks);
}
