import type { Model, ServiceType } from "../../gen/infermesh/v1/capabilities_pb.js";

/** Candidate is an upstream as selection sees it: what it serves now and how busy it is. */
export interface Candidate {
  readonly models: readonly Model[];
  readonly load: { readonly inFlight: number; readonly queued: number };
}

/**
 * selectUpstream picks the upstream that serves model with the service type: upstreams listing the exact id first,
 * else those listing it in another case (ids match case-insensitively across the mesh); among several, the least
 * busy, then the first configured. Undefined when none serves it.
 */
export function selectUpstream<C extends Candidate>(candidates: readonly C[], model: string, serviceType: ServiceType): C | undefined {
  const serving = (match: (id: string) => boolean) =>
    candidates.filter((c) => c.models.some((m) => m.serviceType === serviceType && match(m.id)));
  let matches = serving((id) => id === model);
  if (matches.length === 0) {
    const wanted = model.toLowerCase();
    matches = serving((id) => id.toLowerCase() === wanted);
  }
  let best: C | undefined;
  for (const candidate of matches) {
    if (best === undefined || busyness(candidate) < busyness(best)) best = candidate;
  }
  return best;
}

function busyness(candidate: Candidate): number {
  return candidate.load.inFlight + candidate.load.queued;
}
