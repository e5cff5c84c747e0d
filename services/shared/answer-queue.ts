import { Code, ConnectError } from "@connectrpc/connect";
import type { InferencePart } from "../../gen/infermesh/v1/inference_pb.js";
import type { Clock, TimerHandle } from "./clock.js";

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

/**
 * AnswerQueue is an answer's parts as its reader sees them: parts queue as they arrive from wherever the call runs
 * (a peer gateway's stream, an agent's link), the reader takes them in order, and the call's outcome ends the
 * iteration: null (success) ends it, a ConnectError is thrown once the queued parts are read. A reader that stops
 * early (return) cancels the call. Subclasses say how a call is cancelled and what a taken part frees (credit, a
 * paused stream).
 */
export abstract class AnswerQueue implements AsyncIterableIterator<InferencePart> {
  #parts: InferencePart[] = [];
  #read = 0;
  /** #outcome is undefined while the call runs, null once it succeeded. */
  #outcome: ConnectError | null | undefined;
  #waiter: { resolve: (result: IteratorResult<InferencePart>) => void; reject: (error: unknown) => void } | undefined;

  /** over is true once the call has ended, however. */
  get over(): boolean {
    return this.#outcome !== undefined;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<InferencePart>> {
    if (this.#read < this.#parts.length) return Promise.resolve(this.#take());
    if (this.#outcome === null) return Promise.resolve(DONE);
    if (this.#outcome) return Promise.reject(this.#outcome);
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  /** return is a reader that stops early: the call is cancelled, so whoever serves it stops too. */
  return(): Promise<IteratorResult<InferencePart>> {
    if (this.#outcome === undefined) this.cancel(new ConnectError("the answer is no longer read", Code.Canceled));
    this.#parts = [];
    this.#read = 0;
    return Promise.resolve(DONE);
  }

  /** cancel ends the call from the reader's side, telling whoever serves it; it calls settle. */
  protected abstract cancel(error: ConnectError): void;

  /** deadlineTimer cancels the call when deadlineMs (epoch ms) passes; undefined when there is no deadline. */
  protected deadlineTimer(deadlineMs: number | undefined, clock: Clock): TimerHandle | undefined {
    if (deadlineMs === undefined) return undefined;
    return clock.setTimer(
      () => this.cancel(new ConnectError("the call's deadline passed", Code.DeadlineExceeded)),
      Math.max(0, deadlineMs - clock.now()),
    );
  }

  /** taken hears of each part the reader takes; drained is true when it was the last one queued. */
  protected taken(_part: InferencePart, _drained: boolean): void {}

  /** enqueue adds a part; wake() hands it to a waiting reader. */
  protected enqueue(part: InferencePart): void {
    this.#parts.push(part);
  }

  /** queued counts the parts not read yet. */
  protected get queued(): number {
    return this.#parts.length - this.#read;
  }

  /** settle records the outcome, once: false when the call had ended already. */
  protected settle(outcome: ConnectError | null): boolean {
    if (this.#outcome !== undefined) return false;
    this.#outcome = outcome;
    return true;
  }

  /** wake gives a waiting reader the next part, or the outcome once nothing is queued. */
  protected wake(): void {
    const waiter = this.#waiter;
    if (!waiter) return;
    if (this.#read < this.#parts.length) {
      this.#waiter = undefined;
      waiter.resolve(this.#take());
    } else if (this.#outcome !== undefined) {
      this.#waiter = undefined;
      if (this.#outcome === null) waiter.resolve(DONE);
      else waiter.reject(this.#outcome);
    }
  }

  #take(): IteratorResult<InferencePart> {
    const part = this.#parts[this.#read++] as InferencePart;
    const drained = this.#read === this.#parts.length;
    if (drained) {
      this.#parts = [];
      this.#read = 0;
    }
    this.taken(part, drained);
    return { value: part, done: false };
  }
}

/** failedCall is a call that failed before it began: its answer is the error. */
export function failedCall(error: ConnectError): AsyncIterable<InferencePart> {
  return { [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(error) }) };
}
