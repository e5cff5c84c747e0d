import type { Clock } from "../shared/clock.js";

/** LoginLimits bound failed sign-ins over a window, per client address and per user name. */
export interface LoginLimits {
  readonly windowMs: number;
  readonly perAddress: number;
  readonly perUserName: number;
}

/**
 * DEFAULT_LOGIN_LIMITS allow a person a handful of typos and stop a guesser: 10 failures per user name and 30 per
 * address in 15 minutes.
 */
export const DEFAULT_LOGIN_LIMITS: LoginLimits = Object.freeze({ windowMs: 15 * 60_000, perAddress: 30, perUserName: 10 });
/** MAX_TRACKED bounds the memory of failures, so that a flood of made-up names cannot grow it. */
const MAX_TRACKED = 50_000;

interface Failures {
  count: number;
  readonly startMs: number;
}

/**
 * LoginLimiter counts failed sign-ins per client address and per user name in fixed windows. While either count is
 * at its limit, sign-in is refused before the password is checked (so a guesser learns nothing more), and the
 * caller learns when to retry. A sign-in that names no user (a sign-in link) counts against its address alone.
 */
export class LoginLimiter {
  readonly #limits: LoginLimits;
  readonly #clock: Clock;
  readonly #byAddress = new Map<string, Failures>();
  readonly #byUserName = new Map<string, Failures>();

  constructor(clock: Clock, limits: LoginLimits = DEFAULT_LOGIN_LIMITS) {
    this.#clock = clock;
    this.#limits = limits;
  }

  /**
   * retryAfterSeconds is how long the address or the user name, when there is one, must wait, or 0 when sign-in may
   * be tried now.
   */
  retryAfterSeconds(address: string, userName?: string): number {
    const now = this.#clock.now();
    const waits = [this.#wait(this.#byAddress, address, this.#limits.perAddress, now)];
    if (userName !== undefined) waits.push(this.#wait(this.#byUserName, userName.toLowerCase(), this.#limits.perUserName, now));
    return Math.ceil(Math.max(...waits) / 1000);
  }

  /** failed counts a failed sign-in against the address and the user name, when there is one. */
  failed(address: string, userName?: string): void {
    const now = this.#clock.now();
    this.#count(this.#byAddress, address, now);
    if (userName !== undefined) this.#count(this.#byUserName, userName.toLowerCase(), now);
  }

  /** succeeded forgets the user name's failures: its owner proved who they are. */
  succeeded(userName: string): void {
    this.#byUserName.delete(userName.toLowerCase());
  }

  #wait(map: Map<string, Failures>, key: string, limit: number, now: number): number {
    const failures = map.get(key);
    if (!failures) return 0;
    const endMs = failures.startMs + this.#limits.windowMs;
    if (endMs <= now) {
      map.delete(key);
      return 0;
    }
    return failures.count >= limit ? endMs - now : 0;
  }

  #count(map: Map<string, Failures>, key: string, now: number): void {
    const failures = map.get(key);
    if (failures && failures.startMs + this.#limits.windowMs > now) {
      failures.count++;
      return;
    }
    map.delete(key);
    if (map.size >= MAX_TRACKED) {
      const oldest = map.keys().next();
      if (!oldest.done) map.delete(oldest.value);
    }
    map.set(key, { count: 1, startMs: now });
  }
}
