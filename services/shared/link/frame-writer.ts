import type { Writable } from "node:stream";
import { frameMessages, PREFIX_BYTES } from "../grpc/wire.js";

/** WRITE_BATCH_BYTES bounds one write of bulk frames, so control frames queued meanwhile are not held behind them. */
const WRITE_BATCH_BYTES = 256 * 1024;
/** HIGH_WATER_BYTES is how much may wait to be written before producers that care are asked to wait (ready()). */
const HIGH_WATER_BYTES = 4 * 1024 * 1024;

/** BulkSource yields the framed pieces of one large message, one at a time, as the link has room. */
export type BulkSource = Iterator<Uint8Array>;

/**
 * FrameWriter writes one end's frames onto the link's stream. Frames sent in one event-loop turn go out in one write
 * (the research's batching: one syscall for many calls). Bulk sources (large uploads) are taken a piece at a time,
 * round robin, and only while the stream has room, so they never starve small frames or buffer without bound.
 */
export class FrameWriter {
  readonly #stream: Writable;
  /** #queue holds the messages waiting to be written; they are framed at the flush, all into one buffer. */
  #queue: Uint8Array[] = [];
  /** #queuedBytes counts them as framed. */
  #queuedBytes = 0;
  #bulk: BulkSource[] = [];
  #scheduled = false;
  #waitingForDrain = false;
  #readyWaiters: (() => void)[] = [];
  #closed = false;

  constructor(stream: Writable) {
    this.#stream = stream;
    stream.on("drain", this.#onDrain);
  }

  /** send queues one encoded message; it goes out with the others of this turn. */
  send(message: Uint8Array): void {
    if (this.#closed) return;
    this.#queue.push(message);
    this.#queuedBytes += PREFIX_BYTES + message.byteLength;
    this.#schedule();
  }

  /** sendBulk queues a large message's pieces (each already encoded), written as the stream drains. */
  sendBulk(source: BulkSource): void {
    if (this.#closed) return;
    this.#bulk.push(source);
    this.#schedule();
  }

  /** ready resolves when what waits to be written is under the high-water mark; undefined when it is already. */
  ready(): Promise<void> | undefined {
    if (!this.#full()) return undefined;
    return new Promise((resolve) => this.#readyWaiters.push(resolve));
  }

  #full(): boolean {
    return !this.#closed && this.#queuedBytes + this.#stream.writableLength >= HIGH_WATER_BYTES;
  }

  /** end writes what is queued, bulk sources whole, and ends the stream. */
  end(): void {
    if (this.#closed) return;
    const messages = this.#queue;
    let bytes = this.#queuedBytes;
    for (const source of this.#bulk) {
      for (let next = source.next(); !next.done; next = source.next()) {
        messages.push(next.value);
        bytes += PREFIX_BYTES + next.value.byteLength;
      }
    }
    this.close();
    if (this.#stream.destroyed || this.#stream.writableEnded) return;
    if (messages.length > 0) this.#stream.write(frameMessages(messages, bytes));
    this.#stream.end();
  }

  /** close drops whatever is still queued and releases anyone waiting: the stream is gone. */
  close(): void {
    this.#closed = true;
    this.#queue = [];
    this.#bulk = [];
    this.#queuedBytes = 0;
    this.#stream.off("drain", this.#onDrain);
    this.#releaseReady();
  }

  #schedule(): void {
    if (this.#scheduled || this.#waitingForDrain) return;
    this.#scheduled = true;
    setImmediate(this.#flush);
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    if (this.#closed || this.#stream.destroyed || this.#stream.writableEnded) return;
    const messages = this.#queue;
    let bytes = this.#queuedBytes;
    this.#queue = [];
    this.#queuedBytes = 0;
    while (this.#bulk.length > 0 && bytes < WRITE_BATCH_BYTES) {
      const source = this.#bulk.shift() as BulkSource;
      const next = source.next();
      if (next.done) continue;
      messages.push(next.value);
      bytes += PREFIX_BYTES + next.value.byteLength;
      this.#bulk.push(source);
    }
    if (messages.length === 0) return;
    const room = this.#stream.write(frameMessages(messages, bytes));
    if (!room) this.#waitingForDrain = true;
    else if (this.#bulk.length > 0 || this.#queue.length > 0) this.#schedule();
    this.#releaseReady();
  };

  readonly #onDrain = (): void => {
    this.#waitingForDrain = false;
    if (this.#bulk.length > 0 || this.#queue.length > 0) this.#schedule();
    this.#releaseReady();
  };

  #releaseReady(): void {
    if (this.#readyWaiters.length === 0 || this.#full()) return;
    const waiters = this.#readyWaiters;
    this.#readyWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
