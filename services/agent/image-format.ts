const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** PNG colour types with an alpha channel: greyscale + alpha (4) and RGBA (6). */
const PNG_ALPHA_COLOR_TYPES: ReadonlySet<number> = new Set([4, 6]);

/** PngHeader is what a PNG's IHDR chunk says about the image. */
export interface PngHeader {
  readonly width: number;
  readonly height: number;
  /** hasAlpha is true for colour types with an alpha channel (a palette's tRNS transparency is not looked for). */
  readonly hasAlpha: boolean;
}

/** pngHeader reads a PNG's size and whether it has an alpha channel; undefined when bytes are not a PNG. */
export function pngHeader(bytes: Uint8Array): PngHeader | undefined {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // The signature, then IHDR first: length (4), "IHDR" (4), width (4), height (4), depth (1), colour type (1).
  if (buffer.length < 26 || !buffer.subarray(0, 8).equals(PNG_SIGNATURE) || buffer.toString("latin1", 12, 16) !== "IHDR") {
    return undefined;
  }
  return {
    width: buffer.readUInt32BE(16),
    height: buffer.readUInt32BE(20),
    hasAlpha: PNG_ALPHA_COLOR_TYPES.has(buffer[25] as number),
  };
}

/** imageMediaType names an image format by its first bytes: PNG, JPEG, WebP or GIF, else application/octet-stream. */
export function imageMediaType(bytes: Uint8Array): string {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.subarray(0, 8).equals(PNG_SIGNATURE)) return "image/png";
  if (buffer[0] === 0xff && buffer[1] === 0xd8 && buffer[2] === 0xff) return "image/jpeg";
  if (buffer.toString("latin1", 0, 4) === "RIFF" && buffer.toString("latin1", 8, 12) === "WEBP") return "image/webp";
  if (buffer.toString("latin1", 0, 4) === "GIF8") return "image/gif";
  return "application/octet-stream";
}

/** base64MediaType names the format of a base64-encoded image from its first bytes, without decoding all of it. */
export function base64MediaType(base64: string): string {
  // 16 base64 characters are 12 bytes, enough for every signature above.
  return imageMediaType(Buffer.from(base64.slice(0, 16), "base64"));
}
