import { expect } from "chai";
import { createAudioEncoder, type SpeechFormat } from "../sim/audio-encoder.js";
import { oggCrc32 } from "../sim/checksums.js";
import { expectedSpeech, SPEECH_SAMPLE_RATE, speechSampleCount } from "../sim/simulated-speech.js";
import { testWav, wavHeader } from "../sim/wav-encoder.js";
import { AudioDurationMeter, type AudioFormat, audioDurationSeconds, PCM_BYTES_PER_SECOND } from "./audio-duration.js";

const INPUT = "The quick brown fox jumps over the lazy dog, twice over.";
const SAMPLES = speechSampleCount(INPUT);
/** PIECE_SIZES cut audio at every kind of boundary: inside signatures, headers, frames and pages. */
const PIECE_SIZES = [1, 2, 3, 5, 7, 13, 64, 1000, 4096];

/** inPieces measures bytes pushed in pieces of size bytes. */
function inPieces(bytes: Uint8Array, size: number, declared?: AudioFormat): number | undefined {
  const meter = new AudioDurationMeter(declared);
  for (let at = 0; at < bytes.length; at += size) meter.push(bytes.subarray(at, at + size));
  return meter.seconds();
}

/** expectSeconds expects bytes to measure seconds, whole and in every piece size. */
function expectSeconds(bytes: Uint8Array, seconds: number, declared?: AudioFormat): void {
  expect(audioDurationSeconds(bytes, declared), "whole").to.be.closeTo(seconds, 1e-9);
  for (const size of PIECE_SIZES) expect(inPieces(bytes, size, declared), `in pieces of ${size}`).to.be.closeTo(seconds, 1e-9);
}

/** encoded is N samples of silence in format at rate, encoded by the simulator's encoders a second at a time. */
function encoded(format: SpeechFormat, samples: number, rate = SPEECH_SAMPLE_RATE): Buffer {
  const encoder = createAudioEncoder(format, rate, samples);
  const out: Buffer[] = [];
  for (let at = 0; at < samples; at += rate) out.push(encoder.push(new Int16Array(Math.min(rate, samples - at))));
  out.push(encoder.finish());
  return Buffer.concat(out);
}

/** mp3Frame is one MPEG-1 Layer III frame, 128 kbit/s, 44.1 kHz, mono (417 bytes, 418 padded), its body filled with fill. */
function mp3Frame(options: { padded?: boolean; body?: Buffer } = {}): Buffer {
  const frame = Buffer.alloc(options.padded ? 418 : 417);
  frame.set([0xff, 0xfb, options.padded ? 0x92 : 0x90, 0xc0]);
  options.body?.copy(frame, 4);
  return frame;
}

/** xingFrame is an MP3 frame holding a Xing (or Info) header after its 17 bytes of mono side information. */
function xingFrame(tag: "Xing" | "Info", frames: number | undefined): Buffer {
  const body = Buffer.alloc(17 + 12);
  body.write(tag, 17, "latin1");
  body.writeUInt32BE(frames === undefined ? 0 : 1, 21);
  body.writeUInt32BE(frames ?? 0, 25);
  return mp3Frame({ body });
}

/** oggPage is one Ogg page of packets (each under 255 bytes) with its CRC. */
function oggPage(packets: readonly Buffer[], options: { flags?: number; granule: bigint; serial?: number; sequence: number }): Buffer {
  const header = Buffer.alloc(27 + packets.length);
  header.write("OggS", 0, "latin1");
  header[5] = options.flags ?? 0;
  header.writeBigInt64LE(options.granule, 6);
  header.writeUInt32LE(options.serial ?? 1, 14);
  header.writeUInt32LE(options.sequence, 18);
  header[26] = packets.length;
  header.set(
    packets.map((packet) => packet.length),
    27,
  );
  const page = Buffer.concat([header, ...packets]);
  page.writeUInt32LE(oggCrc32(page), 22);
  return page;
}

/** withOggPreSkip rewrites the OpusHead pre-skip of the simulator's Ogg Opus, and the first page's CRC. */
function withOggPreSkip(ogg: Buffer, preSkip: number): Buffer {
  const copy = Buffer.from(ogg);
  const firstPageLength = 27 + (copy[26] as number) + 19;
  copy.writeUInt16LE(preSkip, 27 + (copy[26] as number) + 10);
  copy.writeUInt32LE(0, 22);
  copy.writeUInt32LE(oggCrc32(copy.subarray(0, firstPageLength)), 22);
  return copy;
}

/** withFlacPadding inserts a PADDING metadata block of size bytes after STREAMINFO, which is then no longer last. */
function withFlacPadding(flac: Buffer, size: number): Buffer {
  const streamInfoEnd = 4 + 4 + 34;
  const head = Buffer.from(flac.subarray(0, streamInfoEnd));
  head[4] = 0x00;
  const padding = Buffer.alloc(4 + size);
  padding[0] = 0x81;
  padding.writeUIntBE(size, 1, 3);
  return Buffer.concat([head, padding, flac.subarray(streamInfoEnd)]);
}

/** seededBytes are length pseudo-random bytes, the same for a seed on every run. */
function seededBytes(length: number, seed: number): Buffer {
  const bytes = Buffer.alloc(length);
  let state = seed >>> 0 || 1;
  for (let index = 0; index < length; index++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    bytes[index] = state & 0xff;
  }
  return bytes;
}

describe("audio duration from the bytes", () => {
  describe("the simulator's speech in every format OpenAI names", () => {
    const exact = SAMPLES / SPEECH_SAMPLE_RATE;
    const cases: readonly [SpeechFormat, number][] = [
      ["wav", exact],
      ["pcm", exact],
      ["flac", exact],
      ["opus", exact],
      // MP3 and AAC round up to whole frames: 576 samples (MPEG-2 Layer III) and 1,024 (AAC).
      ["mp3", (Math.ceil(SAMPLES / 576) * 576) / SPEECH_SAMPLE_RATE],
      ["aac", (Math.ceil(SAMPLES / 1024) * 1024) / SPEECH_SAMPLE_RATE],
    ];
    for (const [format, seconds] of cases) {
      it(`measures ${format} as the simulator encoded it, whole and cut anywhere`, () => {
        expectSeconds(expectedSpeech(INPUT, format), seconds, format === "pcm" ? "pcm" : undefined);
      });
    }

    it("measures ten minutes of each format in 64 KiB pieces as quickly as they pass", () => {
      const samples = 10 * 60 * SPEECH_SAMPLE_RATE;
      for (const format of ["mp3", "aac", "opus", "flac", "wav"] as const) {
        const bytes = encoded(format, samples);
        const started = performance.now();
        const seconds = inPieces(bytes, 64 * 1024);
        expect(seconds, format).to.be.closeTo(600, 0.05);
        expect(performance.now() - started, `${format}: ${bytes.length} bytes`).to.be.below(1_000);
      }
    });
  });

  describe("wav", () => {
    it("reads the data size over the byte rate, at any rate", () => {
      expectSeconds(testWav(1.5, 16_000), 1.5);
      expectSeconds(testWav(0.25, 44_100), 0.25);
    });

    it("counts the bytes that arrived when a streaming writer left the size unknown (0 or 0xFFFFFFFF), or larger than they", () => {
      const wav = testWav(2, 8_000);
      for (const size of [0, 0xffff_ffff, 10_000_000]) {
        const streamed = Buffer.from(wav);
        streamed.writeUInt32LE(size, 40);
        streamed.writeUInt32LE(size === 0 ? 0 : 0xffff_ffff, 4);
        expectSeconds(streamed, 2);
      }
      const rf64 = Buffer.from(wav);
      rf64.write("RF64", 0, "latin1");
      rf64.writeUInt32LE(0xffff_ffff, 40);
      expectSeconds(rf64, 2);
    });

    it("stops at the data chunk's size when chunks follow it, and finds it after LIST chunks of odd size", () => {
      expectSeconds(Buffer.concat([testWav(1, 8_000), Buffer.from("LIST\x04\x00\x00\x00INFO", "latin1")]), 1);
      const header = wavHeader(8_000, 16_000);
      const list = Buffer.concat([Buffer.from("LIST\x05\x00\x00\x00INFO!\x00", "latin1")]);
      const withList = Buffer.concat([header.subarray(0, 36), list, header.subarray(36), Buffer.alloc(16_000)]);
      withList.writeUInt32LE(withList.length - 8, 4);
      expectSeconds(withList, 1);
    });

    it("has none without a data chunk, or with one before any fmt chunk", () => {
      expect(audioDurationSeconds(wavHeader(8_000, 100).subarray(0, 36))).to.equal(undefined);
      const noFmt = Buffer.concat([Buffer.from("RIFF\x00\x00\x00\x00WAVEdata\x04\x00\x00\x00", "latin1"), Buffer.alloc(4)]);
      expect(audioDurationSeconds(noFmt)).to.equal(undefined);
    });
  });

  describe("pcm", () => {
    it("is OpenAI's 24 kHz 16-bit mono when declared: bytes / 48,000, whatever they hold", () => {
      expect(PCM_BYTES_PER_SECOND).to.equal(48_000);
      expectSeconds(Buffer.alloc(72_000), 1.5, "pcm");
      // Samples that happen to look like an MP3 frame sync stay samples.
      expectSeconds(Buffer.concat([Buffer.from([0xff, 0xfb, 0x90, 0xc0]), Buffer.alloc(47_996)]), 1, "pcm");
      expect(audioDurationSeconds(new Uint8Array(0), "pcm")).to.equal(undefined);
    });

    it("is not guessed: undeclared raw samples have no duration", () => {
      expect(audioDurationSeconds(Buffer.alloc(48_000))).to.equal(undefined);
    });

    it("gives way to a container the bytes announce, as a server that answers wav when asked for pcm does", () => {
      expectSeconds(testWav(0.5, 24_000), 0.5, "pcm");
    });
  });

  describe("flac", () => {
    it("reads STREAMINFO's total samples over its rate", () => {
      expectSeconds(encoded("flac", 44_100, 44_100), 1);
    });

    it("follows the frames when a streaming encoder left the total 0, past other metadata blocks", () => {
      const streamed = Buffer.from(encoded("flac", 30_000));
      streamed.fill(0, 22, 26);
      streamed[21] = (streamed[21] as number) & 0xf0;
      expectSeconds(streamed, 30_000 / SPEECH_SAMPLE_RATE);
      expectSeconds(withFlacPadding(streamed, 3_000), 30_000 / SPEECH_SAMPLE_RATE);
    });

    it("counts only frames that start where the last ended, not sync codes inside the audio", () => {
      // Verbatim 16-bit samples of 0xFFF8 followed by a byte that could open a header, with any CRC.
      const encoder = createAudioEncoder("flac", 8_000, 0);
      const samples = new Int16Array(8_000).fill(-8);
      const flac = Buffer.concat([encoder.push(samples), encoder.finish()]);
      expect(flac.indexOf(Buffer.from([0xff, 0xf8]), 42 + 16)).to.be.above(0);
      expectSeconds(flac, 1);
    });

    it("has none without STREAMINFO first", () => {
      const flac = Buffer.from(encoded("flac", 1_000));
      flac[4] = 0x81;
      expect(audioDurationSeconds(flac)).to.equal(undefined);
      expect(audioDurationSeconds(flac.subarray(0, 20))).to.equal(undefined);
    });
  });

  describe("opus and vorbis in ogg", () => {
    it("reads the last granule position less the pre-skip, over 48 kHz", () => {
      const ogg = encoded("opus", 48_000, 48_000);
      expectSeconds(ogg, 1);
      expectSeconds(withOggPreSkip(ogg, 312), 1 - 312 / 48_000);
    });

    it("reads Vorbis's own rate, and only the measured stream's pages", () => {
      const id = Buffer.alloc(30);
      id.write("\x01vorbis", 0, "latin1");
      id.writeUInt32LE(44_100, 12);
      const vorbis = Buffer.concat([
        oggPage([id], { flags: 0x02, granule: 0n, sequence: 0 }),
        oggPage([Buffer.from("\x05vorbis", "latin1")], { granule: 0n, sequence: 1 }),
        oggPage([Buffer.alloc(100)], { granule: 44_100n, sequence: 2 }),
        oggPage([Buffer.alloc(100)], { granule: 999_999n, serial: 2, sequence: 0 }),
        oggPage([Buffer.alloc(10)], { granule: -1n, sequence: 3 }),
        oggPage([Buffer.alloc(100)], { flags: 0x04, granule: 66_150n, sequence: 4 }),
      ]);
      expectSeconds(vorbis, 1.5);
    });

    it("ends the walk at bytes that are not a page, and has none for an Ogg stream of another codec", () => {
      expectSeconds(Buffer.concat([encoded("opus", 24_000), Buffer.from("trailing junk")]), 1);
      const theora = oggPage([Buffer.from("\x80theora\x03\x02\x01", "latin1")], { flags: 0x02, granule: 0n, sequence: 0 });
      expect(audioDurationSeconds(Buffer.concat([theora, oggPage([Buffer.alloc(9)], { granule: 99n, sequence: 1 })]))).to.equal(undefined);
    });
  });

  describe("mp3", () => {
    it("walks the frames after an ID3v2 tag, padded frames included", () => {
      const frames = [mp3Frame(), mp3Frame({ padded: true }), mp3Frame(), mp3Frame({ padded: true })];
      expectSeconds(Buffer.concat(frames), (4 * 1152) / 44_100);
      const tagged = encoded("mp3", 24_000);
      expect(tagged.subarray(0, 3).toString("latin1")).to.equal("ID3");
      expectSeconds(tagged, (Math.ceil(24_000 / 576) * 576) / 24_000);
    });

    it("takes the frame count of a Xing, Info or VBRI header, whose frame is no audio", () => {
      const audio = [mp3Frame(), mp3Frame(), mp3Frame()];
      expectSeconds(Buffer.concat([xingFrame("Xing", 1000), ...audio]), (1000 * 1152) / 44_100);
      expectSeconds(Buffer.concat([xingFrame("Info", 20), ...audio]), (20 * 1152) / 44_100);
      expectSeconds(Buffer.concat([xingFrame("Xing", undefined), ...audio]), (3 * 1152) / 44_100);
      const vbriBody = Buffer.alloc(32 + 18);
      vbriBody.write("VBRI", 32, "latin1");
      vbriBody.writeUInt32BE(50, 32 + 14);
      expectSeconds(Buffer.concat([mp3Frame({ body: vbriBody }), ...audio]), (50 * 1152) / 44_100);
    });

    it("reads Layer II and MPEG-2.5 frames at their own sizes and rates", () => {
      const layer2 = Buffer.alloc(384);
      layer2.set([0xff, 0xfd, 0x84, 0xc0]);
      expectSeconds(Buffer.concat([layer2, layer2]), (2 * 1152) / 48_000);
      // MPEG-2.5 Layer III, 8 kbit/s at 8 kHz: 72 bytes of 576 samples.
      const mpeg25 = Buffer.alloc(72);
      mpeg25.set([0xff, 0xe3, 0x18, 0xc0]);
      expectSeconds(Buffer.concat([mpeg25, mpeg25, mpeg25]), (3 * 576) / 8_000);
    });

    it("ends the walk where a frame header is missing: an ID3v1 tag, junk", () => {
      const frames = Buffer.concat([mp3Frame(), mp3Frame()]);
      const id3v1 = Buffer.concat([Buffer.from("TAG", "latin1"), Buffer.alloc(125)]);
      expectSeconds(Buffer.concat([frames, id3v1]), (2 * 1152) / 44_100);
      expectSeconds(Buffer.concat([frames, seededBytes(5_000, 7), mp3Frame()]), (2 * 1152) / 44_100);
    });

    it("has none for a tag without frames, or free-format frames", () => {
      const tagOnly = encoded("mp3", 0).subarray(0, 33);
      expect(audioDurationSeconds(Buffer.concat([tagOnly, seededBytes(100, 3)]))).to.equal(undefined);
      const free = Buffer.alloc(400);
      free.set([0xff, 0xfb, 0x00, 0xc0]);
      expect(audioDurationSeconds(free)).to.equal(undefined);
    });
  });

  describe("aac in ADTS", () => {
    it("counts 1,024 samples per raw data block over the frame's rate", () => {
      expectSeconds(encoded("aac", 44_100, 44_100), (Math.ceil(44_100 / 1024) * 1024) / 44_100);
      const frame = Buffer.from(encoded("aac", 1024, 16_000));
      const twoBlocks = Buffer.from(frame);
      twoBlocks[6] = ((twoBlocks[6] as number) & 0xfc) | 0x01;
      expectSeconds(Buffer.concat([frame, twoBlocks, frame]), (4 * 1024) / 16_000);
    });
  });

  describe("what is not audio", () => {
    it("has no duration, never an exception: nothing, text, JSON, a PNG, random bytes, a lone header", () => {
      const png = Buffer.from("89504e470d0a1a0a0000000d49484452", "hex");
      const notAudio = [
        Buffer.alloc(0),
        Buffer.from("RIFF"),
        Buffer.from("hello, world"),
        Buffer.from('{"error":{"message":"no"}}'),
        png,
        ...[1, 2, 3, 4, 5].map((seed) => seededBytes(10_000, seed)),
      ];
      for (const bytes of notAudio) {
        expect(audioDurationSeconds(bytes), bytes.subarray(0, 12).toString("hex")).to.equal(undefined);
        for (const size of PIECE_SIZES) expect(inPieces(bytes, size)).to.equal(undefined);
      }
    });

    it("never throws on damaged audio, and says nothing or a length, never a negative or infinite one", () => {
      const samples = [
        ...(["mp3", "aac", "opus", "flac", "wav"] as const).map((format) => encoded(format, 2_000)),
        Buffer.concat([xingFrame("Xing", 7), mp3Frame()]),
      ];
      for (const [index, original] of samples.entries()) {
        for (let round = 0; round < 120; round++) {
          const damaged = Buffer.from(original);
          const noise = seededBytes(8, index * 1_000 + round);
          for (let hit = 0; hit < 4; hit++) {
            damaged[((noise[hit] as number) * 257 + (noise[hit + 4] as number)) % Math.min(damaged.length, 200)] = noise[hit + 2] as number;
          }
          const cut = damaged.subarray(0, damaged.length - (round % 50));
          for (const measure of [() => audioDurationSeconds(cut), () => inPieces(cut, 1 + (round % 17))]) {
            const seconds = measure();
            if (seconds !== undefined) expect(Number.isFinite(seconds) && seconds >= 0, String(seconds)).to.equal(true);
          }
        }
      }
    });
  });
});
