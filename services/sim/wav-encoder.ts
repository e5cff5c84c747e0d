import { endianness } from "node:os";

/** WAV_HEADER_BYTES is the size of the canonical header wavHeader writes (RIFF, fmt and data chunk headers). */
export const WAV_HEADER_BYTES = 44;
/** TEST_WAV_SAMPLE_RATE is testWav's default rate (Hz), the rate speech recognisers usually want. */
export const TEST_WAV_SAMPLE_RATE = 16_000;
/** TEST_WAV_TONE_HZ is the pitch of testWav's tone. */
const TEST_WAV_TONE_HZ = 440;
/** TEST_WAV_AMPLITUDE keeps testWav's tone well below full scale. */
const TEST_WAV_AMPLITUDE = 0.25;

const LITTLE_ENDIAN_HOST = endianness() === "LE";

/** wavHeader is the 44-byte header of a mono 16-bit PCM WAV file with dataBytes bytes of samples. */
export function wavHeader(sampleRate: number, dataBytes: number): Buffer {
  const header = Buffer.alloc(WAV_HEADER_BYTES);
  header.write("RIFF", 0, "latin1");
  header.writeUInt32LE(36 + dataBytes, 4);
  header.write("WAVE", 8, "latin1");
  header.write("fmt ", 12, "latin1");
  header.writeUInt32LE(16, 16); // fmt chunk size
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * 2, 28); // byte rate
  header.writeUInt16LE(2, 32); // block align
  header.writeUInt16LE(16, 34); // bits per sample
  header.write("data", 36, "latin1");
  header.writeUInt32LE(dataBytes, 40);
  return header;
}

/** int16le lays samples out as signed 16-bit little-endian bytes, without copying on little-endian hosts. */
export function int16le(samples: Int16Array): Buffer {
  if (LITTLE_ENDIAN_HOST) return Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
  const bytes = Buffer.alloc(samples.length * 2);
  for (let index = 0; index < samples.length; index++) bytes.writeInt16LE(samples[index] ?? 0, index * 2);
  return bytes;
}

/** wavBytes is a complete mono 16-bit PCM WAV file of samples at sampleRate. */
export function wavBytes(samples: Int16Array, sampleRate: number): Buffer {
  return Buffer.concat([wavHeader(sampleRate, samples.length * 2), int16le(samples)]);
}

/**
 * testWav is a WAV upload for tests: a tone lasting seconds (rounded to whole samples) at sampleRate, so that its
 * header-declared duration, and with it the simulated transcript's length, is known.
 */
export function testWav(seconds: number, sampleRate = TEST_WAV_SAMPLE_RATE): Buffer {
  if (!(Number.isFinite(seconds) && seconds >= 0)) throw new RangeError(`testWav: seconds must be >= 0, got ${seconds}`);
  const samples = new Int16Array(Math.round(seconds * sampleRate));
  const step = (2 * Math.PI * TEST_WAV_TONE_HZ) / sampleRate;
  for (let index = 0; index < samples.length; index++) samples[index] = Math.round(Math.sin(index * step) * TEST_WAV_AMPLITUDE * 32767);
  return wavBytes(samples, sampleRate);
}

/** isWav tells whether bytes start like a WAV file (`RIFF....WAVE`). */
export function isWav(head: Uint8Array): boolean {
  return head.length >= 12 && ascii(head, 0, 4) === "RIFF" && ascii(head, 8, 12) === "WAVE";
}

/**
 * wavDurationSeconds reads a WAV file's duration from its header: the data chunk's size over the fmt chunk's byte
 * rate. head is the start of the file (it must reach the data chunk's header) and totalBytes the whole file's size,
 * used when the data size is unknown (0 or 0xFFFFFFFF, as streaming writers leave it) or larger than what arrived.
 * undefined when the bytes are not a WAV file with both chunks.
 */
export function wavDurationSeconds(head: Uint8Array, totalBytes: number): number | undefined {
  if (!isWav(head)) return undefined;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  let byteRate: number | undefined;
  let offset = 12;
  while (offset + 8 <= head.length) {
    const id = ascii(head, offset, offset + 4);
    const size = view.getUint32(offset + 4, true);
    if (id === "fmt " && offset + 20 <= head.length) byteRate = view.getUint32(offset + 16, true);
    if (id === "data") {
      if (byteRate === undefined || byteRate === 0) return undefined;
      const available = Math.max(0, totalBytes - (offset + 8));
      const dataBytes = size === 0 || size === 0xffffffff || size > available ? available : size;
      return dataBytes / byteRate;
    }
    // RIFF chunks are padded to an even size.
    offset += 8 + size + (size & 1);
  }
  return undefined;
}

function ascii(bytes: Uint8Array, from: number, to: number): string {
  return String.fromCharCode(...bytes.subarray(from, to));
}
