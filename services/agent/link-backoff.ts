/** ReconnectBackoff bounds the waits between an agent's dials to the mesh. */
export interface ReconnectBackoff {
  /** initialMs is the base of the wait after a first failure. */
  readonly initialMs: number;
  /** maxMs caps the base, and so every wait. */
  readonly maxMs: number;
}

/**
 * reconnectDelayMs is the wait before dialling again after `failures` failed links in a row (1 after the first). The
 * base doubles from initialMs up to maxMs; the wait is drawn between half the base and the base, so that agents cut
 * off together (a gateway restart) do not all dial back at once, while none waits longer than maxMs. random draws
 * from [0, 1), as Math.random does.
 */
export function reconnectDelayMs(failures: number, backoff: ReconnectBackoff, random: () => number): number {
  // The exponent stops growing long after the cap is reached, so that 2 ** n never overflows to Infinity.
  const base = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(failures - 1, 30));
  return Math.round(base * (0.5 + 0.5 * random()));
}
