import type { Clock } from "../shared/clock.js";

/** DEFAULT_FAILURE_THRESHOLD is how many failures in a row open a provider's circuit. */
export const DEFAULT_FAILURE_THRESHOLD = 3;
/** DEFAULT_COOLDOWN_MS is how long an open circuit keeps a provider out before one probe request. */
export const DEFAULT_COOLDOWN_MS = 10_000;

/** ProviderHealthOptions configures ProviderHealth. */
export interface ProviderHealthOptions {
  readonly clock: Clock;
  readonly failureThreshold?: number;
  readonly cooldownMs?: number;
}

interface Circuit {
  failures: number;
  openedAtMs: number | undefined;
  probing: boolean;
}

/**
 * ProviderHealth is passive health checking: a circuit breaker per provider fed by the outcomes of real requests.
 * After failureThreshold failures in a row a provider is skipped for cooldownMs; then one request may probe it,
 * and its outcome closes the circuit or opens it for another cooldown.
 */
export class ProviderHealth {
  readonly #clock: Clock;
  readonly #threshold: number;
  readonly #cooldownMs: number;
  readonly #circuits = new Map<string, Circuit>();

  constructor(options: ProviderHealthOptions) {
    this.#clock = options.clock;
    this.#threshold = options.failureThreshold ?? DEFAULT_FAILURE_THRESHOLD;
    this.#cooldownMs = options.cooldownMs ?? DEFAULT_COOLDOWN_MS;
  }

  /** available tells whether a request may go to the provider now: closed, or open long enough to be probed. */
  available(providerId: string): boolean {
    const circuit = this.#circuits.get(providerId);
    if (circuit?.openedAtMs === undefined) return true;
    return !circuit.probing && this.#clock.now() - circuit.openedAtMs >= this.#cooldownMs;
  }

  /** acquire marks the start of a request to the provider; a half-open circuit lets only this one through. */
  acquire(providerId: string): void {
    const circuit = this.#circuits.get(providerId);
    if (circuit?.openedAtMs !== undefined) circuit.probing = true;
  }

  /** succeeded closes the provider's circuit. */
  succeeded(providerId: string): void {
    this.#circuits.delete(providerId);
  }

  /** failed counts a failure; the threshold (or a failed probe) opens the circuit. */
  failed(providerId: string): void {
    const circuit = this.#circuits.get(providerId) ?? { failures: 0, openedAtMs: undefined, probing: false };
    circuit.failures++;
    if (circuit.probing || circuit.failures >= this.#threshold) circuit.openedAtMs = this.#clock.now();
    circuit.probing = false;
    this.#circuits.set(providerId, circuit);
  }

  /** released ends a request whose outcome says nothing about the provider (the client left, a 4xx). */
  released(providerId: string): void {
    const circuit = this.#circuits.get(providerId);
    if (circuit) circuit.probing = false;
  }

  /** isOpen tells whether the provider's circuit is open (for metrics and tests). */
  isOpen(providerId: string): boolean {
    return this.#circuits.get(providerId)?.openedAtMs !== undefined;
  }

  /** forget drops the state of providers that left the table. */
  forget(providerId: string): void {
    this.#circuits.delete(providerId);
  }
}
