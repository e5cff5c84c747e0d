/** QueueFullError says that every slot is busy and the wait queue is full. */
export class QueueFullError extends Error {
  override readonly name = "QueueFullError";
}

/** Release gives a slot back; calling it more than once is harmless. */
export type Release = () => void;

interface Waiter {
  readonly grant: (release: Release) => void;
  readonly reject: (reason: unknown) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

/**
 * ConcurrencyLimiter lets at most maxConcurrency holders in at once and queues up to maxQueue more, first come first
 * served; beyond that it refuses at once, so a flood turns into fast RESOURCE_EXHAUSTED answers instead of an ever
 * longer wait. A freed slot passes straight to the oldest waiter, so a newcomer can never overtake the queue.
 */
export class ConcurrencyLimiter {
  readonly maxConcurrency: number;
  readonly maxQueue: number;
  #inFlight = 0;
  readonly #queue: Waiter[] = [];

  constructor(maxConcurrency: number, maxQueue: number) {
    if (!(Number.isInteger(maxConcurrency) && maxConcurrency >= 1)) throw new RangeError("maxConcurrency must be >= 1");
    if (!(Number.isInteger(maxQueue) && maxQueue >= 0)) throw new RangeError("maxQueue must be >= 0");
    this.maxConcurrency = maxConcurrency;
    this.maxQueue = maxQueue;
  }

  /** inFlight counts current holders. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** queued counts waiters. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * acquire resolves with a Release once a slot is free. It rejects with QueueFullError when the queue is full, and
   * with the signal's reason when the signal aborts first, in which case the waiter leaves the queue.
   */
  acquire(signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#inFlight < this.maxConcurrency) {
      this.#inFlight++;
      return Promise.resolve(this.#release());
    }
    if (this.#queue.length >= this.maxQueue) {
      return Promise.reject(new QueueFullError(`${this.#inFlight} requests in flight and ${this.#queue.length} queued, the most allowed`));
    }
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = {
        grant: resolve,
        reject,
        signal,
        onAbort: () => {
          const at = this.#queue.indexOf(waiter);
          if (at !== -1) this.#queue.splice(at, 1);
          reject(signal?.reason);
        },
      };
      signal?.addEventListener("abort", waiter.onAbort, { once: true });
      this.#queue.push(waiter);
    });
  }

  #release(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#queue.shift();
      if (next) {
        next.signal?.removeEventListener("abort", next.onAbort);
        next.grant(this.#release());
      } else {
        this.#inFlight--;
      }
    };
  }
}
