/**
 * DEFAULT_MAX_EVENT_BYTES bounds one event (its pending line plus its data), so a server that never ends a line cannot
 * make the agent buffer without limit. It stays under the mesh's largest gRPC message (4 MiB) with room for framing.
 */
export const DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024 - 64 * 1024;

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;
const NO_BYTES = new Uint8Array(0);
const utf8 = new TextDecoder("utf-8");

/** SseEvent is one dispatched server-sent event. */
export interface SseEvent {
  /** data is the event's data lines joined with "\n", the bytes exactly as the server sent them. */
  readonly data: Uint8Array;
  /** event is the event's `event:` field, "" when it had none. */
  readonly event: string;
}

/** SseEventTooLargeError is thrown when one event grows beyond the parser's maxEventBytes. */
export class SseEventTooLargeError extends Error {
  override readonly name = "SseEventTooLargeError";
}

/**
 * SseParser turns the bytes of a text/event-stream, in whatever pieces they arrive, into events, following the
 * WHATWG event-stream rules: lines end in CRLF, LF or CR (a CRLF split across two reads is one line end), an empty
 * line dispatches, `:` lines are comments, `data:` values are joined with LF, one space after the colon is dropped,
 * a leading BOM is ignored. It works on bytes, not strings, so that the data reaches the client byte for byte:
 * splitting only at CR and LF can never cut a UTF-8 character in two.
 */
export class SseParser {
  readonly #maxEventBytes: number;
  /** #carry is the start of a line whose end has not arrived yet. */
  #carry: Uint8Array = NO_BYTES;
  /** #skipLf is set when a read ended in CR: a LF opening the next read belongs to the same line end. */
  #skipLf = false;
  #atStreamStart = true;
  #dataLines: Uint8Array[] = [];
  #dataBytes = 0;
  #eventType = "";

  constructor(maxEventBytes = DEFAULT_MAX_EVENT_BYTES) {
    this.#maxEventBytes = maxEventBytes;
  }

  /** push feeds the next bytes and returns the events they complete, in order. */
  push(chunk: Uint8Array): SseEvent[] {
    const events: SseEvent[] = [];
    let start = 0;
    if (this.#skipLf) {
      this.#skipLf = false;
      if (chunk[0] === LF) start = 1;
    }
    for (let i = start; i < chunk.length; i++) {
      const byte = chunk[i];
      if (byte !== LF && byte !== CR) continue;
      const piece = chunk.subarray(start, i);
      const line = this.#carry.length === 0 ? piece : concat(this.#carry, piece);
      this.#carry = NO_BYTES;
      this.#line(line, events);
      if (byte === CR) {
        if (i + 1 === chunk.length) this.#skipLf = true;
        else if (chunk[i + 1] === LF) i++;
      }
      start = i + 1;
    }
    if (start < chunk.length) {
      // A copy, so the caller may reuse its buffer once push returns.
      this.#carry = concat(this.#carry, chunk.subarray(start));
      this.#checkSize();
    }
    return events;
  }

  /**
   * hasPartialEvent tells whether bytes of an event that was never completed by an empty line are pending; at the
   * end of a stream the rules discard them, and a caller may want to know that a stream ended mid-event.
   */
  get hasPartialEvent(): boolean {
    return this.#carry.length > 0 || this.#dataLines.length > 0 || this.#eventType !== "";
  }

  #line(rawLine: Uint8Array, events: SseEvent[]): void {
    let line = rawLine;
    if (this.#atStreamStart) {
      this.#atStreamStart = false;
      if (line[0] === 0xef && line[1] === 0xbb && line[2] === 0xbf) line = line.subarray(3);
    }
    if (line.length === 0) {
      this.#dispatch(events);
      return;
    }
    if (line[0] === COLON) return;
    const colon = line.indexOf(COLON);
    const nameEnd = colon === -1 ? line.length : colon;
    let value = colon === -1 ? NO_BYTES : line.subarray(colon + 1);
    if (value[0] === SPACE) value = value.subarray(1);
    if (isField(line, nameEnd, "data")) {
      // new Uint8Array copies; Buffer's slice would not, and the caller may reuse its buffer.
      this.#dataLines.push(new Uint8Array(value));
      this.#dataBytes += value.length + 1;
      this.#checkSize();
    } else if (isField(line, nameEnd, "event")) {
      this.#eventType = utf8.decode(value);
    }
    // `id` and `retry` steer a browser's reconnection; a proxy that relays a finished stream has no use for them.
  }

  #dispatch(events: SseEvent[]): void {
    const lines = this.#dataLines;
    const event = this.#eventType;
    this.#dataLines = [];
    this.#dataBytes = 0;
    this.#eventType = "";
    if (lines.length === 0) return;
    events.push({ data: lines.length === 1 ? (lines[0] as Uint8Array) : joinWithLf(lines), event });
  }

  #checkSize(): void {
    if (this.#carry.length + this.#dataBytes > this.#maxEventBytes) {
      throw new SseEventTooLargeError(`a server-sent event exceeds ${this.#maxEventBytes} bytes`);
    }
  }
}

/**
 * parseSse reads a byte stream as server-sent events. It yields events as their closing empty line arrives, and
 * stops at the end of the stream, where an unfinished event is discarded (see SseParser.hasPartialEvent).
 */
export async function* parseSse(
  source: AsyncIterable<Uint8Array>,
  maxEventBytes = DEFAULT_MAX_EVENT_BYTES,
): AsyncGenerator<SseEvent, { readonly endedMidEvent: boolean }> {
  const parser = new SseParser(maxEventBytes);
  for await (const chunk of source) yield* parser.push(chunk);
  return { endedMidEvent: parser.hasPartialEvent };
}

function isField(line: Uint8Array, nameEnd: number, name: string): boolean {
  if (nameEnd !== name.length) return false;
  for (let i = 0; i < nameEnd; i++) if (line[i] !== name.charCodeAt(i)) return false;
  return true;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a, 0);
  joined.set(b, a.length);
  return joined;
}

function joinWithLf(lines: readonly Uint8Array[]): Uint8Array {
  let size = lines.length - 1;
  for (const line of lines) size += line.length;
  const joined = new Uint8Array(size);
  let at = 0;
  lines.forEach((line, index) => {
    if (index > 0) joined[at++] = LF;
    joined.set(line, at);
    at += line.length;
  });
  return joined;
}
