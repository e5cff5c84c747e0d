import type * as grpc from "@grpc/grpc-js";
import { AGENT_KEY_METADATA } from "../../services/shared/heartbeat-relay.js";
import { bearer } from "./stock-grpc-client.js";

/** RELAYED_HEARTBEAT is a heartbeat of one LLM model as a gateway relays it for an agent attached to it over link-1. */
export const RELAYED_HEARTBEAT = {
  providerId: "box",
  endpoint: "127.0.0.1:9",
  gatewayId: "gateway-1",
  linkId: "link-1",
  models: [{ id: "m", serviceType: "SERVICE_TYPE_LLM" }],
} as const;

/** relayMetadata is what a gateway relaying an attached agent's heartbeat sends: the mesh token, and the agent's key beside it. */
export function relayMetadata(meshToken: string, agentKey: string): grpc.Metadata {
  const metadata = bearer(meshToken);
  metadata.set(AGENT_KEY_METADATA, agentKey);
  return metadata;
}
