import { randomUUID } from "node:crypto";
import { type Clock, every, type TimerHandle } from "../shared/clock.js";
import type { Logger } from "../shared/logger.js";
import type { UsageRecordData } from "../shared/usage-record.js";
import type { GatewayMetrics } from "./gateway-metrics.js";
import type { UsageSpool } from "./usage-spool.js";

/** DEFAULT_USAGE_BATCH_SIZE is the most records one send carries; a batch this full goes out before its tick. */
export const DEFAULT_USAGE_BATCH_SIZE = 1_000;
/** DEFAULT_USAGE_MAX_BUFFERED bounds the records kept while sends fail; beyond it the oldest are dropped. */
export const DEFAULT_USAGE_MAX_BUFFERED = 100_000;
/** USAGE_RETRY_MS is the pause between attempts when close() finds the registry refusing a batch. */
const USAGE_RETRY_MS = 250;

/** UsageRecorderOptions configure a UsageRecorder. */
export interface UsageRecorderOptions {
  /** send stores one batch (AccountService.RecordUsage); it rejects when the batch may not have been stored. */
  readonly send: (records: readonly UsageRecordData[]) => Promise<void>;
  /**
   * refused tells a send's failure that sending the same batch again cannot cure (the registry found it invalid or
   * too large): such a batch is dropped and counted, so that one bad batch never holds up the records behind it.
   */
  readonly refused?: (error: unknown) => boolean;
  readonly clock: Clock;
  /** flushMs is how often buffered records are sent: at most this much is lost when the process is killed. */
  readonly flushMs: number;
  readonly batchSize?: number;
  readonly maxBuffered?: number;
  readonly metrics: Pick<GatewayMetrics, "usageRecordsWritten" | "usageRecordsDropped">;
  readonly log: Logger;
  /**
   * spool, when set, keeps every record on disk from record() until it is settled, so that a killed gateway's records
   * are sent by the next one on the same spool: its leftovers are queued first. The recorder closes it.
   */
  readonly spool?: UsageSpool | undefined;
}

/**
 * UsageRecorder buffers the usage records of answered requests and sends them off the request path: every flushMs,
 * and as soon as a batch is full, one send in flight at a time. A batch the registry did not take stays first in line
 * and goes again on the next tick, no sooner however many records arrive meanwhile; records carry ids, so a batch
 * sent twice is stored once. While sends fail the buffer holds at most maxBuffered records, dropping the oldest beyond
 * that. Its timer runs on the injected clock, whose timers do not keep the process alive. With a spool, each batch is
 * one segment of it, and each record leaves the spool when it leaves the buffer.
 */
export class UsageRecorder {
  readonly #send: (records: readonly UsageRecordData[]) => Promise<void>;
  readonly #refused: (error: unknown) => boolean;
  readonly #clock: Clock;
  readonly #batchSize: number;
  readonly #maxBuffered: number;
  readonly #metrics: UsageRecorderOptions["metrics"];
  readonly #log: Logger;
  readonly #spool: UsageSpool | undefined;
  readonly #ticker: TimerHandle;
  /** #idPrefix makes ids unique across gateways and restarts; a counter makes them unique within this one. */
  readonly #idPrefix = `${randomUUID()}-`;
  #idCount = 0;
  /** #batches are the records not stored yet, oldest first, at most batchSize each. */
  readonly #batches: UsageRecordData[][] = [];
  /** #filling is the batch new records join; a batch that is full, due or being sent never changes again. */
  #filling: UsageRecordData[] | undefined;
  #buffered = 0;
  /** #inFlight is the batch being sent: always #batches[0], and never dropped from. */
  #inFlight: UsageRecordData[] | undefined;
  #sending: Promise<void> | undefined;
  #failing = false;
  #closed = false;

  constructor(options: UsageRecorderOptions) {
    this.#send = options.send;
    this.#refused = options.refused ?? (() => false);
    this.#clock = options.clock;
    this.#batchSize = options.batchSize ?? DEFAULT_USAGE_BATCH_SIZE;
    this.#maxBuffered = options.maxBuffered ?? DEFAULT_USAGE_MAX_BUFFERED;
    this.#metrics = options.metrics;
    this.#log = options.log;
    this.#spool = options.spool;
    if (this.#batchSize < 1 || this.#maxBuffered < this.#batchSize) {
      throw new RangeError(
        `usage recorder: batchSize (${this.#batchSize}) must be at least 1 and at most maxBuffered (${this.#maxBuffered})`,
      );
    }
    this.#ticker = every(this.#clock, options.flushMs, () => void this.flush());
    // A killed predecessor's records go first, on the first tick, in batches as new ones would.
    const leftovers = this.#spool?.takeLeftovers() ?? [];
    for (let i = 0; i < leftovers.length; i += this.#batchSize) {
      const batch = leftovers.slice(i, i + this.#batchSize);
      this.#batches.push(batch);
      this.#buffered += batch.length;
      while (this.#buffered > this.#maxBuffered) this.#dropOldest();
    }
  }

  /** buffered is the number of records not stored yet, the batch being sent included. */
  get buffered(): number {
    return this.#buffered;
  }

  /** nextId is a new record id, unique to this recorder. */
  nextId(): string {
    return this.#idPrefix + (this.#idCount++).toString(36);
  }

  /** record queues one record; it costs an array push, and the sending happens later. */
  record(data: UsageRecordData): void {
    if (this.#closed) {
      this.#metrics.usageRecordsDropped.inc();
      return;
    }
    this.#spool?.append(data);
    let batch = this.#filling;
    if (batch === undefined) {
      batch = [];
      this.#filling = batch;
      this.#batches.push(batch);
    }
    batch.push(data);
    this.#buffered++;
    if (this.#buffered > this.#maxBuffered) this.#dropOldest();
    if (batch.length >= this.#batchSize && batch === this.#filling) {
      this.#seal();
      // While the registry refuses batches only the ticks try again, however fast records come.
      if (!this.#failing) void this.#drain();
    }
  }

  /** flush sends every record buffered now; it resolves when they are stored, or a send failed and they wait. */
  flush(): Promise<void> {
    this.#seal();
    return this.#drain();
  }

  /**
   * close stops the timer and sends what is left: it waits for the send in flight, then sends the rest, trying again
   * after a failure, for at most timeoutMs. Records still unsent then, and any recorded after, count as dropped.
   */
  async close(timeoutMs: number): Promise<void> {
    this.#ticker.cancel();
    const deadlineMs = this.#clock.now() + timeoutMs;
    for (;;) {
      await within(this.#clock, this.flush(), deadlineMs - this.#clock.now());
      const leftMs = deadlineMs - this.#clock.now();
      if (this.#buffered === 0 || leftMs <= 0) break;
      await sleep(this.#clock, Math.min(USAGE_RETRY_MS, leftMs));
    }
    this.#closed = true;
    this.#spool?.close();
    if (this.#buffered === 0) return;
    if (this.#spool === undefined) {
      this.#log.warn({ records: this.#buffered }, "usage records left unsent at shutdown: the registry did not take them in time");
      this.#metrics.usageRecordsDropped.inc(this.#buffered);
    } else {
      this.#log.warn(
        { records: this.#buffered, spool: this.#spool.path },
        "usage records left unsent at shutdown stay in the spool: the next gateway on it sends them",
      );
    }
    this.#batches.length = 0;
    this.#filling = undefined;
    this.#buffered = 0;
  }

  /** #seal closes the filling batch to new records, and the spool's segment with it. */
  #seal(): void {
    this.#filling = undefined;
    this.#spool?.rotate();
  }

  /** #due is the batch to send next: the oldest, unless new records may still join it. */
  #due(): UsageRecordData[] | undefined {
    const batch = this.#batches[0];
    return batch === this.#filling ? undefined : batch;
  }

  #drain(): Promise<void> {
    if (this.#sending === undefined && this.#due() !== undefined) this.#sending = this.#sendDue();
    return this.#sending ?? Promise.resolve();
  }

  /** #sendDue sends the due batches one at a time, until none is left or one fails. */
  async #sendDue(): Promise<void> {
    try {
      for (let batch = this.#due(); batch !== undefined; batch = this.#due()) {
        this.#inFlight = batch;
        try {
          // Through then(), so that a send that throws at once still leaves this call after its first await.
          await Promise.resolve(batch).then(this.#send);
        } catch (error) {
          if (this.#refused(error)) {
            this.#log.error({ err: error, records: batch.length }, "the registry refused a batch of usage records; dropped");
            this.#spool?.settle(batch);
            if (this.#batches[0] === batch) {
              this.#batches.shift();
              this.#buffered -= batch.length;
              this.#metrics.usageRecordsDropped.inc(batch.length);
            }
            continue;
          }
          if (!this.#failing) this.#log.warn({ err: error, records: this.#buffered }, "cannot record usage; will try again");
          this.#failing = true;
          return;
        } finally {
          this.#inFlight = undefined;
        }
        if (this.#failing) this.#log.info("usage records are being stored again");
        this.#failing = false;
        this.#spool?.settle(batch);
        // close() gave up on the buffer while this send was in flight: nothing of it is left to account for.
        if (this.#batches[0] !== batch) return;
        this.#batches.shift();
        this.#buffered -= batch.length;
        this.#metrics.usageRecordsWritten.inc(batch.length);
      }
    } finally {
      this.#sending = undefined;
    }
  }

  /** #dropOldest drops the oldest record not being sent. */
  #dropOldest(): void {
    const index = this.#batches[0] === this.#inFlight ? 1 : 0;
    const batch = this.#batches[index];
    if (batch === undefined) return;
    const dropped = batch.shift();
    if (dropped !== undefined) this.#spool?.settle([dropped]);
    this.#buffered--;
    this.#metrics.usageRecordsDropped.inc();
    if (batch.length > 0) return;
    this.#batches.splice(index, 1);
    if (batch === this.#filling) this.#filling = undefined;
  }
}

/** within resolves when the promise does or after ms on the clock, whichever is first. */
function within(clock: Clock, promise: Promise<void>, ms: number): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = clock.setTimer(resolve, ms);
    void promise.then(() => {
      timer.cancel();
      resolve();
    });
  });
}

function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(resolve, ms));
}
