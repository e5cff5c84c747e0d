import { FlacEncoder } from "./flac-encoder.js";
import { AdtsAacEncoder, Mp3Encoder } from "./mpeg-audio-encoders.js";
import { OggOpusEncoder } from "./ogg-opus-encoder.js";
import { int16le, wavHeader } from "./wav-encoder.js";

/** SpeechFormat is a `response_format` of /v1/audio/speech. */
export type SpeechFormat = "mp3" | "opus" | "aac" | "flac" | "wav" | "pcm";

/** SPEECH_FORMATS lists the speech formats, the default (mp3) first. */
export const SPEECH_FORMATS: readonly SpeechFormat[] = Object.freeze(["mp3", "opus", "aac", "flac", "wav", "pcm"]);

/** SPEECH_CONTENT_TYPES is the Content-Type of each speech format's answer. */
export const SPEECH_CONTENT_TYPES: Readonly<Record<SpeechFormat, string>> = Object.freeze({
  mp3: "audio/mpeg",
  opus: "audio/ogg",
  aac: "audio/aac",
  flac: "audio/flac",
  wav: "audio/wav",
  pcm: "audio/pcm",
});

/**
 * AudioEncoder turns mono 16-bit samples into one container format incrementally, so that speech can be sent chunk
 * by chunk: push returns the bytes ready so far (the container's header with the first call), finish the rest.
 */
export interface AudioEncoder {
  /** silent is set for encoders that write framed silence and only count the samples they are pushed. */
  readonly silent: boolean;
  push(samples: Int16Array): Buffer;
  finish(): Buffer;
}

/** createAudioEncoder makes the encoder of format for totalSamples samples at sampleRate. */
export function createAudioEncoder(format: SpeechFormat, sampleRate: number, totalSamples: number): AudioEncoder {
  switch (format) {
    case "mp3":
      return new Mp3Encoder(sampleRate);
    case "opus":
      return new OggOpusEncoder(sampleRate, totalSamples);
    case "aac":
      return new AdtsAacEncoder(sampleRate);
    case "flac":
      return new FlacEncoder(sampleRate, totalSamples);
    case "wav":
      return new WavEncoder(sampleRate, totalSamples);
    case "pcm":
      return new PcmEncoder();
  }
}

/** PcmEncoder writes raw signed 16-bit little-endian samples, OpenAI's `pcm` format. */
class PcmEncoder implements AudioEncoder {
  readonly silent = false;

  push(samples: Int16Array): Buffer {
    return int16le(samples);
  }

  finish(): Buffer {
    return Buffer.alloc(0);
  }
}

/** WavEncoder writes a WAV file whose header, written first, already holds the final sizes. */
class WavEncoder implements AudioEncoder {
  readonly silent = false;
  private started = false;

  constructor(
    private readonly sampleRate: number,
    private readonly totalSamples: number,
  ) {}

  push(samples: Int16Array): Buffer {
    return Buffer.concat([this.header(), int16le(samples)]);
  }

  finish(): Buffer {
    return this.header();
  }

  private header(): Buffer {
    if (this.started) return Buffer.alloc(0);
    this.started = true;
    return wavHeader(this.sampleRate, this.totalSamples * 2);
  }
}
