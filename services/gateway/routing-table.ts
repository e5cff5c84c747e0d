import { create } from "@bufbuild/protobuf";
import type { Model, ServiceType } from "../../gen/infermesh/v1/capabilities_pb.js";
import { type Provider, ProviderSchema, ProviderState, type WatchProvidersResponse } from "../../gen/infermesh/v1/registry_pb.js";
import { type Clock, systemClock, type TimerHandle } from "../shared/clock.js";
import { canSee, type Viewer } from "../shared/visibility.js";

/** Route is one provider that can serve a request, with the model as that provider serves it. */
export interface Route {
  readonly provider: Provider;
  readonly model: Model;
}

/** DEFAULT_RECONNECT_GRACE_MS is how long a provider missing from a reconnect snapshot is kept: the registry's TTL. */
export const DEFAULT_RECONNECT_GRACE_MS = 30_000;

/** RoutingTableOptions configures a RoutingTable. */
export interface RoutingTableOptions {
  readonly clock?: Clock;
  readonly reconnectGraceMs?: number;
  /** onJoined hears of a provider that was not in the table and now is. */
  readonly onJoined?: (provider: Provider) => void;
  /** onLeft hears of a provider that left the table. */
  readonly onLeft?: (provider: Provider) => void;
}

/**
 * NoRouteReason says why a caller has no provider for a model, in terms that reveal nothing of providers the caller
 * may not use: "model_not_served" (none the caller may use serves it), "providers_offline" (the caller's own went
 * offline), "providers_paused" (the caller's own are paused), "providers_draining" (those the caller may use are
 * shutting down).
 */
export type NoRouteReason =
  | { readonly code: "model_not_served" }
  | { readonly code: "providers_offline"; readonly sinceMs: number | undefined }
  | { readonly code: "providers_paused" }
  | { readonly code: "providers_draining" };

/** RouteLookup is the outcome of looking a model up for a caller, a service type and a feature. */
export type RouteLookup =
  | { readonly kind: "found"; readonly routes: readonly Route[] }
  /** otherTypes: the caller can reach the model, but only with these service types. */
  | { readonly kind: "wrong_type"; readonly otherTypes: readonly ServiceType[] }
  /** missing_feature: the caller can reach the model with the service type, but no provider declares the feature. */
  | { readonly kind: "missing_feature" }
  | { readonly kind: "none"; readonly reason: NoRouteReason };

/** declares tells whether a model declares a supported feature; agents spell features in lower case, and may not. */
function declares(model: Model, feature: string): boolean {
  const wanted = feature.toLowerCase();
  return model.supportedFeatures.some((declared) => declared.toLowerCase() === wanted);
}

/** OFFLINE_MEMORY_MS is how long the table remembers a provider that went offline, to tell its owner when. */
export const OFFLINE_MEMORY_MS = 60 * 60 * 1000;
/** MAX_OFFLINE_REMEMBERED bounds that memory. */
const MAX_OFFLINE_REMEMBERED = 10_000;

/**
 * RoutingTable is the gateway's copy of the registry's online providers, fed by WatchProviders, indexed by
 * lower-cased model id (ids match case-insensitively). The request path reads it and never waits on the registry.
 */
export class RoutingTable {
  readonly #providers = new Map<string, Provider>();
  /** #offline holds providers that went offline, with when the gateway learnt it, for their owners' error messages. */
  readonly #offline = new Map<string, { readonly provider: Provider; readonly atMs: number }>();
  /** #unconfirmed holds providers a reconnect snapshot did not list, until their grace period ends. */
  readonly #unconfirmed = new Map<string, number>();
  readonly #options: RoutingTableOptions;
  #byModel = new Map<string, Route[]>();
  #dirty = false;
  #version = 0;
  #snapshots = 0;
  #sweep: TimerHandle | undefined;

  constructor(options: RoutingTableOptions = {}) {
    this.#options = options;
  }

  /**
   * apply folds one watch event into the table. The first snapshot replaces the table; a later one (after a
   * reconnect, perhaps to a registry that just restarted and has not heard from every agent yet) keeps the
   * providers it lacks for a grace period, during which passive health skips any that are really gone.
   */
  apply(response: WatchProvidersResponse): void {
    const { event } = response;
    if (event.case === "snapshot") {
      const listed = new Set<string>();
      for (const provider of event.value.providers) {
        if (!provider.online) {
          this.#rememberOffline(provider);
          continue;
        }
        listed.add(provider.id);
        this.#put(provider);
      }
      const firstSnapshot = this.#snapshots++ === 0;
      for (const id of [...this.#providers.keys()]) {
        if (listed.has(id)) continue;
        if (firstSnapshot) this.#remove(id);
        else if (!this.#unconfirmed.has(id)) this.#unconfirmed.set(id, this.#clock().now() + this.#graceMs());
      }
      if (this.#unconfirmed.size > 0) this.#scheduleSweep();
    } else if (event.case === "change" && event.value.provider) {
      const provider = event.value.provider;
      if (provider.online) this.#put(provider);
      else {
        this.#remove(provider.id);
        this.#rememberOffline(provider);
      }
    } else {
      return;
    }
    this.#dirty = true;
    this.#version++;
  }

  /**
   * applyOwnerChange takes an owner's decision (paused, sharing) into the table as soon as the gateway that relayed it
   * hears back, before the registry's watch brings it: the owner's next call through this gateway sees it.
   */
  applyOwnerChange(changed: Provider): void {
    const held = this.#providers.get(changed.id);
    if (!held) return;
    this.#providers.set(changed.id, create(ProviderSchema, { ...held, paused: changed.paused, sharing: changed.sharing }));
    this.#dirty = true;
    this.#version++;
  }

  /** close cancels the grace-period sweep. */
  close(): void {
    this.#sweep?.cancel();
  }

  #put(provider: Provider): void {
    const joined = !this.#providers.has(provider.id);
    this.#providers.set(provider.id, provider);
    this.#offline.delete(provider.id);
    this.#unconfirmed.delete(provider.id);
    if (joined) this.#options.onJoined?.(provider);
  }

  #remove(id: string): void {
    const provider = this.#providers.get(id);
    if (!provider) return;
    this.#providers.delete(id);
    this.#unconfirmed.delete(id);
    this.#options.onLeft?.(provider);
  }

  #rememberOffline(provider: Provider): void {
    this.#offline.delete(provider.id);
    if (this.#offline.size >= MAX_OFFLINE_REMEMBERED) {
      const oldest = this.#offline.keys().next();
      if (!oldest.done) this.#offline.delete(oldest.value);
    }
    this.#offline.set(provider.id, { provider, atMs: this.#clock().now() });
  }

  #scheduleSweep(): void {
    this.#sweep?.cancel();
    const next = Math.min(...this.#unconfirmed.values());
    this.#sweep = this.#clock().setTimer(
      () => {
        const now = this.#clock().now();
        for (const [id, deadline] of [...this.#unconfirmed]) if (deadline <= now) this.#remove(id);
        this.#dirty = true;
        this.#version++;
        if (this.#unconfirmed.size > 0) this.#scheduleSweep();
      },
      Math.max(0, next - this.#clock().now()),
    );
  }

  #clock(): Clock {
    return this.#options.clock ?? systemClock;
  }

  #graceMs(): number {
    return this.#options.reconnectGraceMs ?? DEFAULT_RECONNECT_GRACE_MS;
  }

  /** version increases with every applied change. */
  get version(): number {
    return this.#version;
  }

  /** providers are all online providers, whoever owns them. */
  providers(): IterableIterator<Provider> {
    return this.#providers.values();
  }

  /** provider returns an online provider by id. */
  provider(id: string): Provider | undefined {
    return this.#providers.get(id);
  }

  /**
   * lookup finds the providers the viewer may use now that serve the model with the service type, and, when a feature
   * is named, declare it too: the viewer's own when any is online and accepting, else those shared with the viewer.
   * When there are none it says why, that the viewer's providers of the model lack the feature, or that the viewer
   * could reach the model with another type. Another user's provider that the viewer may not use, or that its owner
   * paused, counts exactly as if it did not exist.
   */
  lookup(viewer: Viewer, modelId: string, serviceType: ServiceType, feature?: string): RouteLookup {
    const candidates = this.#index().get(modelId.toLowerCase()) ?? [];
    const own: Route[] = [];
    const shared: Route[] = [];
    const otherTypes = new Set<ServiceType>();
    let paused = false;
    let draining = false;
    let lacksFeature = false;
    for (const route of candidates) {
      const { provider } = route;
      const mine = provider.ownerUserId === viewer.userId;
      if (!mine && (provider.paused || !canSee(viewer, provider))) continue;
      if (route.model.serviceType !== serviceType) otherTypes.add(route.model.serviceType);
      else if (feature !== undefined && !declares(route.model, feature)) lacksFeature = true;
      else if (provider.paused) paused = true;
      else if (provider.state === ProviderState.DRAINING) draining = true;
      else (mine ? own : shared).push(route);
    }
    if (own.length > 0) return { kind: "found", routes: own };
    if (shared.length > 0) return { kind: "found", routes: shared };
    if (paused) return { kind: "none", reason: { code: "providers_paused" } };
    if (draining) return { kind: "none", reason: { code: "providers_draining" } };
    if (lacksFeature) return { kind: "missing_feature" };
    if (otherTypes.size > 0) return { kind: "wrong_type", otherTypes: [...otherTypes] };
    return { kind: "none", reason: this.#offlineReason(viewer, modelId.toLowerCase(), serviceType) };
  }

  /** #offlineReason looks for the viewer's own providers of the model that went offline recently. */
  #offlineReason(viewer: Viewer, modelKey: string, serviceType: ServiceType): NoRouteReason {
    const forgetBefore = this.#clock().now() - OFFLINE_MEMORY_MS;
    let sinceMs: number | undefined;
    let found = false;
    for (const [id, { provider, atMs }] of this.#offline) {
      if (atMs < forgetBefore) {
        this.#offline.delete(id);
        continue;
      }
      if (provider.ownerUserId !== viewer.userId) continue;
      if (!provider.models.some((m) => m.serviceType === serviceType && m.id.toLowerCase() === modelKey)) continue;
      found = true;
      const seen = provider.lastHeartbeatTime ? Number(provider.lastHeartbeatTime.seconds) * 1000 : atMs;
      sinceMs = Math.max(sinceMs ?? 0, seen);
    }
    return found ? { code: "providers_offline", sinceMs } : { code: "model_not_served" };
  }

  /**
   * visibleRoutes lists every route the viewer may use, for /v1/models: per model, the viewer's own providers when
   * they serve it, else those shared with the viewer; another user's paused provider is left out.
   */
  visibleRoutes(viewer: Viewer): Route[] {
    const routes: Route[] = [];
    for (const list of this.#index().values()) {
      const own = list.filter((route) => route.provider.ownerUserId === viewer.userId);
      if (own.length > 0) routes.push(...own);
      else for (const route of list) if (!route.provider.paused && canSee(viewer, route.provider)) routes.push(route);
    }
    return routes;
  }

  /** The index is rebuilt lazily, once per burst of changes, not per heartbeat. */
  #index(): Map<string, Route[]> {
    if (!this.#dirty) return this.#byModel;
    const index = new Map<string, Route[]>();
    for (const provider of this.#providers.values()) {
      // A provider no gateway holds a link to (one that reports over HTTP) is listed by the registry, never routed to.
      if (provider.gatewayId === "") continue;
      for (const model of provider.models) {
        const key = model.id.toLowerCase();
        const list = index.get(key);
        if (list) list.push({ provider, model });
        else index.set(key, [{ provider, model }]);
      }
    }
    this.#byModel = index;
    this.#dirty = false;
    return index;
  }
}
