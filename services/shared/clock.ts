/** TimerHandle cancels a timer set through a Clock. */
export interface TimerHandle {
  cancel(): void;
}

/**
 * Clock is time as a service sees it: injected so that TTLs and backoffs can be tested without waiting.
 */
export interface Clock {
  /** now is milliseconds since the epoch. */
  now(): number;
  /** setTimer calls fn once after delayMs; the timer does not keep the process alive. */
  setTimer(fn: () => void, delayMs: number): TimerHandle;
}

/** systemClock is the real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, delayMs) {
    const timer = setTimeout(fn, delayMs);
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
};

/** every calls fn each intervalMs on the clock until the handle is cancelled. */
export function every(clock: Clock, intervalMs: number, fn: () => void): TimerHandle {
  let timer: TimerHandle | undefined;
  let cancelled = false;
  const tick = () => {
    if (cancelled) return;
    timer = clock.setTimer(tick, intervalMs);
    fn();
  };
  timer = clock.setTimer(tick, intervalMs);
  return {
    cancel() {
      cancelled = true;
      timer?.cancel();
    },
  };
}
