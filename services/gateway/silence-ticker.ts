import type { ServerResponse } from "node:http";
import { KEEPALIVE_FRAME } from "./sse-frames.js";

/** WatchedStream is one open event stream under watch: tell it about every write, and stop it when the stream ends. */
export interface WatchedStream {
  wrote(): void;
  stop(): void;
}

interface Entry {
  readonly res: ServerResponse;
  lastWriteMs: number;
}

/**
 * SilenceTicker writes a keep-alive comment to every open event stream that has been silent for keepaliveMs, so that
 * proxies and clients do not give up on a provider that is thinking. One timer serves all of a gateway's streams: ten
 * thousand held streams cost one interval, not ten thousand.
 */
export class SilenceTicker {
  readonly #keepaliveMs: number;
  readonly #streams = new Set<Entry>();
  #timer: NodeJS.Timeout | undefined;

  constructor(keepaliveMs: number) {
    this.#keepaliveMs = keepaliveMs;
  }

  watch(res: ServerResponse): WatchedStream {
    const entry: Entry = { res, lastWriteMs: Date.now() };
    this.#streams.add(entry);
    this.#timer ??= setInterval(() => this.#tick(), Math.max(10, Math.floor(this.#keepaliveMs / 2)));
    return {
      wrote: () => {
        entry.lastWriteMs = Date.now();
      },
      stop: () => {
        this.#streams.delete(entry);
        if (this.#streams.size === 0 && this.#timer) {
          clearInterval(this.#timer);
          this.#timer = undefined;
        }
      },
    };
  }

  #tick(): void {
    const now = Date.now();
    for (const entry of this.#streams) {
      if (now - entry.lastWriteMs >= this.#keepaliveMs && !entry.res.writableEnded) {
        entry.res.write(KEEPALIVE_FRAME);
        entry.lastWriteMs = now;
      }
    }
  }
}
