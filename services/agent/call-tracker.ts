import type { Clock, TimerHandle } from "../shared/clock.js";

/** DeadlineExceeded is the abort reason of a call whose deadline passed. */
export class DeadlineExceeded extends Error {
  override readonly name = "DeadlineExceeded";
}

/** AgentShuttingDown is the abort reason of calls still running when the shutdown grace period ends. */
export class AgentShuttingDown extends Error {
  override readonly name = "AgentShuttingDown";
}

/** TrackedCall is one admitted call: its signal fires on client cancel, deadline, or shutdown, with that reason. */
export interface TrackedCall {
  readonly signal: AbortSignal;
  /** end forgets the call; call it exactly when the call is over. */
  end(): void;
}

/** AbortableCall is a call as the tracker sees it: a signal, and a way to fire it with the tracker's own reasons. */
export interface AbortableCall {
  /** signal fires when the client cancels the call, or when abort is called. */
  readonly signal: AbortSignal;
  /** abort fires signal with reason, unless it fired already. */
  abort(reason: Error): void;
}

/**
 * CallTracker knows every call the agent has admitted, so that a shutdown can wait for them and then cut the rest,
 * and gives each call one signal that folds together the client's cancel and the call's deadline.
 */
export class CallTracker {
  readonly #clock: Clock;
  readonly #calls = new Set<AbortableCall>();
  #idleWaiters: (() => void)[] = [];

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** size counts calls in progress. */
  get size(): number {
    return this.#calls.size;
  }

  /**
   * begin admits a call; deadlineMs (epoch ms) is when the answer is no longer wanted. The call's own signal carries
   * the deadline and the shutdown too (the first reason wins), so tracking costs no second AbortController.
   */
  begin(call: AbortableCall, deadlineMs: number | undefined): TrackedCall {
    let timer: TimerHandle | undefined;
    if (deadlineMs !== undefined) {
      const remainingMs = deadlineMs - this.#clock.now();
      const expire = () => call.abort(new DeadlineExceeded(`the call's deadline passed (${new Date(deadlineMs).toISOString()})`));
      if (remainingMs <= 0) expire();
      else timer = this.#clock.setTimer(expire, remainingMs);
    }
    this.#calls.add(call);
    let ended = false;
    return {
      signal: call.signal,
      end: () => {
        if (ended) return;
        ended = true;
        timer?.cancel();
        this.#calls.delete(call);
        if (this.#calls.size === 0) this.#wakeIdleWaiters();
      },
    };
  }

  /** whenIdle resolves once no call is in progress. */
  whenIdle(): Promise<void> {
    if (this.#calls.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** abortAll aborts every call in progress with reason. */
  abortAll(reason: Error): void {
    for (const call of this.#calls) call.abort(reason);
  }

  #wakeIdleWaiters(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
