import type { ServerResponse } from "node:http";

/** TIMER_SLACK_MS: a pause this short is taken with setImmediate, since timers round to whole milliseconds. */
export const TIMER_SLACK_MS = 1;

/**
 * StepTimer paces one simulated answer, a text Generation or a media PacedAnswer: it runs the answer's step after a
 * delay (on the next turn of the event loop when the delay is within TIMER_SLACK_MS), holds the next step back while
 * the response's buffer is full, and stops once, telling the simulator the answer is settled.
 */
export class StepTimer {
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #stopped = false;
  #delayAfterDrain: () => number = () => 0;
  readonly #res: ServerResponse;
  readonly #step: () => void;
  readonly #onStop: () => void;

  constructor(res: ServerResponse, step: () => void, onStop: () => void) {
    this.#res = res;
    this.#step = step;
    this.#onStop = onStop;
  }

  readonly #run = (): void => {
    this.#timer = undefined;
    this.#immediate = undefined;
    if (!this.#stopped) this.#step();
  };

  readonly #resume = (): void => {
    if (!this.#stopped) this.schedule(this.#delayAfterDrain());
  };

  /** schedule runs the step after delayMs, unless the answer stops first. */
  schedule(delayMs: number): void {
    if (this.#stopped) return;
    if (delayMs <= TIMER_SLACK_MS) this.#immediate = setImmediate(this.#run);
    else this.#timer = setTimeout(this.#run, delayMs);
  }

  /**
   * next schedules the step after delayMs() once the response takes more: at once when the last write was flushed
   * (write returned true), after "drain" otherwise, so that a slow reader slows the answer instead of filling memory.
   */
  next(flushed: boolean, delayMs: () => number): void {
    if (flushed) {
      this.schedule(delayMs());
      return;
    }
    this.#delayAfterDrain = delayMs;
    this.#res.once("drain", this.#resume);
  }

  /** stop drops the pending step and reports the answer settled; only the first call counts. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#immediate !== undefined) clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
    this.#res.off("drain", this.#resume);
    this.#onStop();
  }
}
