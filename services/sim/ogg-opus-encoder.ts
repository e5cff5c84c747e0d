import type { AudioEncoder } from "./audio-encoder.js";
import { oggCrc32 } from "./checksums.js";

/** OPUS_RATE is the rate Ogg Opus granule positions count in, whatever the input rate. */
const OPUS_RATE = 48_000;
/** OPUS_PACKET_SAMPLES is one 20 ms packet at OPUS_RATE. */
const OPUS_PACKET_SAMPLES = 960;
/**
 * SILENT_OPUS_PACKET is a complete 20 ms Opus packet of silence: TOC 0xF8 (CELT-only, fullband, 20 ms, mono, one
 * frame) and the two-byte CELT frame that decodes to silence. A real encoder is out of scope for a fixture; the
 * container, its timing and its checksums are what the mesh handles.
 */
const SILENT_OPUS_PACKET: Buffer = Buffer.from([0xf8, 0xff, 0xfe]);
/** MAX_SEGMENTS is the most lacing values (here: packets) one Ogg page holds. */
const MAX_SEGMENTS = 255;
/** STREAM_SERIAL is the logical stream's serial number, fixed so that output is deterministic. */
const STREAM_SERIAL = 0x4d495331;
const VENDOR = "infermesh simulator";

/**
 * OggOpusEncoder writes an Ogg Opus stream (RFC 7845): an OpusHead page, an OpusTags page, then pages of silent
 * packets whose count and final granule position give the stream the duration of the samples pushed. Pages carry
 * correct Ogg CRCs. The last packet is held back so that the final page, which carries the end-of-stream flag and the
 * exact end position, always has a packet on it.
 */
export class OggOpusEncoder implements AudioEncoder {
  readonly silent = true;
  private started = false;
  private sequence = 0;
  private samplesIn = 0;
  private packetsOut = 0;

  constructor(
    private readonly sampleRate: number,
    private readonly totalSamples: number,
  ) {}

  push(samples: Int16Array): Buffer {
    const out = [this.headers()];
    this.samplesIn += samples.length;
    const ready = Math.floor(this.toOpusSamples(this.samplesIn) / OPUS_PACKET_SAMPLES);
    if (ready - 1 > this.packetsOut) out.push(this.pages(ready - 1 - this.packetsOut, false));
    return Buffer.concat(out);
  }

  finish(): Buffer {
    const total = Math.max(1, Math.ceil(this.toOpusSamples(this.totalSamples) / OPUS_PACKET_SAMPLES));
    return Buffer.concat([this.headers(), this.pages(Math.max(1, total - this.packetsOut), true)]);
  }

  private toOpusSamples(samples: number): number {
    return Math.round((samples * OPUS_RATE) / this.sampleRate);
  }

  private headers(): Buffer {
    if (this.started) return Buffer.alloc(0);
    this.started = true;
    const head = Buffer.alloc(19);
    head.write("OpusHead", 0, "latin1");
    head[8] = 1; // version
    head[9] = 1; // channels
    head.writeUInt16LE(0, 10); // pre-skip: the silent packets need no encoder delay compensation
    head.writeUInt32LE(this.sampleRate, 12); // the input rate, informational
    head.writeInt16LE(0, 16); // output gain
    head[18] = 0; // channel mapping family: mono/stereo
    const vendor = Buffer.from(VENDOR, "utf8");
    const tags = Buffer.alloc(8 + 4 + vendor.length + 4);
    tags.write("OpusTags", 0, "latin1");
    tags.writeUInt32LE(vendor.length, 8);
    vendor.copy(tags, 12);
    tags.writeUInt32LE(0, 12 + vendor.length); // no user comments
    return Buffer.concat([this.page([head], 0x02, 0n), this.page([tags], 0, 0n)]);
  }

  /** pages writes count silent packets; the last of them ends the stream when last is set. */
  private pages(count: number, last: boolean): Buffer {
    const out: Buffer[] = [];
    let left = count;
    while (left > 0) {
      const onPage = Math.min(MAX_SEGMENTS, left);
      left -= onPage;
      this.packetsOut += onPage;
      const ending = last && left === 0;
      // The final granule position is the true end, shorter than the packets, which tells players to trim.
      const granule = ending ? this.toOpusSamples(this.totalSamples) : this.packetsOut * OPUS_PACKET_SAMPLES;
      out.push(this.page(new Array<Buffer>(onPage).fill(SILENT_OPUS_PACKET), ending ? 0x04 : 0, BigInt(granule)));
    }
    return Buffer.concat(out);
  }

  /** page frames packets as one Ogg page with its CRC; every packet here is shorter than 255 bytes, one lacing value. */
  private page(packets: readonly Buffer[], flags: number, granule: bigint): Buffer {
    const segments = packets.map((packet) => packet.length);
    const header = Buffer.alloc(27 + segments.length);
    header.write("OggS", 0, "latin1");
    header[4] = 0; // version
    header[5] = flags;
    header.writeBigInt64LE(granule, 6);
    header.writeUInt32LE(STREAM_SERIAL, 14);
    header.writeUInt32LE(this.sequence++, 18);
    // Bytes 22-25 hold the CRC, computed over the page with them zeroed.
    header[26] = segments.length;
    header.set(segments, 27);
    const page = Buffer.concat([header, ...packets]);
    page.writeUInt32LE(oggCrc32(page), 22);
    return page;
  }
}
