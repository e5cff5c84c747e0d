import { ServiceType, type Model } from "../../gen/infermesh/v1/capabilities_pb.js";
import { ProviderState, type Provider, type WatchProvidersResponse } from "../../gen/infermesh/v1/registry_pb.js";
import { canSee, type Viewer } from "../shared/visibility.js";

/** Route is one provider that can serve a request, with the model as that provider serves it. */
export interface Route {
  readonly provider: Provider;
  readonly model: Model;
}

/** RouteLookup is the outcome of looking a model up for a caller and a service type. */
export type RouteLookup =
  | { readonly kind: "found"; readonly routes: readonly Route[] }
  /** otherTypes: the caller can reach the model, but only with these service types. */
  | { readonly kind: "wrong_type"; readonly otherTypes: readonly ServiceType[] }
  | { readonly kind: "none" };

/**
 * RoutingTable is the gateway's copy of the registry's online providers, fed by WatchProviders, indexed by
 * lower-cased model id (ids match case-insensitively). The request path reads it and never waits on the registry.
 */
export class RoutingTable {
  readonly #providers = new Map<string, Provider>();
  #byModel = new Map<string, Route[]>();
  #dirty = false;
  #version = 0;

  /** apply folds one watch event into the table. */
  apply(response: WatchProvidersResponse): void {
    const { event } = response;
    if (event.case === "snapshot") {
      this.#providers.clear();
      for (const provider of event.value.providers) if (provider.online) this.#providers.set(provider.id, provider);
    } else if (event.case === "change" && event.value.provider) {
      const provider = event.value.provider;
      if (provider.online) this.#providers.set(provider.id, provider);
      else this.#providers.delete(provider.id);
    } else {
      return;
    }
    this.#dirty = true;
    this.#version++;
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
   * lookup finds the accepting providers the viewer may use that serve the model with the service type; when there
   * are none, it says whether the viewer could reach the model with another type.
   */
  lookup(viewer: Viewer, modelId: string, serviceType: ServiceType): RouteLookup {
    const candidates = this.#index().get(modelId.toLowerCase()) ?? [];
    const routes: Route[] = [];
    const otherTypes = new Set<ServiceType>();
    for (const route of candidates) {
      if (!canSee(viewer, route.provider)) continue;
      if (route.model.serviceType !== serviceType) otherTypes.add(route.model.serviceType);
      else if (route.provider.state !== ProviderState.DRAINING) routes.push(route);
    }
    if (routes.length > 0) return { kind: "found", routes };
    if (otherTypes.size > 0) return { kind: "wrong_type", otherTypes: [...otherTypes] };
    return { kind: "none" };
  }

  /** visibleModels lists every route the viewer may use, for /v1/models. */
  visibleRoutes(viewer: Viewer): Route[] {
    const routes: Route[] = [];
    for (const list of this.#index().values()) for (const route of list) if (canSee(viewer, route.provider)) routes.push(route);
    return routes;
  }

  /** The index is rebuilt lazily, once per burst of changes, not per heartbeat. */
  #index(): Map<string, Route[]> {
    if (!this.#dirty) return this.#byModel;
    const index = new Map<string, Route[]>();
    for (const provider of this.#providers.values()) {
      // A provider registered over HTTP without an AgentService endpoint is listed by the registry, never routed to.
      if (provider.endpoint === "") continue;
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

/** SERVICE_TYPE_NAMES are the service types as /v1/models and error messages spell them. */
export const SERVICE_TYPE_NAMES: Readonly<Record<ServiceType, string>> = {
  [ServiceType.UNSPECIFIED]: "unspecified",
  [ServiceType.LLM]: "llm",
  [ServiceType.STT]: "stt",
  [ServiceType.IMAGE]: "image",
  [ServiceType.TTS]: "tts",
};
