import { create, equals } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  ChangeCause,
  type HeartbeatRequest,
  HeartbeatRequestSchema,
  type Provider,
  ProviderSchema,
  ProviderState,
} from "../../gen/infermesh/v1/registry_pb.js";
import type { Clock, TimerHandle } from "../shared/clock.js";
import { DEFAULT_PROVIDER_SETTINGS, sharingMessage } from "./provider-settings.js";
import type { Principal, ProviderSettings } from "./store/registry-store.js";

/** DEFAULT_OFFLINE_RETENTION_MS is how long an offline provider stays listable (include_offline) before it is forgotten. */
export const DEFAULT_OFFLINE_RETENTION_MS = 60 * 60 * 1000;

/** ProviderChangeEvent is a provider's whole new state and what caused it; online false means it left. */
export interface ProviderChangeEvent {
  readonly provider: Provider;
  readonly cause: ChangeCause;
  /** replicated is true when another registry replica made the change and this table only mirrors it. */
  readonly replicated?: boolean;
}

/** ProviderTableOptions configures a ProviderTable. */
export interface ProviderTableOptions {
  readonly clock: Clock;
  /** ttlMs is how long a provider stays online after its last heartbeat. */
  readonly ttlMs: number;
  readonly offlineRetentionMs?: number;
  /**
   * expires is false when the table never takes a provider offline by its own clock: replicas that share presence
   * leave TTL expiry to one shared sweep, so that it happens once (see SharedPresence).
   */
  readonly expires?: boolean;
  /** onChange hears every change that watchers must see, synchronously, in order. */
  readonly onChange: (event: ProviderChangeEvent) => void;
}

/** HeartbeatOutcome is the provider after a heartbeat and whether watchers were told about it. */
export interface HeartbeatOutcome {
  readonly provider: Provider;
  readonly changed: boolean;
}

interface Entry {
  provider: Provider;
  /** request is the heartbeat that produced provider, for the cheap unchanged check. */
  request: HeartbeatRequest | undefined;
  /** settings are its owner's decisions that provider reflects. */
  settings: ProviderSettings;
  timer: TimerHandle | undefined;
}

/**
 * ProviderTable is the registry's live view of providers: who is online, what they serve, their load. It is
 * memory-only (agents re-register within one heartbeat interval after a restart) and driven by an injected clock.
 * A change is reported only when something a router cares about changed, so a steady heartbeat costs watchers
 * nothing.
 */
export class ProviderTable {
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #offlineRetentionMs: number;
  readonly #onChange: (event: ProviderChangeEvent) => void;
  readonly #expires: boolean;
  readonly #entries = new Map<string, Entry>();
  #onlineCount = 0;

  constructor(options: ProviderTableOptions) {
    this.#clock = options.clock;
    this.#ttlMs = options.ttlMs;
    this.#offlineRetentionMs = options.offlineRetentionMs ?? DEFAULT_OFFLINE_RETENTION_MS;
    this.#onChange = options.onChange;
    this.#expires = options.expires ?? true;
  }

  /**
   * heartbeat records a validated heartbeat from the provider's owner and restarts its TTL; settings are what the
   * owner decided about the provider (paused, sharing).
   */
  heartbeat(owner: Principal, request: HeartbeatRequest, settings: ProviderSettings = DEFAULT_PROVIDER_SETTINGS): HeartbeatOutcome {
    const entry = this.#entries.get(request.providerId);
    const previous = entry?.provider;
    if (
      entry &&
      previous?.online &&
      entry.settings === settings &&
      entry.request &&
      equals(HeartbeatRequestSchema, entry.request, request)
    ) {
      // The steady state: same report as last time. Only the clock moves; watchers hear nothing.
      previous.lastHeartbeatTime = timestampFromMs(this.#clock.now());
      entry.timer?.cancel();
      entry.timer = this.#expiryTimer(previous.id, this.#ttlMs);
      return { provider: previous, changed: false };
    }
    const provider = create(ProviderSchema, {
      id: request.providerId,
      ownerUserId: owner.userId,
      ownerUserName: owner.userName,
      name: request.name || request.providerId,
      endpoint: request.endpoint,
      models: request.models,
      load: request.load ?? {},
      state: request.state === ProviderState.UNSPECIFIED ? ProviderState.ACCEPTING : request.state,
      online: true,
      lastHeartbeatTime: timestampFromMs(this.#clock.now()),
      sharing: sharingMessage(settings.sharing),
      paused: settings.paused,
      version: request.version,
      gatewayId: request.gatewayId,
      linkId: request.linkId,
      instanceId: request.instanceId,
      linkSequence: request.linkSequence,
    });
    const changed = previous === undefined || !sameButForHeartbeatTime(previous, provider);
    if (entry) {
      entry.timer?.cancel();
      entry.provider = provider;
      entry.request = request;
      entry.settings = settings;
    }
    const current = entry ?? { provider, request, settings, timer: undefined };
    if (!entry) this.#entries.set(provider.id, current);
    if (!previous?.online) this.#onlineCount++;
    current.timer = this.#expiryTimer(provider.id, this.#ttlMs);
    if (changed) this.#onChange({ provider, cause: ChangeCause.HEARTBEAT });
    return { provider, changed };
  }

  /** deregister takes a provider offline at once; returns whether it was online. */
  deregister(providerId: string, linkId = ""): boolean {
    // A gateway whose link closed must not undo the agent's attaching again elsewhere meanwhile.
    if (linkId !== "" && this.#entries.get(providerId)?.provider.linkId !== linkId) return false;
    return this.#goOffline(providerId, ChangeCause.DEREGISTERED);
  }

  /**
   * applySettings shows an owner's new decision (paused, sharing) on a provider the table holds, online or not, and
   * tells watchers at once; returns the provider after the change, or undefined when the table does not hold it.
   */
  applySettings(providerId: string, settings: ProviderSettings): Provider | undefined {
    const entry = this.#entries.get(providerId);
    if (!entry) return undefined;
    entry.settings = settings;
    const provider = create(ProviderSchema, { ...entry.provider, paused: settings.paused, sharing: sharingMessage(settings.sharing) });
    if (sameButForHeartbeatTime(entry.provider, provider)) return entry.provider;
    entry.provider = provider;
    this.#onChange({ provider, cause: ChangeCause.OWNER });
    return provider;
  }

  /**
   * mirror shows a change another replica made: the provider's new state, or its going offline. Watchers hear of it as
   * of any change; a state equal but for its heartbeat time updates the table silently.
   */
  mirror(provider: Provider, cause: ChangeCause): void {
    if (!provider.online) {
      this.#goOffline(provider.id, cause, true);
      return;
    }
    const entry = this.#entries.get(provider.id);
    const previous = entry?.provider;
    if (entry) {
      entry.timer?.cancel();
      entry.timer = undefined;
      entry.provider = provider;
      // The heartbeat this replica last saw is no longer the provider's latest: the next one here is compared in full.
      entry.request = undefined;
    } else {
      this.#entries.set(provider.id, { provider, request: undefined, settings: DEFAULT_PROVIDER_SETTINGS, timer: undefined });
    }
    if (!previous?.online) this.#onlineCount++;
    if (previous === undefined || !sameButForHeartbeatTime(previous, provider)) this.#onChange({ provider, cause, replicated: true });
  }

  /** expire takes a provider offline because its TTL passed, as found by the replicas' shared sweep; returns whether it was online. */
  expire(providerId: string): boolean {
    return this.#goOffline(providerId, ChangeCause.EXPIRED);
  }

  /** instanceId is the agent process that last heartbeated for a provider, "" when unknown. */
  instanceId(providerId: string): string {
    return this.#entries.get(providerId)?.request?.instanceId ?? "";
  }

  /** get returns a provider by id, online or not. */
  get(providerId: string): Provider | undefined {
    return this.#entries.get(providerId)?.provider;
  }

  /** providers lists providers ordered by id, online ones only unless includeOffline. */
  providers(includeOffline = false): Provider[] {
    const list: Provider[] = [];
    for (const { provider } of this.#entries.values()) if (includeOffline || provider.online) list.push(provider);
    return list.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** onlineCount is the number of online providers. */
  get onlineCount(): number {
    return this.#onlineCount;
  }

  /** close cancels every timer; the table reports no change after it. */
  close(): void {
    for (const entry of this.#entries.values()) entry.timer?.cancel();
    this.#entries.clear();
  }

  #goOffline(providerId: string, cause: ChangeCause, replicated = false): boolean {
    const entry = this.#entries.get(providerId);
    if (!entry?.provider.online) return false;
    entry.timer?.cancel();
    const provider = create(ProviderSchema, { ...entry.provider, online: false });
    entry.provider = provider;
    this.#onlineCount--;
    entry.timer = this.#clock.setTimer(() => this.#forget(providerId), this.#offlineRetentionMs);
    this.#onChange(replicated ? { provider, cause, replicated } : { provider, cause });
    return true;
  }

  /**
   * #expiryTimer takes a provider offline after delayMs, unless the timer fires late: then the registry itself was
   * frozen (a stopped process, a starved machine), the heartbeats that would have refreshed it may be waiting unread
   * in their sockets, and the provider gets another third of a TTL rather than the blame.
   */
  #expiryTimer(providerId: string, delayMs: number): TimerHandle | undefined {
    if (!this.#expires) return undefined;
    const dueAtMs = this.#clock.now() + delayMs;
    return this.#clock.setTimer(() => {
      const graceMs = Math.ceil(this.#ttlMs / 3);
      const entry = this.#entries.get(providerId);
      if (entry && this.#clock.now() - dueAtMs > graceMs) entry.timer = this.#expiryTimer(providerId, graceMs);
      else this.#goOffline(providerId, ChangeCause.EXPIRED);
    }, delayMs);
  }

  #forget(providerId: string): void {
    const entry = this.#entries.get(providerId);
    if (entry && !entry.provider.online) this.#entries.delete(providerId);
  }
}

/** LinkMark is where a report came from: the agent process (instanceId) and the number of its link. */
type LinkMark = Pick<Provider, "instanceId" | "linkSequence">;

/**
 * olderLink tells a report that its agent process sent on an older link than another report; false for reports of
 * two processes, of a process that names itself nowhere, or of one link.
 */
export function olderLink(report: LinkMark, than: LinkMark): boolean {
  return than.instanceId !== "" && report.instanceId === than.instanceId && report.linkSequence < than.linkSequence;
}

function sameButForHeartbeatTime(previous: Provider, next: Provider): boolean {
  const aligned = create(ProviderSchema, { ...next, lastHeartbeatTime: previous.lastHeartbeatTime });
  return equals(ProviderSchema, previous, aligned);
}
