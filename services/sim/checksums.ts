// The simulator writes its media containers itself (node:zlib has crc32 only from Node 22), so each container's
// checksum lives here, table-driven, computed once at load.

/** CRC32_TABLE drives crc32 (reflected polynomial 0xEDB88320, as zlib and PNG use). */
const CRC32_TABLE = buildTable((value) => {
  let c = value;
  for (let bit = 0; bit < 8; bit++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** OGG_CRC_TABLE drives oggCrc32 (polynomial 0x04C11DB7, not reflected). */
const OGG_CRC_TABLE = buildTable((value) => {
  let c = value << 24;
  for (let bit = 0; bit < 8; bit++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
  return c >>> 0;
});

/** FLAC_CRC16_TABLE drives flacCrc16 (polynomial 0x8005, not reflected). */
const FLAC_CRC16_TABLE = buildTable((value) => {
  let c = value << 8;
  for (let bit = 0; bit < 8; bit++) c = c & 0x8000 ? (c << 1) ^ 0x8005 : c << 1;
  return c & 0xffff;
});

/** FLAC_CRC8_TABLE drives flacCrc8 (polynomial 0x07). */
const FLAC_CRC8_TABLE = buildTable((value) => {
  let c = value;
  for (let bit = 0; bit < 8; bit++) c = c & 0x80 ? (c << 1) ^ 0x07 : c << 1;
  return c & 0xff;
});

function buildTable(entry: (value: number) => number): Uint32Array {
  const table = new Uint32Array(256);
  for (let value = 0; value < 256; value++) table[value] = entry(value);
  return table;
}

/** crc32 is the CRC-32 of PNG chunks and zlib; pass the previous result as crc to continue over several buffers. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let index = 0; index < bytes.length; index++) c = (CRC32_TABLE[(c ^ (bytes[index] ?? 0)) & 0xff] ?? 0) ^ (c >>> 8);
  return ~c >>> 0;
}

/** oggCrc32 is the CRC of an Ogg page (computed with the page's CRC field zeroed). */
export function oggCrc32(bytes: Uint8Array): number {
  let c = 0;
  for (let index = 0; index < bytes.length; index++) {
    c = ((c << 8) ^ (OGG_CRC_TABLE[((c >>> 24) ^ (bytes[index] ?? 0)) & 0xff] ?? 0)) >>> 0;
  }
  return c;
}

/** flacCrc8 is the CRC that closes a FLAC frame header. */
export function flacCrc8(bytes: Uint8Array): number {
  let c = 0;
  for (let index = 0; index < bytes.length; index++) c = FLAC_CRC8_TABLE[c ^ (bytes[index] ?? 0)] ?? 0;
  return c;
}

/** flacCrc16 is the CRC that closes a whole FLAC frame. */
export function flacCrc16(bytes: Uint8Array): number {
  let c = 0;
  for (let index = 0; index < bytes.length; index++) {
    c = ((c << 8) ^ (FLAC_CRC16_TABLE[((c >>> 8) ^ (bytes[index] ?? 0)) & 0xff] ?? 0)) & 0xffff;
  }
  return c;
}
