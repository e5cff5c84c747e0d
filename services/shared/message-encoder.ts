import { create, ScalarType, toBinary } from "@bufbuild/protobuf";
import type { DescField, DescMessage, MessageInitShape } from "@bufbuild/protobuf";

/**
 * encodeMessage writes a message, given as an init object or a created message, in the protobuf binary format: the
 * same bytes as protobuf-es's `toBinary(schema, create(schema, message))`, at a fraction of the cost for the messages
 * a server sends on every call. protobuf-es builds every nested message, wraps each in a reflection object and
 * writes through a chunked writer; this reads the init object once to measure it and once to write it into one
 * buffer. Messages with a field of a kind it does not write (64-bit and floating-point numbers, groups, unknown
 * fields) go through protobuf-es; message-encoder.test.ts checks that both agree byte for byte.
 */
export function encodeMessage(schema: DescMessage, message: unknown): Buffer {
  if (!isDirect(schema)) return viaProtobufEs(schema, message);
  const sizes: number[] = [];
  let size: number;
  try {
    size = measureMessage(schema, message as Fields, sizes);
  } catch (error) {
    // A value of the wrong type: protobuf-es names the field in its error.
    if (error instanceof UnexpectedValue) return viaProtobufEs(schema, message);
    throw error;
  }
  const writer: Writer = { bytes: Buffer.allocUnsafe(size), at: 0, sizes, nextSize: 0 };
  writeMessage(schema, message as Fields, writer);
  return writer.bytes;
}

function viaProtobufEs(schema: DescMessage, message: unknown): Buffer {
  const bytes = toBinary(schema, create(schema, message as MessageInitShape<DescMessage>));
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Fields is a message's properties, read by their local names. */
type Fields = Readonly<Record<string, unknown>>;

/** UnexpectedValue stops the direct path at a value of the wrong type, for protobuf-es to report. */
class UnexpectedValue extends Error {}

/** DIRECT_SCALARS are the scalar types written directly: those a varint or a length-delimited field carries. */
const DIRECT_SCALARS: ReadonlySet<ScalarType> = new Set([ScalarType.STRING, ScalarType.BYTES, ScalarType.BOOL, ScalarType.INT32, ScalarType.UINT32]);

const WIRE_VARINT = 0;
const WIRE_LENGTH_DELIMITED = 2;
/** IMPLICIT_PRESENCE is google.protobuf.FeatureSet.FieldPresence.IMPLICIT: proto3's "set unless zero". */
const IMPLICIT_PRESENCE = 2;

const sortedFieldsOf = new WeakMap<DescMessage, readonly DescField[]>();
const directness = new WeakMap<DescMessage, boolean>();

/** sortedFields are a message's fields by number, the order protobuf-es writes them in. */
function sortedFields(schema: DescMessage): readonly DescField[] {
  let fields = sortedFieldsOf.get(schema);
  if (fields === undefined) {
    fields = [...schema.fields].sort((a, b) => a.number - b.number);
    sortedFieldsOf.set(schema, fields);
  }
  return fields;
}

/** isDirect tells whether every field of schema, and of the messages it holds, is of a kind written directly. */
function isDirect(schema: DescMessage, visiting = new Set<DescMessage>()): boolean {
  const known = directness.get(schema);
  if (known !== undefined) return known;
  if (visiting.has(schema)) return true;
  visiting.add(schema);
  const direct = schema.fields.every((field) => isDirectField(field, visiting));
  visiting.delete(schema);
  if (visiting.size === 0) directness.set(schema, direct);
  return direct;
}

function isDirectField(field: DescField, visiting: Set<DescMessage>): boolean {
  switch (field.fieldKind) {
    case "scalar":
      return DIRECT_SCALARS.has(field.scalar);
    case "enum":
      return true;
    case "message":
      return !field.delimitedEncoding && isDirect(field.message, visiting);
    case "list":
      if (field.listKind === "message") return !field.delimitedEncoding && isDirect(field.message, visiting);
      return field.listKind === "enum" || DIRECT_SCALARS.has(field.scalar);
    case "map":
      // Only the string-to-string maps of headers and labels: other maps are rare enough for protobuf-es.
      return field.mapKey === ScalarType.STRING && field.mapKind === "scalar" && field.scalar === ScalarType.STRING;
  }
}

/** valueOf is a field's value when it is set, else undefined, by protobuf-es's rules of presence. */
function valueOf(field: DescField, message: Fields): unknown {
  if (field.oneof) {
    const selected = message[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
    return selected?.case === field.localName ? selected.value : undefined;
  }
  const value = message[field.localName];
  if (value === undefined || value === null) return undefined;
  if (field.presence !== IMPLICIT_PRESENCE) return value;
  switch (field.fieldKind) {
    case "list":
      return (value as readonly unknown[]).length > 0 ? value : undefined;
    case "map":
      return Object.keys(value as object).length > 0 ? value : undefined;
    case "enum":
      return value === field.enum.values[0]?.number ? undefined : value;
    case "scalar":
      return isZero(field.scalar, value) ? undefined : value;
    case "message":
      return value;
  }
}

function isZero(type: ScalarType, value: unknown): boolean {
  switch (type) {
    case ScalarType.BOOL:
      return value === false;
    case ScalarType.STRING:
      return value === "";
    case ScalarType.BYTES:
      return value instanceof Uint8Array && value.byteLength === 0;
    default:
      return value === 0;
  }
}

/**
 * measureMessage is the encoded size of message; it records the size of every message it holds in sizes, in the
 * order writeMessage visits them, so that each length prefix is known before its message is written.
 */
function measureMessage(schema: DescMessage, message: Fields, sizes: number[]): number {
  if (typeof message !== "object" || message === null) throw new UnexpectedValue();
  if (((message as { $unknown?: readonly unknown[] }).$unknown?.length ?? 0) > 0) throw new UnexpectedValue();
  let size = 0;
  for (const field of sortedFields(schema)) {
    const value = valueOf(field, message);
    if (value === undefined) continue;
    const tagSize = varintSize(field.number << 3);
    switch (field.fieldKind) {
      case "scalar":
      case "enum":
        size += tagSize + measureScalar(scalarType(field), value);
        break;
      case "message":
        size += tagSize + measureNested(field.message, value, sizes);
        break;
      case "list":
        if (!Array.isArray(value)) throw new UnexpectedValue();
        if (field.listKind === "message") {
          for (const item of value) size += tagSize + measureNested(field.message, item, sizes);
        } else if (isPacked(field)) {
          let packed = 0;
          for (const item of value) packed += measureScalar(scalarType(field), item);
          size += tagSize + varintSize(packed) + packed;
        } else {
          for (const item of value) size += tagSize + measureScalar(scalarType(field), item);
        }
        break;
      case "map":
        for (const [key, item] of Object.entries(value as object)) {
          const entry = mapEntrySize(key, item);
          size += tagSize + varintSize(entry) + entry;
        }
        break;
    }
  }
  return size;
}

function measureNested(schema: DescMessage, message: unknown, sizes: number[]): number {
  const slot = sizes.length;
  sizes.push(0);
  const size = measureMessage(schema, message as Fields, sizes);
  sizes[slot] = size;
  return varintSize(size) + size;
}

/** mapEntrySize is the size of a string-to-string map entry: key as field 1, value as field 2. */
function mapEntrySize(key: string, value: unknown): number {
  return 1 + measureScalar(ScalarType.STRING, key) + 1 + measureScalar(ScalarType.STRING, value);
}

function measureScalar(type: ScalarType, value: unknown): number {
  switch (type) {
    case ScalarType.STRING: {
      if (typeof value !== "string") throw new UnexpectedValue();
      const length = Buffer.byteLength(value, "utf8");
      return varintSize(length) + length;
    }
    case ScalarType.BYTES:
      if (!(value instanceof Uint8Array)) throw new UnexpectedValue();
      return varintSize(value.byteLength) + value.byteLength;
    case ScalarType.BOOL:
      if (typeof value !== "boolean") throw new UnexpectedValue();
      return 1;
    case ScalarType.UINT32:
      if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 0xffff_ffff) throw new UnexpectedValue();
      return varintSize(value);
    default:
      if (typeof value !== "number" || !Number.isInteger(value) || value < -0x8000_0000 || value > 0x7fff_ffff) throw new UnexpectedValue();
      // A negative int32 is sign-extended to ten bytes.
      return value < 0 ? 10 : varintSize(value);
  }
}

interface Writer {
  readonly bytes: Buffer;
  at: number;
  readonly sizes: readonly number[];
  nextSize: number;
}

function writeMessage(schema: DescMessage, message: Fields, writer: Writer): void {
  for (const field of sortedFields(schema)) {
    const value = valueOf(field, message);
    if (value === undefined) continue;
    switch (field.fieldKind) {
      case "scalar":
      case "enum": {
        const type = scalarType(field);
        writeVarint(writer, (field.number << 3) | wireType(type));
        writeScalar(writer, type, value);
        break;
      }
      case "message":
        writeVarint(writer, (field.number << 3) | WIRE_LENGTH_DELIMITED);
        writeNested(field.message, value, writer);
        break;
      case "list": {
        const items = value as readonly unknown[];
        if (field.listKind === "message") {
          for (const item of items) {
            writeVarint(writer, (field.number << 3) | WIRE_LENGTH_DELIMITED);
            writeNested(field.message, item, writer);
          }
          break;
        }
        const type = scalarType(field);
        if (isPacked(field)) {
          let packed = 0;
          for (const item of items) packed += measureScalar(type, item);
          writeVarint(writer, (field.number << 3) | WIRE_LENGTH_DELIMITED);
          writeVarint(writer, packed);
          for (const item of items) writeScalar(writer, type, item);
        } else {
          for (const item of items) {
            writeVarint(writer, (field.number << 3) | wireType(type));
            writeScalar(writer, type, item);
          }
        }
        break;
      }
      case "map":
        for (const [key, item] of Object.entries(value as object)) {
          writeVarint(writer, (field.number << 3) | WIRE_LENGTH_DELIMITED);
          writeVarint(writer, mapEntrySize(key, item));
          writeVarint(writer, (1 << 3) | WIRE_LENGTH_DELIMITED);
          writeScalar(writer, ScalarType.STRING, key);
          writeVarint(writer, (2 << 3) | WIRE_LENGTH_DELIMITED);
          writeScalar(writer, ScalarType.STRING, item);
        }
        break;
    }
  }
}

function writeNested(schema: DescMessage, message: unknown, writer: Writer): void {
  writeVarint(writer, writer.sizes[writer.nextSize++] ?? 0);
  writeMessage(schema, message as Fields, writer);
}

function writeScalar(writer: Writer, type: ScalarType, value: unknown): void {
  switch (type) {
    case ScalarType.STRING: {
      const text = value as string;
      writeVarint(writer, Buffer.byteLength(text, "utf8"));
      writer.at += writer.bytes.write(text, writer.at, "utf8");
      return;
    }
    case ScalarType.BYTES: {
      const bytes = value as Uint8Array;
      writeVarint(writer, bytes.byteLength);
      writer.bytes.set(bytes, writer.at);
      writer.at += bytes.byteLength;
      return;
    }
    case ScalarType.BOOL:
      writer.bytes[writer.at++] = value ? 1 : 0;
      return;
    default:
      writeInt(writer, value as number);
  }
}

/** writeInt writes an int32 or uint32 varint; a negative int32 as the ten bytes of its 64-bit two's complement. */
function writeInt(writer: Writer, value: number): void {
  if (value >= 0) {
    writeVarint(writer, value);
    return;
  }
  let low = value >>> 0;
  for (let i = 0; i < 4; i++) {
    writer.bytes[writer.at++] = (low & 0x7f) | 0x80;
    low >>>= 7;
  }
  // Bits 28 to 31 of the low word, then the high word's 32 set bits.
  writer.bytes[writer.at++] = (low & 0x0f) | 0x70 | 0x80;
  for (let i = 0; i < 4; i++) writer.bytes[writer.at++] = 0xff;
  writer.bytes[writer.at++] = 0x01;
}

/** writeVarint writes a non-negative number below 2^32. */
function writeVarint(writer: Writer, value: number): void {
  let rest = value;
  while (rest > 0x7f) {
    writer.bytes[writer.at++] = (rest & 0x7f) | 0x80;
    rest = Math.floor(rest / 128);
  }
  writer.bytes[writer.at++] = rest;
}

function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x20_0000) return 3;
  if (value < 0x1000_0000) return 4;
  return 5;
}

function scalarType(field: DescField & { fieldKind: "scalar" | "enum" | "list" }): ScalarType {
  if (field.fieldKind === "enum" || (field.fieldKind === "list" && field.listKind === "enum")) return ScalarType.INT32;
  return (field as { scalar: ScalarType }).scalar;
}

function wireType(type: ScalarType): number {
  return type === ScalarType.STRING || type === ScalarType.BYTES ? WIRE_LENGTH_DELIMITED : WIRE_VARINT;
}

function isPacked(field: DescField & { fieldKind: "list" }): boolean {
  return field.listKind !== "message" && field.packed;
}
