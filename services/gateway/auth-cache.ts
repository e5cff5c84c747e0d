import type { Principal } from "../../gen/infermesh/v1/registry_pb.js";
import type { Clock } from "../shared/clock.js";

/** DEFAULT_AUTH_TTL_MS is how long a valid key is trusted without asking the registry; a revoked key dies within it. */
export const DEFAULT_AUTH_TTL_MS = 2_000;
/** DEFAULT_AUTH_NEGATIVE_TTL_MS is how long a refused key stays refused without asking again. */
export const DEFAULT_AUTH_NEGATIVE_TTL_MS = 1_000;
/**
 * DEFAULT_AUTH_STALE_IF_ERROR_MS is how long a key that was valid keeps working while the registry cannot be reached,
 * so a registry outage does not stop traffic that was already flowing.
 */
export const DEFAULT_AUTH_STALE_IF_ERROR_MS = 10 * 60 * 1000;
const DEFAULT_MAX_ENTRIES = 10_000;

/** AuthCacheOptions configures an AuthCache. */
export interface AuthCacheOptions {
  /** authenticate asks the registry; undefined means the key is not valid. Other failures reject. */
  readonly authenticate: (apiKey: string) => Promise<Principal | undefined>;
  readonly clock: Clock;
  readonly ttlMs?: number;
  readonly negativeTtlMs?: number;
  readonly staleIfErrorMs?: number;
  readonly maxEntries?: number;
}

interface Entry {
  readonly principal: Principal | undefined;
  readonly checkedAtMs: number;
  readonly expiresAtMs: number;
}

/**
 * AuthCache puts a short cache in front of the registry's Authenticate, so that the request path waits on the
 * registry only on a miss. Concurrent misses for one key share one registry call. When the registry cannot be
 * reached, a key it accepted recently keeps working (stale-if-error); a key it refused never does.
 */
export class AuthCache {
  readonly #options: AuthCacheOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #pending = new Map<string, Promise<Principal | undefined>>();

  constructor(options: AuthCacheOptions) {
    this.#options = options;
  }

  /** principal resolves the key's principal, or undefined when the key is not valid. */
  principal(apiKey: string): Promise<Principal | undefined> | Principal | undefined {
    const now = this.#options.clock.now();
    const entry = this.#entries.get(apiKey);
    if (entry && entry.expiresAtMs > now) return entry.principal;
    const pending = this.#pending.get(apiKey);
    if (pending) return pending;
    const lookup = this.#options.authenticate(apiKey).then(
      (principal) => {
        this.#pending.delete(apiKey);
        this.#remember(apiKey, principal);
        return principal;
      },
      (error: unknown) => {
        this.#pending.delete(apiKey);
        const staleIfErrorMs = this.#options.staleIfErrorMs ?? DEFAULT_AUTH_STALE_IF_ERROR_MS;
        if (entry?.principal && this.#options.clock.now() - entry.checkedAtMs <= staleIfErrorMs) return entry.principal;
        throw error;
      },
    );
    this.#pending.set(apiKey, lookup);
    return lookup;
  }

  #remember(apiKey: string, principal: Principal | undefined): void {
    const ttlMs = principal
      ? (this.#options.ttlMs ?? DEFAULT_AUTH_TTL_MS)
      : (this.#options.negativeTtlMs ?? DEFAULT_AUTH_NEGATIVE_TTL_MS);
    if (this.#entries.size >= (this.#options.maxEntries ?? DEFAULT_MAX_ENTRIES)) {
      // Drop the oldest entry (Map keeps insertion order) so that a flood of random keys cannot grow memory.
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.delete(apiKey);
    const now = this.#options.clock.now();
    this.#entries.set(apiKey, { principal, checkedAtMs: now, expiresAtMs: now + ttlMs });
  }
}
