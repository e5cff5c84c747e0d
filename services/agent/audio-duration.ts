/*
 * The length of audio, read from its bytes as they pass, for the speech formats OpenAI names: wav (the RIFF header's
 * data size over its byte rate), pcm (OpenAI's is 24 kHz, 16-bit, mono: bytes / 48,000), mp3 (MPEG audio frames
 * walked header to header, after any ID3v2 tag, or the frame count of a Xing, Info or VBRI header), flac (STREAMINFO's
 * total samples over its rate, or the frames' own sample positions when a streaming encoder left the total 0), opus in
 * Ogg (the last page's granule position less the pre-skip, over 48,000; Vorbis in Ogg too) and aac in ADTS (frames ×
 * 1,024 samples over the rate). Every reader walks the stream incrementally and keeps only a few header bytes, never
 * the body: a speech answer may be tens of MiB. Bytes that are not one of these formats, or that break the format's
 * rules before any audio was read, have no duration: undefined, never an exception.
 */

/** AudioFormat is a format of OpenAI's speech (`response_format`). */
export type AudioFormat = "mp3" | "opus" | "aac" | "flac" | "wav" | "pcm";

/** PCM_BYTES_PER_SECOND is OpenAI's headerless pcm: 24,000 samples a second of 16 bits, one channel. */
export const PCM_BYTES_PER_SECOND = 48_000;

/** SNIFF_BYTES are enough of a stream's start to tell its container ("RIFF....WAVE" is the longest signature). */
const SNIFF_BYTES = 12;

/**
 * audioDurationSeconds is the length in seconds of the audio in bytes, or undefined when they are not audio it reads.
 * declared is the format the server or the request names: bytes that start with a container's signature are read as
 * that container whatever was declared, and only pcm, which has no signature, needs declaring.
 */
export function audioDurationSeconds(bytes: Uint8Array, declared?: AudioFormat): number | undefined {
  const meter = new AudioDurationMeter(declared);
  meter.push(bytes);
  return meter.seconds();
}

/**
 * AudioDurationMeter measures audio that arrives in pieces: push each piece in order, then ask seconds(). It keeps a
 * few header bytes and counters, whatever the length of the audio (see audioDurationSeconds for declared).
 */
export class AudioDurationMeter {
  readonly #declared: AudioFormat | undefined;
  #head: Uint8Array = new Uint8Array(0);
  #reader: AudioReader | undefined;
  #unreadable = false;

  constructor(declared?: AudioFormat) {
    this.#declared = declared;
  }

  /** push reads the next piece of the audio. */
  push(chunk: Uint8Array): void {
    if (this.#unreadable || chunk.length === 0) return;
    if (this.#reader) {
      this.#read(this.#reader, chunk);
      return;
    }
    this.#head = joined(this.#head, chunk);
    if (this.#head.length >= SNIFF_BYTES) this.#start();
  }

  /** seconds is the length of the audio pushed so far, or undefined when it is not audio this meter reads. */
  seconds(): number | undefined {
    if (!this.#reader && !this.#unreadable && this.#head.length > 0) this.#start();
    if (this.#unreadable || !this.#reader) return undefined;
    try {
      const seconds = this.#reader.seconds();
      return seconds !== undefined && Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
    } catch {
      return undefined;
    }
  }

  #start(): void {
    const head = this.#head;
    this.#head = new Uint8Array(0);
    const reader = readerFor(head, this.#declared);
    if (!reader) {
      this.#unreadable = true;
      return;
    }
    this.#reader = reader;
    this.#read(reader, head);
  }

  #read(reader: AudioReader, chunk: Uint8Array): void {
    try {
      reader.push(chunk);
    } catch {
      this.#unreadable = true;
    }
  }
}

/** AudioReader reads one container incrementally; it throws NotAudio when the bytes break the container's rules. */
interface AudioReader {
  push(chunk: Uint8Array): void;
  seconds(): number | undefined;
}

class NotAudio extends Error {
  override readonly name = "NotAudio";
}

/** readerFor picks the reader of the container the stream's first bytes announce, or of the declared pcm. */
function readerFor(head: Uint8Array, declared: AudioFormat | undefined): AudioReader | undefined {
  const tag = ascii(head, 0, 4);
  if ((tag === "RIFF" || tag === "RF64") && ascii(head, 8, 12) === "WAVE") return new WavReader();
  if (tag === "fLaC") return new FlacReader();
  if (tag === "OggS") return new OggReader();
  if (ascii(head, 0, 3) === "ID3") return new FrameReader();
  // Raw samples may begin with anything, a frame sync included: only the signatures above override a declared pcm.
  if (declared === "pcm") return new PcmReader();
  if (head.length >= 4 && frameAt(head, 0) !== undefined) return new FrameReader();
  return undefined;
}

/**
 * ChunkWalker reads a container header by header as its bytes arrive: bytes a header needs that have not all come
 * yet wait for the next chunk, and bodies nobody needs are skipped unread.
 */
abstract class ChunkWalker implements AudioReader {
  #carry: Uint8Array = new Uint8Array(0);
  /** skip is how many bytes to pass over before the next header. */
  protected skip = 0;
  /** ended stops the walk: the length is known, or what follows is not this container's. */
  protected ended = false;

  push(chunk: Uint8Array): void {
    if (this.ended) return;
    const data = concat(this.#carry, chunk);
    let at = 0;
    while (at < data.length && !this.ended) {
      if (this.skip > 0) {
        const skipped = Math.min(this.skip, data.length - at);
        this.skip -= skipped;
        at += skipped;
        continue;
      }
      const next = this.step(data, at);
      if (next === undefined) break;
      at = next;
    }
    this.#carry = this.ended ? new Uint8Array(0) : copied(data, at);
  }

  abstract seconds(): number | undefined;

  /** step reads what starts at `at` and returns where reading goes on, or undefined to wait for more bytes. */
  protected abstract step(data: Uint8Array, at: number): number | undefined;
}

/** PcmReader counts OpenAI's pcm bytes. */
class PcmReader implements AudioReader {
  #bytes = 0;

  push(chunk: Uint8Array): void {
    this.#bytes += chunk.length;
  }

  seconds(): number {
    return this.#bytes / PCM_BYTES_PER_SECOND;
  }
}

/** WAV_HEAD_LIMIT bounds the bytes before the data chunk (fmt, LIST, fact, ...) kept to find it. */
const WAV_HEAD_LIMIT = 64 * 1024;
/** UNKNOWN_SIZES are the data sizes a streaming writer leaves, not knowing the length (0xFFFFFFFF is also RF64's). */
const UNKNOWN_SIZES = new Set([0, 0xffff_ffff]);

/** WavData is where a WAV file's data chunk starts, the size its header states and the fmt chunk's byte rate. */
interface WavData {
  readonly offset: number;
  readonly size: number;
  readonly byteRate: number;
}

/**
 * WavReader reads a RIFF (or RF64) WAVE header up to the data chunk and then only counts bytes: the length is the
 * data chunk's size over the fmt chunk's byte rate, or, when the size is unknown (0 or 0xFFFFFFFF, as streamed WAV
 * leaves it) or larger than what arrived, the data bytes that did arrive.
 */
class WavReader implements AudioReader {
  #head: Uint8Array = new Uint8Array(0);
  #total = 0;
  #data: WavData | undefined;

  push(chunk: Uint8Array): void {
    this.#total += chunk.length;
    if (this.#data) return;
    this.#head = joined(this.#head, chunk.subarray(0, WAV_HEAD_LIMIT - this.#head.length));
    this.#data = this.#findData();
    if (this.#data) this.#head = new Uint8Array(0);
  }

  seconds(): number | undefined {
    if (!this.#data) return undefined;
    const { offset, size, byteRate } = this.#data;
    const arrived = Math.max(0, this.#total - offset);
    return (UNKNOWN_SIZES.has(size) || size > arrived ? arrived : size) / byteRate;
  }

  #findData(): WavData | undefined {
    const head = this.#head;
    let byteRate: number | undefined;
    for (let offset = 12; offset + 8 <= head.length; ) {
      const id = ascii(head, offset, offset + 4);
      const size = uint32le(head, offset + 4);
      if (id === "fmt ") {
        if (offset + 20 > head.length) return undefined;
        byteRate = uint32le(head, offset + 16);
      } else if (id === "data") {
        if (!byteRate) throw new NotAudio("a WAV data chunk without a byte rate before it");
        return { offset: offset + 8, size, byteRate };
      }
      // RIFF chunks are padded to an even size.
      offset += 8 + size + (size & 1);
      if (offset >= WAV_HEAD_LIMIT) throw new NotAudio("no WAV data chunk near the start");
    }
    return undefined;
  }
}

/**
 * FlacReader reads the metadata blocks after "fLaC": STREAMINFO's total samples over its sample rate give the length.
 * A streaming encoder that did not know the total writes 0; then the frames are followed instead: each frame header
 * (sync code, CRC-8) tells where its block starts, in frames or samples, and how long it is. Since frames cannot be
 * measured without decoding them, their headers are found by their sync code, and one counts only if it starts
 * exactly where the last one ended, which data that happens to contain a sync code and a right CRC does not.
 */
class FlacReader extends ChunkWalker {
  protected override skip = 4;
  #lastBlock = false;
  #streamInfo: { readonly rate: number; readonly totalSamples: number; readonly blockSize: number } | undefined;
  #inFrames = false;
  /** #end is where the last frame counted ends, in samples: where the next one must start. */
  #end = 0;

  protected step(data: Uint8Array, at: number): number | undefined {
    const next = this.#inFrames ? this.#frame(data, at) : this.#metadata(data, at);
    // A length STREAMINFO states is the answer: nothing after it needs reading.
    if (this.#streamInfo && this.#streamInfo.totalSamples > 0) this.ended = true;
    return next;
  }

  seconds(): number | undefined {
    if (!this.#streamInfo) return undefined;
    const { rate, totalSamples } = this.#streamInfo;
    return (totalSamples > 0 ? totalSamples : this.#end) / rate;
  }

  /** #metadata reads a metadata block's header at `at` (and STREAMINFO's body), or returns undefined to wait for more. */
  #metadata(data: Uint8Array, at: number): number | undefined {
    if (this.#lastBlock) {
      this.#inFrames = true;
      return at;
    }
    const first = this.#streamInfo === undefined;
    if (data.length - at < (first ? 4 + 18 : 4)) return undefined;
    const type = (data[at] as number) & 0x7f;
    const length = uint24be(data, at + 1);
    this.#lastBlock = ((data[at] as number) & 0x80) !== 0;
    if (first) {
      if (type !== 0 || length < 18) throw new NotAudio("FLAC without STREAMINFO first");
      const info = at + 4;
      const rate = ((data[info + 10] as number) << 12) | ((data[info + 11] as number) << 4) | ((data[info + 12] as number) >> 4);
      const totalSamples = ((data[info + 13] as number) & 0x0f) * 2 ** 32 + uint32be(data, info + 14);
      if (rate === 0) throw new NotAudio("FLAC STREAMINFO with a sample rate of 0");
      this.#streamInfo = { rate, totalSamples, blockSize: uint16be(data, info) };
    }
    this.skip = length;
    return at + 4;
  }

  /** #frame moves to the next sync code from `at`, counts its frame if it follows the last, or returns undefined to wait. */
  #frame(data: Uint8Array, at: number): number | undefined {
    const sync = data.indexOf(0xff, at);
    if (sync === -1) return data.length;
    if (sync > at) return sync;
    const header = flacFrameHeader(data, at);
    if (header === "short") return undefined;
    if (header === undefined) return at + 1;
    const start = header.fixedBlocks ? header.number * (this.#streamInfo?.blockSize ?? 0) : header.number;
    if (start !== this.#end) return at + 1;
    this.#end = start + header.blockSize;
    return at + header.length;
  }
}

/**
 * flacFrameHeader reads a FLAC frame header at `at`: "short" when the bytes end before it does, undefined when it is
 * not one (reserved values, a wrong CRC-8).
 */
function flacFrameHeader(
  data: Uint8Array,
  at: number,
): { readonly fixedBlocks: boolean; readonly number: number; readonly blockSize: number; readonly length: number } | "short" | undefined {
  if (data.length - at < 5) return "short";
  if (data[at] !== 0xff || ((data[at + 1] as number) & 0xfe) !== 0xf8) return undefined;
  const blockCode = (data[at + 2] as number) >> 4;
  const rateCode = (data[at + 2] as number) & 0x0f;
  const channels = (data[at + 3] as number) >> 4;
  const sampleSize = ((data[at + 3] as number) >> 1) & 0x07;
  if (blockCode === 0 || rateCode === 15 || channels > 10 || sampleSize === 3 || ((data[at + 3] as number) & 1) !== 0) return undefined;
  const coded = utf8Number(data, at + 4);
  if (coded === "short") return "short";
  if (coded === undefined) return undefined;
  let end = at + 4 + coded.length;
  let blockSize: number;
  if (blockCode === 1) blockSize = 192;
  else if (blockCode <= 5) blockSize = 576 * 2 ** (blockCode - 2);
  else if (blockCode === 6 || blockCode === 7) {
    const bytes = blockCode - 5;
    if (data.length < end + bytes) return "short";
    blockSize = (bytes === 1 ? (data[end] as number) : uint16be(data, end)) + 1;
    end += bytes;
  } else blockSize = 256 * 2 ** (blockCode - 8);
  end += rateCode === 12 ? 1 : rateCode === 13 || rateCode === 14 ? 2 : 0;
  if (data.length < end + 1) return "short";
  if (crc8(data, at, end) !== data[end]) return undefined;
  return { fixedBlocks: ((data[at + 1] as number) & 1) === 0, number: coded.value, blockSize, length: end + 1 - at };
}

/** utf8Number reads FLAC's frame or sample number, written as an extended UTF-8 sequence of 1 to 7 bytes. */
function utf8Number(data: Uint8Array, at: number): { readonly value: number; readonly length: number } | "short" | undefined {
  if (at >= data.length) return "short";
  const first = data[at] as number;
  let ones = 0;
  while (ones < 8 && first & (0x80 >> ones)) ones++;
  // 0xxxxxxx is a number alone; 110xxxxx to 11111110 lead 2 to 7 bytes; 10xxxxxx continues one and 0xFF leads none.
  const bytes = ones === 0 ? 1 : ones === 1 || ones === 8 ? 0 : ones;
  if (bytes === 0) return undefined;
  if (data.length < at + bytes) return "short";
  let value = bytes === 1 ? first : first & (0x7f >> bytes);
  for (let index = 1; index < bytes; index++) {
    const next = data[at + index] as number;
    if ((next & 0xc0) !== 0x80) return undefined;
    value = value * 64 + (next & 0x3f);
  }
  return { value, length: bytes };
}

/** OGG_PAGE_HEADER_BYTES is an Ogg page header without its segment table. */
const OGG_PAGE_HEADER_BYTES = 27;
/** OGG_ID_BYTES is enough of a logical stream's first packet to tell Opus (OpusHead) and Vorbis and read their rates. */
const OGG_ID_BYTES = 19;
/** OPUS_RATE is the rate Ogg Opus granule positions count in, whatever the input's rate. */
const OPUS_RATE = 48_000;

/** OggStream is the logical stream whose length is measured: its serial number, its granule rate and its pre-skip. */
interface OggStream {
  readonly serial: number;
  readonly rate: number;
  readonly preSkip: number;
}

/**
 * OggReader walks Ogg pages header to header, skipping their bodies: the first Opus (or Vorbis) logical stream's last
 * granule position, less Opus's pre-skip, over its rate, is the length. A page that does not start where the last one
 * ended ends the walk.
 */
class OggReader extends ChunkWalker {
  #stream: OggStream | undefined;
  #granule: bigint | undefined;

  seconds(): number | undefined {
    if (!this.#stream || this.#granule === undefined) return undefined;
    return Math.max(0, Number(this.#granule) - this.#stream.preSkip) / this.#stream.rate;
  }

  /** step reads the page header at `at` and returns where its body starts, or undefined to wait for more bytes. */
  protected step(data: Uint8Array, at: number): number | undefined {
    if (data.length - at < OGG_PAGE_HEADER_BYTES) return undefined;
    if (ascii(data, at, at + 4) !== "OggS" || data[at + 4] !== 0) {
      if (!this.#stream) throw new NotAudio("not an Ogg page");
      this.ended = true;
      return undefined;
    }
    const segments = data[at + 26] as number;
    const bodyAt = at + OGG_PAGE_HEADER_BYTES + segments;
    if (data.length < bodyAt) return undefined;
    let bodyLength = 0;
    for (let index = at + OGG_PAGE_HEADER_BYTES; index < bodyAt; index++) bodyLength += data[index] as number;
    const serial = uint32le(data, at + 14);
    const firstPage = ((data[at + 5] as number) & 0x02) !== 0;
    if (firstPage && !this.#stream) {
      if (data.length < bodyAt + Math.min(bodyLength, OGG_ID_BYTES)) return undefined;
      this.#stream = oggStream(data.subarray(bodyAt, bodyAt + Math.min(bodyLength, OGG_ID_BYTES)), serial);
    }
    const granule = view(data).getBigInt64(at + 6, true);
    // -1 marks a page on which no packet ends.
    if (this.#stream?.serial === serial && granule !== -1n) this.#granule = granule;
    this.skip = bodyLength;
    return bodyAt;
  }
}

/** oggStream reads a logical stream's identification packet: Opus's rate is always 48 kHz; Vorbis states its own. */
function oggStream(packet: Uint8Array, serial: number): OggStream | undefined {
  if (ascii(packet, 0, 8) === "OpusHead" && packet.length >= 12) return { serial, rate: OPUS_RATE, preSkip: uint16le(packet, 10) };
  if (packet[0] === 1 && ascii(packet, 1, 7) === "vorbis" && packet.length >= 16) {
    const rate = uint32le(packet, 12);
    return rate > 0 ? { serial, rate, preSkip: 0 } : undefined;
  }
  return undefined;
}

/** MPEG_INSPECT_BYTES is enough of a first MP3 frame to find a Xing, Info or VBRI header in it. */
const MPEG_INSPECT_BYTES = 64;

/**
 * FrameReader walks MPEG audio (mp3) or ADTS (aac) frames header to header, after any ID3v2 tags, skipping their
 * bodies: the length is the sum of the frames' samples over their rate. A first MP3 frame holding a Xing, Info or
 * VBRI header is no audio; the frame count it states, when it states one, gives the length instead of the walk. A
 * header that is missing where the last frame ended (ID3v1 or APE tags, junk) ends the walk.
 */
class FrameReader extends ChunkWalker {
  #syntax: MpegFrame["syntax"] | undefined;
  #stated: number | undefined;
  readonly #duration = new SampleCount();

  seconds(): number | undefined {
    if (this.#stated !== undefined) return this.#stated;
    return this.#syntax === undefined ? undefined : this.#duration.seconds();
  }

  /** step reads the tag or frame header at `at` and returns where its body starts, or undefined to wait for more. */
  protected step(data: Uint8Array, at: number): number | undefined {
    if (this.#syntax === undefined) {
      if (data.length - at < 10) return undefined;
      if (ascii(data, at, at + 3) === "ID3") {
        const flags = data[at + 5] as number;
        this.skip = 10 + syncsafe(data, at + 6) + (flags & 0x10 ? 10 : 0);
        return at;
      }
    }
    const frame = frameAt(data, at);
    if (frame === "short") return undefined;
    if (frame === undefined || (this.#syntax !== undefined && frame.syntax !== this.#syntax)) {
      if (this.#syntax === undefined) throw new NotAudio("no MPEG audio or ADTS frame after the tags");
      this.ended = true;
      return undefined;
    }
    if (this.#syntax === undefined && frame.syntax === "mpeg") {
      if (data.length - at < Math.min(frame.length, MPEG_INSPECT_BYTES)) return undefined;
      this.#syntax = frame.syntax;
      const stated = statedFrames(data, at, frame);
      if (stated !== undefined) {
        if (stated > 0) this.#stated = (stated * frame.samples) / frame.rate;
        this.skip = frame.length;
        return at;
      }
    }
    this.#syntax = frame.syntax;
    this.#duration.add(frame.samples, frame.rate);
    this.skip = frame.length;
    return at;
  }
}

/** SampleCount sums frames' samples, exactly while the rate stays the same. */
class SampleCount {
  #earlier = 0;
  #samples = 0;
  #rate = 0;

  add(samples: number, rate: number): void {
    if (rate !== this.#rate) {
      if (this.#rate > 0) this.#earlier += this.#samples / this.#rate;
      this.#samples = 0;
      this.#rate = rate;
    }
    this.#samples += samples;
  }

  seconds(): number {
    return this.#earlier + (this.#rate > 0 ? this.#samples / this.#rate : 0);
  }
}

/** MpegFrame is one MPEG audio or ADTS frame's header, as far as its length and duration go. */
interface MpegFrame {
  readonly syntax: "mpeg" | "adts";
  /** length is the whole frame's, header included. */
  readonly length: number;
  readonly samples: number;
  readonly rate: number;
  /** sideInfoEnd is where an MPEG Layer III frame's side information ends (a Xing header follows it); 0 otherwise. */
  readonly sideInfoEnd: number;
}

/** BITRATES_KBPS are MPEG audio's bit rates by [MPEG-1, MPEG-2 and 2.5] and [layer I, II, III]. */
const BITRATES_KBPS: readonly (readonly (readonly number[])[])[] = [
  [
    [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
    [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
    [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
  ],
  [
    [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
    [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
  ],
];
/** MPEG_RATES are the sample rates by version bits (00 MPEG-2.5, 10 MPEG-2, 11 MPEG-1; 01 is reserved). */
const MPEG_RATES: readonly (readonly number[] | undefined)[] = [
  [11_025, 12_000, 8_000],
  undefined,
  [22_050, 24_000, 16_000],
  [44_100, 48_000, 32_000],
];
/** ADTS_RATES are ADTS's sampling frequencies by index; 13 to 15 are reserved. */
const ADTS_RATES: readonly number[] = [
  96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000, 7_350,
];
/** AAC_FRAME_SAMPLES is the samples of one AAC raw data block. */
const AAC_FRAME_SAMPLES = 1024;

/**
 * frameAt reads an MPEG audio (layer bits 01-11) or ADTS (layer bits 00, 12-bit sync) frame header at `at`: "short"
 * when the bytes end before it does, undefined when it is not one. Free-format MP3 (bit rate index 0), whose frame
 * length no header states, is not read.
 */
function frameAt(data: Uint8Array, at: number): MpegFrame | "short" | undefined {
  if (data.length - at < 4) return "short";
  const [b0, b1, b2, b3] = [data[at], data[at + 1], data[at + 2], data[at + 3]] as [number, number, number, number];
  if (b0 !== 0xff || (b1 & 0xe0) !== 0xe0) return undefined;
  const layerBits = (b1 >> 1) & 0x03;
  if (layerBits === 0) {
    if ((b1 & 0xf0) !== 0xf0) return undefined;
    if (data.length - at < 7) return "short";
    const rate = ADTS_RATES[(b2 >> 2) & 0x0f];
    const headerLength = b1 & 0x01 ? 7 : 9;
    const length = ((b3 & 0x03) << 11) | ((data[at + 4] as number) << 3) | ((data[at + 5] as number) >> 5);
    if (rate === undefined || length < headerLength) return undefined;
    return { syntax: "adts", length, samples: AAC_FRAME_SAMPLES * (((data[at + 6] as number) & 0x03) + 1), rate, sideInfoEnd: 0 };
  }
  const versionBits = (b1 >> 3) & 0x03;
  const rate = MPEG_RATES[versionBits]?.[(b2 >> 2) & 0x03];
  const mpeg1 = versionBits === 3;
  const layer = 4 - layerBits; // 1, 2 or 3
  const bitrate = (BITRATES_KBPS[mpeg1 ? 0 : 1]?.[layer - 1]?.[b2 >> 4] ?? 0) * 1000;
  if (rate === undefined || bitrate === 0) return undefined;
  const padding = (b2 >> 1) & 0x01;
  const samples = layer === 1 ? 384 : layer === 2 || mpeg1 ? 1152 : 576;
  const length = layer === 1 ? (Math.floor((12 * bitrate) / rate) + padding) * 4 : Math.floor(((samples / 8) * bitrate) / rate) + padding;
  const mono = b3 >> 6 === 3;
  const sideInfo = mpeg1 ? (mono ? 17 : 32) : mono ? 9 : 17;
  const sideInfoEnd = layer === 3 ? 4 + (b1 & 0x01 ? 0 : 2) + sideInfo : 0;
  return { syntax: "mpeg", length, samples, rate, sideInfoEnd };
}

/**
 * statedFrames reads the frame count of a Xing or Info header (after the side information) or of a VBRI header (32
 * bytes after the frame header) in the MP3 frame at `at`: undefined when the frame has none (it is audio), 0 when it
 * has one that states no count.
 */
function statedFrames(data: Uint8Array, at: number, frame: MpegFrame): number | undefined {
  if (frame.sideInfoEnd === 0) return undefined;
  const end = at + Math.min(frame.length, data.length - at);
  const xing = at + frame.sideInfoEnd;
  const xingTag = ascii(data, xing, Math.min(end, xing + 4));
  if (xingTag === "Xing" || xingTag === "Info") {
    const hasFrames = xing + 12 <= end && (uint32be(data, xing + 4) & 0x01) === 1;
    return hasFrames ? uint32be(data, xing + 8) : 0;
  }
  const vbri = at + 36;
  if (ascii(data, vbri, Math.min(end, vbri + 4)) === "VBRI") return vbri + 18 <= end ? uint32be(data, vbri + 14) : 0;
  return undefined;
}

/** CRC8_TABLE is CRC-8 with polynomial x^8 + x^2 + x + 1 (0x07), FLAC's frame header check. */
const CRC8_TABLE: Uint8Array = Uint8Array.from({ length: 256 }, (_, byte) => {
  let crc = byte;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
  return crc;
});

function crc8(data: Uint8Array, from: number, to: number): number {
  let crc = 0;
  for (let index = from; index < to; index++) crc = CRC8_TABLE[crc ^ (data[index] as number)] as number;
  return crc;
}

/** syncsafe reads ID3v2's 28-bit size, 7 bits in each of 4 bytes. */
function syncsafe(data: Uint8Array, at: number): number {
  return (
    (((data[at] as number) & 0x7f) << 21) |
    (((data[at + 1] as number) & 0x7f) << 14) |
    (((data[at + 2] as number) & 0x7f) << 7) |
    ((data[at + 3] as number) & 0x7f)
  );
}

/** joined is first and second in new memory, for bytes kept across pushes (never a view of the caller's chunk). */
function joined(first: Uint8Array, second: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(first.length + second.length);
  bytes.set(first);
  bytes.set(second, first.length);
  return bytes;
}

/** copied is data from `from` on in new memory: a Buffer's slice() would be a view holding the whole chunk. */
function copied(data: Uint8Array, from: number): Uint8Array {
  return new Uint8Array(data.subarray(from));
}

/** concat is first then second, for bytes read at once: second itself when there is nothing before it. */
function concat(first: Uint8Array, second: Uint8Array): Uint8Array {
  if (first.length === 0) return second;
  const joined = new Uint8Array(first.length + second.length);
  joined.set(first);
  joined.set(second, first.length);
  return joined;
}

function view(data: Uint8Array): DataView {
  return new DataView(data.buffer, data.byteOffset, data.byteLength);
}

function uint16be(data: Uint8Array, at: number): number {
  return view(data).getUint16(at);
}

function uint16le(data: Uint8Array, at: number): number {
  return view(data).getUint16(at, true);
}

function uint24be(data: Uint8Array, at: number): number {
  return ((data[at] as number) << 16) | ((data[at + 1] as number) << 8) | (data[at + 2] as number);
}

function uint32be(data: Uint8Array, at: number): number {
  return view(data).getUint32(at);
}

function uint32le(data: Uint8Array, at: number): number {
  return view(data).getUint32(at, true);
}

function ascii(data: Uint8Array, from: number, to: number): string {
  return String.fromCharCode(...data.subarray(from, to));
}
