import type { Clock, TimerHandle } from "../../services/shared/clock.js";

/** ManualClock is a Clock for tests: time moves only when advance() is called, firing due timers in order. */
export class ManualClock implements Clock {
  #nowMs: number;
  #timers: { dueMs: number; seq: number; fn: () => void; cancelled: boolean }[] = [];
  #seq = 0;

  constructor(startMs = 1_700_000_000_000) {
    this.#nowMs = startMs;
  }

  now(): number {
    return this.#nowMs;
  }

  setTimer(fn: () => void, delayMs: number): TimerHandle {
    const timer = { dueMs: this.#nowMs + Math.max(0, delayMs), seq: this.#seq++, fn, cancelled: false };
    this.#timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  /** advance moves time forward by ms, running every timer that falls due on the way, at its due time. */
  advance(ms: number): void {
    const targetMs = this.#nowMs + ms;
    for (;;) {
      this.#timers = this.#timers.filter((t) => !t.cancelled);
      const next = this.#timers.filter((t) => t.dueMs <= targetMs).sort((a, b) => a.dueMs - b.dueMs || a.seq - b.seq)[0];
      if (!next) break;
      next.cancelled = true;
      this.#nowMs = next.dueMs;
      next.fn();
    }
    this.#nowMs = targetMs;
  }

  /** pendingTimers counts timers not yet fired or cancelled. */
  get pendingTimers(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }
}
