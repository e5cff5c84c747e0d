/** TIMER_SLACK_MS: a pause this short is taken with setImmediate, since timers round to whole milliseconds. */
export const TIMER_SLACK_MS = 1;

/**
 * StepTimer runs one pacing step at a time for a simulated answer: after a delay, or on the next turn of the event
 * loop when the delay is within TIMER_SLACK_MS. Both the text generations and the media answers pace with it.
 */
export class StepTimer {
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  readonly #step: () => void;

  constructor(step: () => void) {
    this.#step = step;
  }

  readonly #run = (): void => {
    this.#timer = undefined;
    this.#immediate = undefined;
    this.#step();
  };

  /** schedule runs the step after delayMs. */
  schedule(delayMs: number): void {
    if (delayMs <= TIMER_SLACK_MS) this.#immediate = setImmediate(this.#run);
    else this.#timer = setTimeout(this.#run, delayMs);
  }

  /** cancel drops the pending step, if any. */
  cancel(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#immediate !== undefined) clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
  }
}
