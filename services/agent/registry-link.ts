import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import type { HeartbeatRequestSchema, RegistryService } from "../../gen/infermesh/v1/registry_pb.js";
import type { Clock, TimerHandle } from "../shared/clock.js";
import { createRegistryClient, type RegistryClient } from "../shared/grpc/registry-client.js";
import type { Logger } from "../shared/logger.js";

/** DEFAULT_HEARTBEAT_INTERVAL_MS is the heartbeat interval until the registry names one. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 10_000;
/** DEFAULT_INITIAL_RETRY_MS is the first retry delay after a failed heartbeat; it doubles up to the maximum. */
export const DEFAULT_INITIAL_RETRY_MS = 500;
/** DEFAULT_MAX_RETRY_MS caps the retry delay, so an agent is back within seconds of a registry's return. */
export const DEFAULT_MAX_RETRY_MS = 3_000;
/** DEFAULT_REGISTRY_CALL_TIMEOUT_MS bounds one registry call. */
export const DEFAULT_REGISTRY_CALL_TIMEOUT_MS = 5_000;
const MIN_INTERVAL_MS = 50;
const MAX_INTERVAL_MS = 10 * 60_000;

/** HeartbeatReport is the heartbeat to send, built fresh for each call. */
export type HeartbeatReport = MessageInitShape<typeof HeartbeatRequestSchema>;

/** RegistryLinkOptions configures a RegistryLink. */
export interface RegistryLinkOptions {
  /** registryUrl is the registry's base URL, "http://host:port". */
  readonly registryUrl: string;
  readonly apiKey: string;
  readonly providerId: string;
  readonly clock: Clock;
  readonly log: Logger;
  /** report builds the heartbeat from the agent's current models, load and state. */
  readonly report: () => HeartbeatReport;
  /** onHeartbeat hears each heartbeat's outcome. */
  readonly onHeartbeat?: (ok: boolean) => void;
  readonly initialRetryMs?: number;
  readonly maxRetryMs?: number;
  readonly callTimeoutMs?: number;
  /** random draws in [0, 1) to spread retries, so agents do not return to a restarted registry all at once. */
  readonly random?: () => number;
}

/**
 * RegistryLink keeps the agent registered: it heartbeats at the interval the registry asks for, retries with capped
 * exponential backoff (and jitter) when the registry cannot be reached, and keeps serving meanwhile. Since a heartbeat
 * registers as well as refreshes, an agent re-registers by itself after a registry restart. It logs each change of
 * connection state once, and never the API key.
 */
export class RegistryLink {
  readonly #options: RegistryLinkOptions;
  readonly #registry: RegistryClient;
  readonly #client: Client<typeof RegistryService>;
  readonly #headers: Record<string, string>;
  #timer: TimerHandle | undefined;
  #current: Promise<boolean> | undefined;
  #next: Promise<boolean> | undefined;
  #failures = 0;
  #connected = false;
  #stopped = false;

  constructor(options: RegistryLinkOptions) {
    this.#options = options;
    this.#registry = createRegistryClient(options.registryUrl, { pingIntervalMs: 15_000, pingTimeoutMs: 5_000 });
    this.#client = this.#registry.client;
    this.#headers = { authorization: `Bearer ${options.apiKey}` };
  }

  /** connected is true while the last heartbeat succeeded. */
  get connected(): boolean {
    return this.#connected;
  }

  /** start sends the first heartbeat now; later ones follow by themselves. */
  start(): void {
    void this.heartbeatNow();
  }

  /**
   * heartbeatNow sends a heartbeat as soon as possible, for a change the registry should learn at once (models,
   * state). If one is on its way, another follows it, so the registry always ends up with the latest report. It
   * resolves with whether that heartbeat succeeded.
   */
  heartbeatNow(): Promise<boolean> {
    if (this.#stopped) return Promise.resolve(false);
    const current = this.#current;
    if (current === undefined) return this.#beat();
    this.#next ??= current.then(() => {
      this.#next = undefined;
      return this.#stopped ? false : this.#beat();
    });
    return this.#next;
  }

  /** deregister stops heartbeating, waits for one on its way, and takes the provider offline; false if that failed. */
  async deregister(): Promise<boolean> {
    this.#stop();
    await this.#next;
    await this.#current;
    const { providerId, log, registryUrl } = this.#options;
    try {
      await this.#client.deregister({ providerId }, this.#callOptions());
      log.info({ registry: registryUrl, providerId }, "deregistered from the registry");
      return true;
    } catch (error) {
      log.warn({ registry: registryUrl, providerId, cause: ConnectError.from(error).message }, "deregistration failed");
      return false;
    }
  }

  /** close stops heartbeating and closes the connection to the registry. */
  close(): void {
    this.#stop();
    this.#registry.close();
  }

  #stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #beat(): Promise<boolean> {
    this.#timer?.cancel();
    this.#timer = undefined;
    const beat = this.#send().finally(() => {
      if (this.#current === beat) this.#current = undefined;
    });
    this.#current = beat;
    return beat;
  }

  async #send(): Promise<boolean> {
    const { log, registryUrl, providerId } = this.#options;
    try {
      const report = this.#options.report();
      const response = await this.#client.heartbeat(report, this.#callOptions());
      const intervalMs = clamp(
        response.heartbeatInterval ? durationMs(response.heartbeatInterval) : DEFAULT_HEARTBEAT_INTERVAL_MS,
        MIN_INTERVAL_MS,
        MAX_INTERVAL_MS,
      );
      if (!this.#connected) {
        const ttlMs = response.ttl ? durationMs(response.ttl) : undefined;
        const models = (report.models ?? []).map((model) => model.id);
        log.info({ registry: registryUrl, providerId, intervalMs, ttlMs, models }, "registered with the registry");
      }
      this.#connected = true;
      this.#failures = 0;
      this.#options.onHeartbeat?.(true);
      this.#schedule(intervalMs);
      return true;
    } catch (error) {
      const connectError = ConnectError.from(error);
      this.#failures++;
      const retryInMs = this.#retryDelayMs();
      const fields = { registry: registryUrl, providerId, code: Code[connectError.code], cause: connectError.rawMessage, retryInMs };
      if (connectError.code === Code.Unauthenticated || connectError.code === Code.InvalidArgument) {
        // Retrying cannot fix a refused key or report, but a revoked key may be replaced while the agent keeps running.
        if (this.#connected || this.#failures === 1) log.error(fields, "the registry refused this agent's heartbeat");
      } else if (this.#connected || this.#failures === 1) {
        log.warn(fields, "registry heartbeat failed; retrying");
      } else {
        log.debug(fields, "registry heartbeat failed again");
      }
      if (connectError.code === Code.DeadlineExceeded) {
        // A call that timed out may sit on a dead connection; the next one starts afresh.
        this.#registry.close();
      }
      this.#connected = false;
      this.#options.onHeartbeat?.(false);
      this.#schedule(retryInMs);
      return false;
    }
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer?.cancel();
    this.#timer = this.#options.clock.setTimer(() => void this.heartbeatNow(), delayMs);
  }

  #retryDelayMs(): number {
    const initial = this.#options.initialRetryMs ?? DEFAULT_INITIAL_RETRY_MS;
    const max = this.#options.maxRetryMs ?? DEFAULT_MAX_RETRY_MS;
    const base = Math.min(max, initial * 2 ** Math.min(this.#failures - 1, 30));
    const jitter = 0.8 + 0.4 * (this.#options.random ?? Math.random)();
    return Math.round(base * jitter);
  }

  #callOptions(): { headers: Record<string, string>; timeoutMs: number } {
    return { headers: this.#headers, timeoutMs: this.#options.callTimeoutMs ?? DEFAULT_REGISTRY_CALL_TIMEOUT_MS };
  }
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
