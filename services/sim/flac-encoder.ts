import type { AudioEncoder } from "./audio-encoder.js";
import { flacCrc8, flacCrc16 } from "./checksums.js";
import { int16le } from "./wav-encoder.js";

/** FLAC_BLOCK_SIZE is the samples per frame: 4096 has a block-size code of its own in the frame header. */
export const FLAC_BLOCK_SIZE = 4096;

/** SAMPLE_RATE_CODES are the frame header's codes for common rates; others point back to STREAMINFO (code 0). */
const SAMPLE_RATE_CODES: ReadonlyMap<number, number> = new Map([
  [88_200, 1],
  [176_400, 2],
  [192_000, 3],
  [8_000, 4],
  [16_000, 5],
  [22_050, 6],
  [24_000, 7],
  [32_000, 8],
  [44_100, 9],
  [48_000, 10],
  [96_000, 11],
]);

/**
 * FlacEncoder writes a decodable mono 16-bit FLAC stream: `fLaC`, a STREAMINFO block (MD5 left zero, which the format
 * defines as "not computed") and fixed-size frames whose one subframe is VERBATIM, with both CRCs. There is no
 * compression, which keeps the fixture trivial and still lets any FLAC decoder play the tone back.
 */
export class FlacEncoder implements AudioEncoder {
  readonly silent = false;
  private started = false;
  private frameNumber = 0;
  private pending = new Int16Array(FLAC_BLOCK_SIZE);
  private pendingLength = 0;

  constructor(
    private readonly sampleRate: number,
    private readonly totalSamples: number,
  ) {}

  push(samples: Int16Array): Buffer {
    const out: Buffer[] = [this.header()];
    let offset = 0;
    while (offset < samples.length) {
      const taken = Math.min(FLAC_BLOCK_SIZE - this.pendingLength, samples.length - offset);
      this.pending.set(samples.subarray(offset, offset + taken), this.pendingLength);
      this.pendingLength += taken;
      offset += taken;
      if (this.pendingLength === FLAC_BLOCK_SIZE) out.push(this.flushFrame());
    }
    return Buffer.concat(out);
  }

  finish(): Buffer {
    const head = this.header();
    return this.pendingLength === 0 ? head : Buffer.concat([head, this.flushFrame()]);
  }

  private header(): Buffer {
    if (this.started) return Buffer.alloc(0);
    this.started = true;
    const header = Buffer.alloc(4 + 4 + 34);
    header.write("fLaC", 0, "latin1");
    header[4] = 0x80; // last metadata block, type 0 (STREAMINFO)
    header.writeUIntBE(34, 5, 3);
    header.writeUInt16BE(FLAC_BLOCK_SIZE, 8); // minimum block size
    header.writeUInt16BE(FLAC_BLOCK_SIZE, 10); // maximum block size
    // Bytes 12-17: minimum and maximum frame sizes, 0 meaning unknown.
    const packed = (BigInt(this.sampleRate) << 44n) | (0n << 41n) | (15n << 36n) | BigInt(this.totalSamples);
    header.writeBigUInt64BE(packed, 18); // rate (20 bits), channels - 1 (3), bits - 1 (5), total samples (36)
    // Bytes 26-41: the MD5 of the decoded samples, all zero meaning not computed.
    return header;
  }

  private flushFrame(): Buffer {
    const blockSize = this.pendingLength;
    const head: number[] = [0xff, 0xf8];
    let blockSizeCode: number;
    const extra: number[] = [];
    if (blockSize === FLAC_BLOCK_SIZE) blockSizeCode = 0b1100;
    else if (blockSize <= 256) {
      blockSizeCode = 0b0110;
      extra.push(blockSize - 1);
    } else {
      blockSizeCode = 0b0111;
      extra.push((blockSize - 1) >> 8, (blockSize - 1) & 0xff);
    }
    head.push((blockSizeCode << 4) | (SAMPLE_RATE_CODES.get(this.sampleRate) ?? 0));
    head.push(0b0000_100_0); // mono, 16 bits per sample
    head.push(...utf8Number(this.frameNumber), ...extra);
    head.push(flacCrc8(Uint8Array.from(head)));
    const frame = Buffer.alloc(head.length + 1 + blockSize * 2 + 2);
    frame.set(head, 0);
    frame[head.length] = 0x02; // subframe: VERBATIM, no wasted bits
    const start = head.length + 1;
    const end = start + blockSize * 2;
    // FLAC stores samples big-endian: lay them out little-endian, then swap byte pairs natively.
    int16le(this.pending.subarray(0, blockSize)).copy(frame, start);
    frame.subarray(start, end).swap16();
    frame.writeUInt16BE(flacCrc16(frame.subarray(0, end)), end);
    this.frameNumber++;
    this.pendingLength = 0;
    return frame;
  }
}

/** utf8Number codes a frame number the way FLAC does, as an extended UTF-8 sequence. */
function utf8Number(value: number): number[] {
  if (value < 0x80) return [value];
  const bytes: number[] = [];
  let rest = value;
  let limit = 0x3f; // what fits in the first byte shrinks by one bit per continuation byte
  while (rest > limit) {
    bytes.unshift(0x80 | (rest & 0x3f));
    rest = Math.floor(rest / 64);
    limit >>= 1;
  }
  const lead = (0xff << (7 - bytes.length)) & 0xff;
  bytes.unshift(lead | rest);
  return bytes;
}
