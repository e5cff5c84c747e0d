import type { AudioEncoder } from "./audio-encoder.js";

// MP3 and AAC need real psychoacoustic encoders to carry a tone, which a fixture does not need: these encoders write
// correctly framed SILENT frames, as many as the samples pushed call for, so that containers, frame lengths and
// durations are right and decoders play silence of the right length.

/** MP3_FRAME_SAMPLES is the samples per frame of MPEG-2 Layer III (the MPEG version for 16-24 kHz). */
const MP3_FRAME_SAMPLES = 576;
/**
 * MP3_FRAME_HEADER is an MPEG-2 Layer III header: sync, no CRC, 32 kbit/s (index 4), 24 kHz (index 1), no padding,
 * mono. At that rate a frame is 72 * 32000 / 24000 = 96 bytes.
 */
const MP3_FRAME_HEADER: readonly number[] = [0xff, 0xf3, 0x44, 0xc0];
const MP3_FRAME_BYTES = 96;
/** MP3_SAMPLE_RATE is the only rate MP3_FRAME_HEADER declares. */
const MP3_SAMPLE_RATE = 24_000;

/** AAC_FRAME_SAMPLES is the samples per AAC-LC frame. */
const AAC_FRAME_SAMPLES = 1024;
/** ADTS_SAMPLE_RATE_INDEXES are the ADTS sampling frequency indexes. */
const ADTS_SAMPLE_RATE_INDEXES: readonly number[] = [
  96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000, 7_350,
];
/**
 * SILENT_AAC_BLOCK is one mono AAC-LC raw data block without spectral data: a single channel element (global gain
 * 100, a long window, max_sfb 0, no pulse, TNS or gain control data), then the END element, 32 bits in all.
 */
const SILENT_AAC_BLOCK: readonly number[] = [0x00, 0xc8, 0x00, 0x07];

/** FrameCounter turns pushed samples into a number of whole frames due now, the remainder going out at the end. */
class FrameCounter {
  private samplesIn = 0;
  private framesOut = 0;

  constructor(private readonly frameSamples: number) {}

  /** due is how many frames the samples pushed so far complete and were not yet written. */
  due(pushed: number): number {
    this.samplesIn += pushed;
    const ready = Math.floor(this.samplesIn / this.frameSamples) - this.framesOut;
    this.framesOut += ready;
    return ready;
  }

  /** rest is the frames still owed at the end: the partial frame, if any. */
  rest(): number {
    const total = Math.ceil(this.samplesIn / this.frameSamples);
    const owed = total - this.framesOut;
    this.framesOut = total;
    return owed;
  }
}

/**
 * Mp3Encoder writes an ID3v2.4 tag (one TSSE frame naming the encoder) and silent MPEG-2 Layer III frames at 24 kHz
 * mono, each 96 bytes, header 0xFFF3.
 */
export class Mp3Encoder implements AudioEncoder {
  readonly silent = true;
  private tagged = false;
  private readonly frames = new FrameCounter(MP3_FRAME_SAMPLES);

  constructor(sampleRate: number) {
    if (sampleRate !== MP3_SAMPLE_RATE) throw new RangeError(`Mp3Encoder: only ${MP3_SAMPLE_RATE} Hz is supported`);
  }

  push(samples: Int16Array): Buffer {
    return this.write(this.frames.due(samples.length));
  }

  finish(): Buffer {
    return this.write(this.frames.rest());
  }

  private write(count: number): Buffer {
    const tag = this.tagged ? Buffer.alloc(0) : id3Tag("infermesh simulator");
    this.tagged = true;
    const out = Buffer.alloc(tag.length + count * MP3_FRAME_BYTES);
    tag.copy(out);
    for (let frame = 0; frame < count; frame++) out.set(MP3_FRAME_HEADER, tag.length + frame * MP3_FRAME_BYTES);
    // The rest of each frame stays zero: empty side information and main data decode as silence.
    return out;
  }
}

/** id3Tag is an ID3v2.4 tag holding one TSSE (encoder settings) text frame in UTF-8. */
function id3Tag(encoder: string): Buffer {
  const text = Buffer.concat([Buffer.from([0x03]), Buffer.from(encoder, "utf8")]);
  const frame = Buffer.alloc(10 + text.length);
  frame.write("TSSE", 0, "latin1");
  frame.writeUInt32BE(syncsafe(text.length), 4);
  text.copy(frame, 10);
  const header = Buffer.alloc(10);
  header.write("ID3", 0, "latin1");
  header[3] = 4; // version 2.4.0
  header.writeUInt32BE(syncsafe(frame.length), 6);
  return Buffer.concat([header, frame]);
}

/** syncsafe spreads a size over 4 bytes of 7 bits each, as ID3v2 sizes are written. */
function syncsafe(size: number): number {
  return ((size & 0x0fe00000) << 3) | ((size & 0x001fc000) << 2) | ((size & 0x00003f80) << 1) | (size & 0x7f);
}

/** AdtsAacEncoder writes AAC-LC mono frames in ADTS framing (sync 0xFFF1, exact frame lengths), each silent. */
export class AdtsAacEncoder implements AudioEncoder {
  readonly silent = true;
  private readonly frames = new FrameCounter(AAC_FRAME_SAMPLES);
  private readonly frame: Buffer;

  constructor(sampleRate: number) {
    const rateIndex = ADTS_SAMPLE_RATE_INDEXES.indexOf(sampleRate);
    if (rateIndex === -1) throw new RangeError(`AdtsAacEncoder: ${sampleRate} Hz has no ADTS sampling index`);
    const length = 7 + SILENT_AAC_BLOCK.length;
    const profile = 1; // AAC LC (object type 2, written minus one)
    const channels = 1;
    const fullness = 0x7ff; // variable bit rate
    this.frame = Buffer.from([
      0xff,
      0xf1, // sync, MPEG-4, layer 0, no CRC
      (profile << 6) | (rateIndex << 2) | (channels >> 2),
      ((channels & 3) << 6) | (length >> 11),
      (length >> 3) & 0xff,
      ((length & 7) << 5) | (fullness >> 6),
      ((fullness & 0x3f) << 2) | 0, // one raw data block
      ...SILENT_AAC_BLOCK,
    ]);
  }

  push(samples: Int16Array): Buffer {
    return this.write(this.frames.due(samples.length));
  }

  finish(): Buffer {
    return this.write(this.frames.rest());
  }

  private write(count: number): Buffer {
    const out = Buffer.alloc(count * this.frame.length);
    for (let frame = 0; frame < count; frame++) this.frame.copy(out, frame * this.frame.length);
    return out;
  }
}
