import { deflateSync } from "node:zlib";
import { crc32 } from "./checksums.js";

/** PNG_SIGNATURE opens every PNG file. */
export const PNG_SIGNATURE: Buffer = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** PNG_MAX_SIDE bounds a side so that an image's raw rows (3 bytes a pixel) stay within a few tens of MB. */
export const PNG_MAX_SIDE = 4096;

/** PngSize is an image's width and height in pixels. */
export interface PngSize {
  readonly width: number;
  readonly height: number;
}

/**
 * encodePng writes a valid 8-bit RGB PNG (signature, IHDR, one IDAT deflated by node:zlib, IEND, each with its CRC).
 * paintRow fills one row's width * 3 bytes (R, G, B per pixel); every row uses filter 0, which keeps encoding a
 * single pass and lets deflate do the work on the flat colours the simulator paints.
 */
export function encodePng(width: number, height: number, paintRow: (y: number, rgb: Buffer) => void): Buffer {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`encodePng: bad size ${width}x${height}`);
  }
  const stride = 1 + width * 3;
  const raw = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) paintRow(y, raw.subarray(y * stride + 1, (y + 1) * stride));
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: truecolour
  // Bytes 10-12 (compression, filter method, interlace) stay 0: deflate, adaptive filtering, no interlace.
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk("IHDR", header),
    pngChunk("IDAT", deflateSync(raw, { level: 6 })),
    pngChunk("IEND", Buffer.alloc(0)),
  ]);
}

/** pngChunk frames one chunk: length, type, data and the CRC of type and data. */
function pngChunk(type: string, data: Buffer): Buffer {
  const chunk = Buffer.alloc(12 + data.length);
  chunk.writeUInt32BE(data.length, 0);
  chunk.write(type, 4, "latin1");
  data.copy(chunk, 8);
  chunk.writeUInt32BE(crc32(chunk.subarray(4, 8 + data.length)), 8 + data.length);
  return chunk;
}

/** pngDimensions reads a PNG's size from its IHDR chunk; undefined when bytes do not start like a PNG. */
export function pngDimensions(bytes: Uint8Array): PngSize | undefined {
  if (bytes.length < 24) return undefined;
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!buffer.subarray(0, 8).equals(PNG_SIGNATURE) || buffer.toString("latin1", 12, 16) !== "IHDR") return undefined;
  return { width: buffer.readUInt32BE(16), height: buffer.readUInt32BE(20) };
}

/** isPng tells whether bytes start with the PNG signature. */
export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && Buffer.from(bytes.buffer, bytes.byteOffset, 8).equals(PNG_SIGNATURE);
}
