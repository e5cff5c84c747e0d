/** assertDuration throws RangeError unless durationMs is a positive whole number of milliseconds. */
export function assertDuration(name: string, durationMs: number): void {
  if (!Number.isSafeInteger(durationMs) || durationMs <= 0) {
    throw new RangeError(`${name} must be a positive whole number of milliseconds, not ${String(durationMs)}`);
  }
}
