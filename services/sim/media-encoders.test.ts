import { inflateSync } from "node:zlib";
import { expect } from "chai";
import { crc32, flacCrc8, flacCrc16, oggCrc32 } from "./checksums.js";
import { encodePng, pngDimensions } from "./png-encoder.js";
import { expectedEditedPng, expectedGeneratedPng } from "./simulated-images.js";
import { expectedSpeech, SPEECH_SAMPLE_RATE, speechDurationMs, speechSampleCount } from "./simulated-speech.js";
import { expectedTranscription } from "./simulated-transcript.js";
import { testWav, wavDurationSeconds, wavHeader } from "./wav-encoder.js";

const CHECK_INPUT = Buffer.from("123456789", "latin1");

/** pngChunks splits a PNG into its chunks, checking each CRC on the way. */
function pngChunks(png: Buffer): Array<{ type: string; data: Buffer }> {
  expect(png.subarray(0, 8)).to.deep.equal(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  const chunks: Array<{ type: string; data: Buffer }> = [];
  let offset = 8;
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString("latin1", offset + 4, offset + 8);
    const data = png.subarray(offset + 8, offset + 8 + length);
    expect(png.readUInt32BE(offset + 8 + length), `CRC of ${type}`).to.equal(crc32(png.subarray(offset + 4, offset + 8 + length)));
    chunks.push({ type, data });
    offset += 12 + length;
  }
  expect(offset).to.equal(png.length);
  return chunks;
}

/** pngPixel decodes a simulator PNG (RGB, filter 0 rows) and reads one pixel. */
function pngPixel(png: Buffer, x: number, y: number): number[] {
  const chunks = pngChunks(png);
  const header = chunks[0]?.data ?? Buffer.alloc(13);
  const width = header.readUInt32BE(0);
  const raw = inflateSync(Buffer.concat(chunks.filter((chunk) => chunk.type === "IDAT").map((chunk) => chunk.data)));
  const stride = 1 + width * 3;
  expect(raw[y * stride], "filter type").to.equal(0);
  const at = y * stride + 1 + x * 3;
  return [raw[at] ?? -1, raw[at + 1] ?? -1, raw[at + 2] ?? -1];
}

/** FlacStream is what flacDecode reads back from a FLAC file. */
interface FlacStream {
  readonly sampleRate: number;
  readonly channels: number;
  readonly bitsPerSample: number;
  readonly totalSamples: number;
  readonly samples: Int16Array;
}

/**
 * flacDecode is a strict decoder for what FlacEncoder writes (fixed blocks, mono, 16-bit VERBATIM subframes); it
 * checks sync codes, UTF-8 frame numbers, both CRCs and the sample count, as a real decoder would.
 */
function flacDecode(bytes: Buffer): FlacStream {
  expect(bytes.toString("latin1", 0, 4)).to.equal("fLaC");
  expect(bytes[4], "last metadata block, STREAMINFO").to.equal(0x80);
  expect(bytes.readUIntBE(5, 3)).to.equal(34);
  const packed = bytes.readBigUInt64BE(18);
  const sampleRate = Number(packed >> 44n);
  const channels = Number((packed >> 41n) & 7n) + 1;
  const bitsPerSample = Number((packed >> 36n) & 31n) + 1;
  const totalSamples = Number(packed & 0xfffffffffn);
  const samples = new Int16Array(totalSamples);
  let offset = 42;
  let decoded = 0;
  let frameNumber = 0;
  while (offset < bytes.length) {
    const start = offset;
    expect(bytes.readUInt16BE(offset), "frame sync").to.equal(0xfff8);
    const blockCode = (bytes[offset + 2] ?? 0) >> 4;
    expect((bytes[offset + 2] ?? 0) & 0x0f, "24 kHz code").to.equal(7);
    expect(bytes[offset + 3], "mono, 16 bits").to.equal(0x08);
    offset += 4;
    let number = bytes[offset] ?? 0;
    let extra = 0;
    if (number >= 0xc0) {
      extra = number >= 0xf0 ? 3 : number >= 0xe0 ? 2 : 1;
      number &= 0x3f >> extra;
    }
    for (let index = 1; index <= extra; index++) number = number * 64 + ((bytes[offset + index] ?? 0) & 0x3f);
    offset += 1 + extra;
    expect(number, "frame number").to.equal(frameNumber++);
    let blockSize: number;
    if (blockCode === 0b1100) blockSize = 4096;
    else if (blockCode === 0b0110) blockSize = (bytes[offset++] ?? 0) + 1;
    else {
      expect(blockCode).to.equal(0b0111);
      blockSize = bytes.readUInt16BE(offset) + 1;
      offset += 2;
    }
    expect(bytes[offset], "header CRC-8").to.equal(flacCrc8(bytes.subarray(start, offset)));
    offset++;
    expect(bytes[offset], "VERBATIM subframe").to.equal(0x02);
    offset++;
    for (let index = 0; index < blockSize; index++, offset += 2) samples[decoded++] = bytes.readInt16BE(offset);
    expect(bytes.readUInt16BE(offset), "frame CRC-16").to.equal(flacCrc16(bytes.subarray(start, offset)));
    offset += 2;
  }
  expect(decoded).to.equal(totalSamples);
  return { sampleRate, channels, bitsPerSample, totalSamples, samples };
}

/** OggPage is one parsed Ogg page. */
interface OggPage {
  readonly flags: number;
  readonly granule: bigint;
  readonly sequence: number;
  readonly packets: Buffer[];
}

/** oggPages splits an Ogg stream into pages, checking each page's CRC. */
function oggPages(bytes: Buffer): OggPage[] {
  const pages: OggPage[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    expect(bytes.toString("latin1", offset, offset + 4)).to.equal("OggS");
    const segments = bytes[offset + 26] ?? 0;
    const lacing = [...bytes.subarray(offset + 27, offset + 27 + segments)];
    const size = 27 + segments + lacing.reduce((sum, value) => sum + value, 0);
    const page = Buffer.from(bytes.subarray(offset, offset + size));
    const crc = page.readUInt32LE(22);
    page.writeUInt32LE(0, 22);
    expect(crc, "page CRC").to.equal(oggCrc32(page));
    const packets: Buffer[] = [];
    let at = 27 + segments;
    for (const value of lacing) {
      expect(value, "packets below 255 bytes").to.be.below(255);
      packets.push(page.subarray(at, at + value));
      at += value;
    }
    pages.push({ flags: page[5] ?? 0, granule: page.readBigInt64LE(6), sequence: page.readUInt32LE(18), packets });
    offset += size;
  }
  return pages;
}

describe("simulator media encoders", () => {
  describe("checksums", () => {
    it("match the catalogued check values of their CRC models", () => {
      expect(crc32(CHECK_INPUT)).to.equal(0xcbf43926); // CRC-32/ISO-HDLC
      expect(crc32(CHECK_INPUT.subarray(4), crc32(CHECK_INPUT.subarray(0, 4)))).to.equal(0xcbf43926);
      expect(oggCrc32(CHECK_INPUT)).to.equal(~0x765e7680 >>> 0); // CRC-32/CKSUM without its final xor
      expect(flacCrc8(CHECK_INPUT)).to.equal(0xf4); // CRC-8/SMBUS
      expect(flacCrc16(CHECK_INPUT)).to.equal(0xfee8); // CRC-16/UMTS
    });
  });

  describe("PNG", () => {
    it("writes a valid RGB PNG of the requested size whose rows decode to the painted pixels", () => {
      const png = encodePng(5, 3, (y, rgb) => rgb.fill(Buffer.from([y * 10, 20, 30])));
      const chunks = pngChunks(png);
      expect(chunks.map((chunk) => chunk.type)).to.deep.equal(["IHDR", "IDAT", "IEND"]);
      expect([...(chunks[0]?.data ?? [])]).to.deep.equal([0, 0, 0, 5, 0, 0, 0, 3, 8, 2, 0, 0, 0]);
      expect(pngDimensions(png)).to.deep.equal({ width: 5, height: 3 });
      expect(pngPixel(png, 4, 2)).to.deep.equal([20, 20, 30]);
      expect(pngDimensions(Buffer.from("not a png at all, not at all"))).to.equal(undefined);
    });

    it("paints generated images from the prompt and index, and edits with a mask patch in the middle", () => {
      const size = { width: 40, height: 20 };
      const first = expectedGeneratedPng("a red fox", size, 0);
      expect(pngDimensions(first)).to.deep.equal(size);
      expect(expectedGeneratedPng("a red fox", size, 0), "the same prompt and index").to.deep.equal(first);
      expect(expectedGeneratedPng("a red fox", size, 1), "another index").not.to.deep.equal(first);
      expect(expectedGeneratedPng("a grey fox", size, 0), "another prompt").not.to.deep.equal(first);
      const image = Buffer.from("input image");
      const plain = expectedEditedPng({ prompt: "p", images: [image] }, size);
      const masked = expectedEditedPng({ prompt: "p", images: [image], mask: Buffer.from("mask one") }, size);
      const otherMask = expectedEditedPng({ prompt: "p", images: [image], mask: Buffer.from("mask two") }, size);
      expect(pngPixel(masked, 0, 0), "outside the patch").to.deep.equal(pngPixel(plain, 0, 0));
      expect(pngPixel(masked, 20, 10), "inside the patch").to.not.deep.equal(pngPixel(plain, 20, 10));
      expect(pngPixel(otherMask, 20, 10)).to.not.deep.equal(pngPixel(masked, 20, 10));
    });
  });

  describe("WAV", () => {
    it("writes testWav with a canonical header whose duration reads back", () => {
      const wav = testWav(1.5, 16_000);
      expect(wav.length).to.equal(44 + 48_000);
      expect(wav.toString("latin1", 0, 4)).to.equal("RIFF");
      expect(wav.readUInt32LE(4)).to.equal(wav.length - 8);
      expect(wav.toString("latin1", 8, 16)).to.equal("WAVEfmt ");
      expect([wav.readUInt32LE(16), wav.readUInt16LE(20), wav.readUInt16LE(22), wav.readUInt32LE(24)]).to.deep.equal([16, 1, 1, 16_000]);
      expect([wav.readUInt32LE(28), wav.readUInt16LE(32), wav.readUInt16LE(34)]).to.deep.equal([32_000, 2, 16]);
      expect(wav.toString("latin1", 36, 40)).to.equal("data");
      expect(wav.readUInt32LE(40)).to.equal(48_000);
      expect(wavDurationSeconds(wav, wav.length)).to.equal(1.5);
    });

    it("reads durations past extra chunks and of streamed headers with unknown sizes", () => {
      const list = Buffer.concat([Buffer.from("LIST", "latin1"), Buffer.from([3, 0, 0, 0]), Buffer.from("abc\0", "latin1")]);
      const header = wavHeader(8000, 0);
      header.writeUInt32LE(0xffffffff, 40); // what a writer that streams leaves in the data size
      const wav = Buffer.concat([header.subarray(0, 36), list, header.subarray(36), Buffer.alloc(16_000)]);
      expect(wavDurationSeconds(wav, wav.length)).to.equal(1);
      expect(wavDurationSeconds(Buffer.from("RIFF....WAVEjunk"), 100)).to.equal(undefined);
      expect(wavDurationSeconds(Buffer.from("ID3 not a wave file"), 100)).to.equal(undefined);
    });
  });

  describe("speech", () => {
    it("lasts 60 ms per character divided by speed, at 24 kHz", () => {
      expect(speechSampleCount("Hello")).to.equal(5 * 1440);
      expect(speechDurationMs("Hello")).to.equal(300);
      expect(speechDurationMs("Hello", 2)).to.equal(150);
      expect(speechDurationMs("héllo 👋")).to.equal(7 * 60);
      const wav = expectedSpeech("Hello", "wav");
      expect(wav.readUInt32LE(24)).to.equal(SPEECH_SAMPLE_RATE);
      expect(wav.readUInt32LE(40)).to.equal(5 * 1440 * 2);
      expect(wav.length).to.equal(44 + 5 * 1440 * 2);
      expect(expectedSpeech("Hello", "pcm")).to.deep.equal(wav.subarray(44));
    });

    it("writes FLAC that a strict decoder reads back to the same samples as the PCM answer", () => {
      for (const input of ["Hi", "A longer sentence, so that several 4096-sample blocks are needed to hold it all."]) {
        const flac = flacDecode(expectedSpeech(input, "flac"));
        expect([flac.sampleRate, flac.channels, flac.bitsPerSample, flac.totalSamples]).to.deep.equal([
          24_000,
          1,
          16,
          speechSampleCount(input),
        ]);
        const pcm = expectedSpeech(input, "pcm");
        expect(Buffer.from(flac.samples.buffer)).to.deep.equal(pcm);
      }
    });

    it("writes Ogg Opus with OpusHead, OpusTags, checked pages and an end position equal to the duration", () => {
      const input = "An Ogg Opus answer that spans more than one page of packets, to check the paging as well.";
      const pages = oggPages(expectedSpeech(input, "opus"));
      expect(pages.map((page) => page.sequence)).to.deep.equal(pages.map((_, index) => index));
      const [head, tags] = pages;
      expect(head?.flags).to.equal(0x02);
      expect(head?.packets[0]?.toString("latin1", 0, 8)).to.equal("OpusHead");
      expect(head?.packets[0]?.[9], "channels").to.equal(1);
      expect(tags?.packets[0]?.toString("latin1", 0, 8)).to.equal("OpusTags");
      const audio = pages.slice(2);
      expect(audio.at(-1)?.flags, "end of stream").to.equal(0x04);
      expect(
        audio.slice(0, -1).map((page) => page.flags),
        "no flags before the last page",
      ).to.deep.equal(audio.slice(0, -1).map(() => 0));
      const endSamples = BigInt(speechSampleCount(input) * 2);
      expect(audio.at(-1)?.granule).to.equal(endSamples);
      const packets = audio.flatMap((page) => page.packets);
      expect(new Set(packets.map((packet) => packet.toString("hex"))), "every packet is the same silent frame").to.deep.equal(
        new Set(["f8fffe"]),
      );
      expect(packets.length).to.equal(Math.ceil(Number(endSamples) / 960));
    });

    it("writes MP3 as an ID3v2 tag then 96-byte MPEG-2 Layer III frames covering the duration", () => {
      const input = "Some words to say";
      const mp3 = expectedSpeech(input, "mp3");
      expect(mp3.toString("latin1", 0, 3)).to.equal("ID3");
      const tagSize = ((mp3[6] ?? 0) << 21) | ((mp3[7] ?? 0) << 14) | ((mp3[8] ?? 0) << 7) | (mp3[9] ?? 0);
      const frames = mp3.subarray(10 + tagSize);
      const count = Math.ceil(speechSampleCount(input) / 576);
      expect(frames.length).to.equal(count * 96);
      for (let frame = 0; frame < count; frame++) {
        expect(frames.readUInt32BE(frame * 96).toString(16), `frame ${frame} header`).to.equal("fff344c0");
      }
    });

    it("writes AAC as a chain of ADTS frames whose lengths lead from one sync word to the next", () => {
      const input = "Some words to say";
      const aac = expectedSpeech(input, "aac");
      let offset = 0;
      let frames = 0;
      while (offset < aac.length) {
        expect(aac.readUInt16BE(offset) & 0xfff6, "ADTS sync, MPEG-4, layer 0").to.equal(0xfff0);
        expect(((aac[offset + 2] ?? 0) >> 2) & 0x0f, "24 kHz index").to.equal(6);
        const length = (((aac[offset + 3] ?? 0) & 3) << 11) | ((aac[offset + 4] ?? 0) << 3) | ((aac[offset + 5] ?? 0) >> 5);
        expect(length).to.be.greaterThan(7);
        offset += length;
        frames++;
      }
      expect(offset).to.equal(aac.length);
      expect(frames).to.equal(Math.ceil(speechSampleCount(input) / 1024));
    });
  });

  describe("transcripts", () => {
    it("derive words from the bytes and their count from the WAV duration, spread over segments", () => {
      const wav = testWav(10);
      const transcript = expectedTranscription(wav);
      expect(transcript.words).to.have.length(25);
      expect(transcript.durationSeconds).to.equal(10);
      expect(transcript.deltas.join("")).to.equal(transcript.text);
      expect(
        transcript.segments
          .map((segment) => segment.text)
          .join("")
          .trim(),
      ).to.equal(transcript.text);
      expect(transcript.segments).to.have.length(Math.ceil(25 / 8));
      expect(transcript.words.at(-1)?.end).to.equal(10);
      expect(transcript.segments[1]?.start).to.equal(transcript.words[8]?.start);
      expect(expectedTranscription(testWav(10)).text).to.equal(transcript.text);
      const other = Buffer.from(wav);
      other[100] = (other[100] ?? 0) ^ 1;
      expect(expectedTranscription(other).text).to.not.equal(transcript.text);
      // Not a WAV file: the duration comes from the size, 16 000 bytes a second.
      expect(expectedTranscription(Buffer.alloc(32_000, 7)).durationSeconds).to.equal(2);
      expect(expectedTranscription(Buffer.alloc(32_000, 7)).words).to.have.length(5);
    });
  });
});
