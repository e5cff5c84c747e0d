import { deflateSync } from "node:zlib";

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** TinyPngOptions describe a test image: its size, whether it has an alpha channel, and a seed for its pixels. */
export interface TinyPngOptions {
  readonly width: number;
  readonly height: number;
  readonly alpha?: boolean;
  readonly seed?: number;
}

/**
 * tinyPng encodes a real, decodable PNG (8-bit RGB or RGBA) whose pixels follow the seed, so tests can tell images
 * apart by their bytes and check that they survive base64 round trips unchanged.
 */
export function tinyPng({ width, height, alpha = false, seed = 1 }: TinyPngOptions): Buffer {
  const channels = alpha ? 4 : 3;
  const raw = Buffer.alloc((width * channels + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * channels + 1);
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) {
        // An alpha channel transparent in the left half: OpenAI's mask convention for "edit here".
        raw[row + 1 + x * channels + c] = c === 3 ? (x < width / 2 ? 0 : 255) : (x * 7 + y * 13 + c * 29 + seed * 31) & 0xff;
      }
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8;
  header[9] = alpha ? 6 : 2;
  return Buffer.concat([SIGNATURE, chunk("IHDR", header), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const byte of bytes) c = (CRC_TABLE[(c ^ byte) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
