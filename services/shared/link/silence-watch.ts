import type { Clock } from "../clock.js";
import { PING_INTERVAL_MS, SILENCE_LIMIT_MS } from "./link-protocol.js";

/**
 * SilenceWatch tells a silent peer from a stalled process: when this end's own timer fires late (its event loop was
 * blocked, frames may be waiting unread), the silence is counted from the late tick, not from the last frame read.
 */
export class SilenceWatch {
  readonly #clock: Clock;
  readonly #lastHeardMs: () => number;
  #lastTickMs: number;
  #graceFromMs = 0;

  constructor(clock: Clock, lastHeardMs: () => number) {
    this.#clock = clock;
    this.#lastHeardMs = lastHeardMs;
    this.#lastTickMs = clock.now();
  }

  /** exceeded is called once per PING_INTERVAL_MS tick; true once the peer was silent past SILENCE_LIMIT_MS. */
  exceeded(): boolean {
    const now = this.#clock.now();
    if (now - this.#lastTickMs > 2 * PING_INTERVAL_MS) this.#graceFromMs = now;
    this.#lastTickMs = now;
    return now - Math.max(this.#lastHeardMs(), this.#graceFromMs) > SILENCE_LIMIT_MS;
  }
}
