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

interface Entry {
  readonly controller: AbortController;
}

/**
 * CallTracker knows every call the agent has admitted, so that a shutdown can wait for them and then cut the rest,
 * and gives each call one signal that folds together the client's cancel and the call's deadline.
 */
export class CallTracker {
  readonly #clock: Clock;
  readonly #calls = new Set<Entry>();
  #idleWaiters: (() => void)[] = [];

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** size counts calls in progress. */
  get size(): number {
    return this.#calls.size;
  }

  /** begin admits a call; deadlineMs (epoch ms) is when the answer is no longer wanted. */
  begin(clientSignal: AbortSignal, deadlineMs: number | undefined): TrackedCall {
    const controller = new AbortController();
    const entry: Entry = { controller };
    const onClientAbort = () => controller.abort(clientSignal.reason);
    clientSignal.addEventListener("abort", onClientAbort, { once: true });
    if (clientSignal.aborted) onClientAbort();
    let timer: TimerHandle | undefined;
    if (deadlineMs !== undefined) {
      const remainingMs = deadlineMs - this.#clock.now();
      const expire = () => controller.abort(new DeadlineExceeded(`the call's deadline passed (${new Date(deadlineMs).toISOString()})`));
      if (remainingMs <= 0) expire();
      else timer = this.#clock.setTimer(expire, remainingMs);
    }
    this.#calls.add(entry);
    let ended = false;
    return {
      signal: controller.signal,
      end: () => {
        if (ended) return;
        ended = true;
        clientSignal.removeEventListener("abort", onClientAbort);
        timer?.cancel();
        this.#calls.delete(entry);
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
    for (const { controller } of this.#calls) controller.abort(reason);
  }

  #wakeIdleWaiters(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
