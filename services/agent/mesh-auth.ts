import { Code, ConnectError } from "@connectrpc/connect";
import type { Metadata } from "@grpc/grpc-js";
import { bearerCredential } from "../shared/bearer.js";
import { secretMatcher } from "../shared/secret-match.js";

/**
 * MeshAuth checks that a caller of AgentService belongs to the mesh.
 *
 * The scheme: at start the agent draws a random agent token (32 bytes, base64url) that lives only in its memory. It
 * sends the token in every Heartbeat to the registry, authenticated with its owner's API key. The registry hands
 * agent tokens only to mesh-token holders (gateways) in WatchProviders and ListProviders, never to users. A gateway
 * calls Infer with `authorization: Bearer <agent token>`; anything else, a user's API key included, is
 * UNAUTHENTICATED. So a user's key lets its holder register agents and call the gateway, but never reach an agent
 * directly, and a new token on every start means a leaked one dies with the process.
 */
export type MeshAuth = (metadata: Metadata) => void;

/** createMeshAuth returns a check that throws UNAUTHENTICATED unless the metadata carries agentToken, compared in constant time. */
export function createMeshAuth(agentToken: string): MeshAuth {
  const matches = secretMatcher(agentToken);
  return (metadata) => {
    const presented = bearerCredential(metadata);
    if (presented === undefined) {
      throw new ConnectError("missing bearer credential in 'authorization' metadata", Code.Unauthenticated);
    }
    if (!matches(presented)) {
      throw new ConnectError("this agent accepts calls from the mesh only (agent token required)", Code.Unauthenticated);
    }
  };
}
