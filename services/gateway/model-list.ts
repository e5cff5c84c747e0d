import type { Model } from "../../gen/infermesh/v1/capabilities_pb.js";
import { modalityName, serviceTypeInfo, serviceTypeName } from "../shared/inference-catalog.js";
import type { Route } from "./routing-table.js";

/** ServedBy names a provider that serves a model and the member who owns it. */
export interface ServedBy {
  /** provider is the provider's name, as owned_by lists it. */
  readonly provider: string;
  /** owner is the user name of the provider's owner: the caller for their own, another member for a shared one. */
  readonly owner: string;
}

/**
 * ModelEntry is one model of OpenAI's model list, with inference.club's capability fields and served_by, an
 * extension that says whose providers serve it, so that a page can tell a member's own models from shared ones.
 */
export interface ModelEntry {
  readonly id: string;
  readonly object: "model";
  readonly created: number;
  readonly owned_by: string;
  readonly served_by: readonly ServedBy[];
  readonly service_type: string;
  readonly input_modalities: readonly string[];
  readonly output_modalities: readonly string[];
  readonly supported_features: readonly string[];
  readonly context_length: number | null;
  readonly engine?: string;
  readonly quantization?: string;
}

/**
 * modelList renders routes as OpenAI's model list: one entry per model id and service type across providers (ids
 * compared case-insensitively), owned by the providers that serve it, sorted by id. served_by pairs each of those
 * providers with its owner, sorted by provider, then owner, each pair once.
 */
export function modelList(routes: readonly Route[]): ModelEntry[] {
  const byId = new Map<string, { route: Route; servers: Map<string, ServedBy> }>();
  for (const route of routes) {
    const key = `${route.model.id.toLowerCase()}\u0000${route.model.serviceType}`;
    const server = { provider: route.provider.name, owner: route.provider.ownerUserName };
    const serverKey = `${server.provider}\u0000${server.owner}`;
    const entry = byId.get(key);
    if (entry) entry.servers.set(serverKey, server);
    else byId.set(key, { route, servers: new Map([[serverKey, server]]) });
  }
  return [...byId.values()]
    .sort((a, b) => a.route.model.id.localeCompare(b.route.model.id))
    .map(({ route, servers }) => {
      const servedBy = [...servers.values()].sort((a, b) => byCodeUnits(a.provider, b.provider) || byCodeUnits(a.owner, b.owner));
      return modelEntry(route.model, servedBy, route.provider.lastHeartbeatTime?.seconds);
    });
}

/** byCodeUnits orders strings as Array.prototype.sort does by default, the order owned_by has always used. */
function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** modelEntry describes a model; modalities it does not declare take its service type's defaults. */
function modelEntry(model: Model, servedBy: readonly ServedBy[], created: bigint | undefined): ModelEntry {
  const type = serviceTypeInfo(model.serviceType);
  const input = model.inputModalities.length > 0 ? model.inputModalities : (type?.inputs ?? []);
  const output = model.outputModalities.length > 0 ? model.outputModalities : (type?.outputs ?? []);
  return {
    id: model.id,
    object: "model",
    created: created === undefined ? 0 : Number(created),
    owned_by: [...new Set(servedBy.map((server) => server.provider))].join(","),
    served_by: servedBy,
    service_type: serviceTypeName(model.serviceType),
    input_modalities: input.map(modalityName),
    output_modalities: output.map(modalityName),
    supported_features: model.supportedFeatures,
    context_length: model.contextLength === 0 ? null : model.contextLength,
    ...(model.engine ? { engine: model.engine } : {}),
    ...(model.quantization ? { quantization: model.quantization } : {}),
  };
}
