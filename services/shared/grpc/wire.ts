import { Code } from "@connectrpc/connect";

/**
 * The gRPC over HTTP/2 wire format, as far as a client of uncompressed calls needs it
 * (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md): length-prefixed messages, grpc-timeout,
 * grpc-status and its percent-encoded grpc-message, and the status an HTTP failure stands for.
 */

/** PREFIX_BYTES is a message's prefix: one flag byte (compressed or not), then its length as a big-endian uint32. */
export const PREFIX_BYTES = 5;
const NO_BYTES = Buffer.alloc(0);

/** frameMessage puts the length prefix before an uncompressed message. */
export function frameMessage(message: Uint8Array): Buffer {
  return frameMessages([message], PREFIX_BYTES + message.byteLength);
}

/**
 * frameMessages frames uncompressed messages one after the other into one buffer of frameBytes (their lengths plus a
 * prefix each): a writer that batches frames copies each message once.
 */
export function frameMessages(messages: readonly Uint8Array[], frameBytes: number): Buffer {
  const frames = Buffer.allocUnsafe(frameBytes);
  let at = 0;
  for (const message of messages) {
    frames[at] = 0;
    frames.writeUInt32BE(message.byteLength, at + 1);
    frames.set(message, at + PREFIX_BYTES);
    at += PREFIX_BYTES + message.byteLength;
  }
  return frames;
}

/** GrpcWireError is a stream that breaks the wire format; code is the status the call fails with. */
export class GrpcWireError extends Error {
  override readonly name = "GrpcWireError";
  constructor(
    readonly code: Code,
    message: string,
  ) {
    super(message);
  }
}

/**
 * MessageReader cuts length-prefixed messages out of DATA frames, whatever their boundaries: a message may span
 * frames and a frame may hold several messages. Messages that arrive whole in one frame are views of it, not copies.
 */
export class MessageReader {
  readonly #maxMessageBytes: number;
  #pending: Buffer = NO_BYTES;

  constructor(maxMessageBytes: number) {
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** push takes the next bytes and calls onMessage for each message they complete, in order. */
  push(chunk: Buffer, onMessage: (message: Buffer) => void): void {
    let bytes = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    while (bytes.length >= PREFIX_BYTES) {
      if (bytes[0] !== 0) {
        throw new GrpcWireError(Code.Internal, "the agent sent a compressed message, which this client never asked for");
      }
      const length = bytes.readUInt32BE(1);
      if (length > this.#maxMessageBytes) {
        throw new GrpcWireError(Code.ResourceExhausted, `a message of ${length} bytes exceeds the limit of ${this.#maxMessageBytes}`);
      }
      const end = PREFIX_BYTES + length;
      if (bytes.length < end) break;
      onMessage(bytes.subarray(PREFIX_BYTES, end));
      bytes = bytes.subarray(end);
    }
    this.#pending = bytes.length === 0 ? NO_BYTES : bytes;
  }

  /** hasPartialMessage tells whether the bytes of an unfinished message are pending: at the end, a truncated stream. */
  get hasPartialMessage(): boolean {
    return this.#pending.length > 0;
  }
}

/** timeoutHeader is grpc-timeout for the time left until deadlineMs: at most 8 digits, so long waits count seconds. */
export function timeoutHeader(remainingMs: number): string {
  const ms = Math.max(1, Math.ceil(remainingMs));
  return ms < 1e8 ? `${ms}m` : `${Math.min(Math.ceil(ms / 1000), 99_999_999)}S`;
}

/** grpcMessage decodes grpc-message, which is percent-encoded; text that is not valid encoding is taken as is. */
export function grpcMessage(value: string | string[] | undefined): string {
  const text = Array.isArray(value) ? value.join(",") : (value ?? "");
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** STATUS_OK is grpc-status 0, which Connect's Code leaves out: it is not an error. */
export const STATUS_OK = 0;

/** statusCode reads grpc-status: STATUS_OK or an error's Code; a value that is neither is UNKNOWN, as the protocol says. */
export function statusCode(value: string | string[] | undefined): Code | typeof STATUS_OK {
  const code = Number(Array.isArray(value) ? value[0] : value);
  return Number.isInteger(code) && code >= 0 && code <= 16 ? (code as Code) : Code.Unknown;
}
