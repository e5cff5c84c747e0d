import type { Metadata } from "@grpc/grpc-js";

/**
 * HTTP_HEARTBEAT_METADATA marks a Heartbeat the gateway relays for an agent that reports over HTTP
 * (`POST /api/inference/agent/heartbeat/`). Such an agent may serve no AgentService: the registry then accepts an
 * empty endpoint, which registers the provider as listed but not routable. Anyone may set the mark; all it allows is
 * a provider that no gateway routes to, under the caller's own key.
 */
export const HTTP_HEARTBEAT_METADATA = "infermesh-heartbeat-via";
/** HTTP_HEARTBEAT_VALUE is the mark's value. */
export const HTTP_HEARTBEAT_VALUE = "http";

/** relayedOverHttp tells whether a call carries the HTTP heartbeat mark. */
export function relayedOverHttp(metadata: Metadata): boolean {
  return metadata.get(HTTP_HEARTBEAT_METADATA).includes(HTTP_HEARTBEAT_VALUE);
}
