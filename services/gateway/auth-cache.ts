import type { Principal } from "../../gen/infermesh/v1/registry_pb.js";
import type { Clock } from "../shared/clock.js";

/**
 * DEFAULT_AUTH_TTL_MS is how long a valid key is trusted without asking the registry: with the revalidation window
 * below, a revoked key, a disabled user or an ended session stops working within 2 s on every gateway.
 */
export const DEFAULT_AUTH_TTL_MS = 1_000;
/** DEFAULT_AUTH_NEGATIVE_TTL_MS is how long a refused key stays refused without asking again. */
export const DEFAULT_AUTH_NEGATIVE_TTL_MS = 1_000;
/**
 * DEFAULT_AUTH_STALE_IF_ERROR_MS is how long a key that was valid keeps working while the registry cannot be reached,
 * so a registry outage does not stop traffic that was already flowing.
 */
export const DEFAULT_AUTH_STALE_IF_ERROR_MS = 10 * 60 * 1000;
/** DEFAULT_AUTH_STALE_WHILE_REVALIDATE_MS is how long past its TTL a valid entry is answered while it is refreshed. */
export const DEFAULT_AUTH_STALE_WHILE_REVALIDATE_MS = 900;
const DEFAULT_MAX_ENTRIES = 10_000;

/** AuthCacheOptions configures an AuthCache. */
export interface AuthCacheOptions {
  /** authenticate asks the registry; undefined means the key is not valid. Other failures reject. */
  readonly authenticate: (apiKey: string) => Promise<Principal | undefined>;
  readonly clock: Clock;
  readonly ttlMs?: number;
  readonly negativeTtlMs?: number;
  readonly staleIfErrorMs?: number;
  readonly staleWhileRevalidateMs?: number;
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

  /**
   * principal resolves the key's principal, or undefined when the key is not valid. A valid entry just past its TTL
   * is answered at once while a refresh runs behind it, so a slow or frozen registry never stalls traffic that was
   * flowing; a revoked key still stops within TTL + the revalidation window.
   */
  principal(apiKey: string): Promise<Principal | undefined> | Principal | undefined {
    const now = this.#options.clock.now();
    const entry = this.#entries.get(apiKey);
    if (entry && entry.expiresAtMs > now) return entry.principal;
    const revalidateMs = this.#options.staleWhileRevalidateMs ?? DEFAULT_AUTH_STALE_WHILE_REVALIDATE_MS;
    if (entry?.principal && now < entry.expiresAtMs + revalidateMs) {
      this.#refresh(apiKey, entry).catch(() => {});
      return entry.principal;
    }
    return this.#refresh(apiKey, entry);
  }

  /** forget drops what the cache knows of a credential, so that the next use asks the registry. */
  forget(apiKey: string): void {
    this.#entries.delete(apiKey);
  }

  #refresh(apiKey: string, entry: Entry | undefined): Promise<Principal | undefined> {
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
        const now = this.#options.clock.now();
        const staleIfErrorMs = this.#options.staleIfErrorMs ?? DEFAULT_AUTH_STALE_IF_ERROR_MS;
        if (!entry?.principal || now - entry.checkedAtMs > staleIfErrorMs) throw error;
        // The registry is unreachable: keep trusting the key for another TTL without forgetting when it was checked.
        const ttlMs = this.#options.ttlMs ?? DEFAULT_AUTH_TTL_MS;
        this.#entries.set(apiKey, { ...entry, expiresAtMs: now + ttlMs });
        return entry.principal;
      },
    );
    this.#pending.set(apiKey, lookup);
    return lookup;
  }

  #remember(apiKey: string, principal: Principal | undefined): void {
    const ttlMs = principal ? (this.#options.ttlMs ?? DEFAULT_AUTH_TTL_MS) : (this.#options.negativeTtlMs ?? DEFAULT_AUTH_NEGATIVE_TTL_MS);
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
