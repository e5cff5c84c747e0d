import type { Model } from "../../gen/infermesh/v1/capabilities_pb.js";
import { modalityName, serviceTypeInfo, serviceTypeName } from "../shared/inference-catalog.js";
import type { Route } from "./routing-table.js";

/** ModelEntry is one model of OpenAI's model list, with inference.club's capability fields. */
export interface ModelEntry {
  readonly id: string;
  readonly object: "model";
  readonly created: number;
  readonly owned_by: string;
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
 * compared case-insensitively), owned by the providers that serve it, sorted by id.
 */
export function modelList(routes: readonly Route[]): ModelEntry[] {
  const byId = new Map<string, { route: Route; owners: Set<string> }>();
  for (const route of routes) {
    const key = `${route.model.id.toLowerCase()}\u0000${route.model.serviceType}`;
    const entry = byId.get(key);
    if (entry) entry.owners.add(route.provider.name);
    else byId.set(key, { route, owners: new Set([route.provider.name]) });
  }
  return [...byId.values()]
    .sort((a, b) => a.route.model.id.localeCompare(b.route.model.id))
    .map(({ route, owners }) => modelEntry(route.model, [...owners].sort().join(","), route.provider.lastHeartbeatTime?.seconds));
}

/** modelEntry describes a model; modalities it does not declare take its service type's defaults. */
function modelEntry(model: Model, ownedBy: string, created: bigint | undefined): ModelEntry {
  const type = serviceTypeInfo(model.serviceType);
  const input = model.inputModalities.length > 0 ? model.inputModalities : (type?.inputs ?? []);
  const output = model.outputModalities.length > 0 ? model.outputModalities : (type?.outputs ?? []);
  return {
    id: model.id,
    object: "model",
    created: created === undefined ? 0 : Number(created),
    owned_by: ownedBy,
    service_type: serviceTypeName(model.serviceType),
    input_modalities: input.map(modalityName),
    output_modalities: output.map(modalityName),
    supported_features: model.supportedFeatures,
    context_length: model.contextLength === 0 ? null : model.contextLength,
    ...(model.engine ? { engine: model.engine } : {}),
    ...(model.quantization ? { quantization: model.quantization } : {}),
  };
}
