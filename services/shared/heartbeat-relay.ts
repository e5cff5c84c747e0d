import type { Metadata } from "@grpc/grpc-js";

/**
 * AGENT_KEY_METADATA carries an attached agent's API key on the Heartbeat a gateway relays for it. The gateway
 * authenticates with the mesh token, which alone may say where an agent is attached (endpoint, gateway and link);
 * the agent's key makes the registry check the owner and the provider id exactly as for the owner's own heartbeat.
 */
export const AGENT_KEY_METADATA = "infermesh-agent-key";

/** relayedAgentKey is the agent key a relayed heartbeat carries, if any. */
export function relayedAgentKey(metadata: Metadata): string | undefined {
  const [value] = metadata.get(AGENT_KEY_METADATA);
  return typeof value === "string" && value !== "" ? value : undefined;
}
