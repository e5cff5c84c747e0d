import { Code, ConnectError } from "@connectrpc/connect";
import type { AgentService } from "../../gen/infermesh/v1/inference_pb.js";
import { bearerCredential } from "../shared/bearer.js";
import type { GrpcImplementation } from "../shared/grpc/server.js";
import { secretMatcher } from "../shared/secret-match.js";
import type { AgentLinks } from "./agent-links.js";
import type { RoutingTable } from "./routing-table.js";

/**
 * createPeerService serves AgentService.Infer to the other gateways of the mesh: a call for a provider whose agent
 * holds its link here goes down that link. Only mesh-token holders may call it; the owner comes from this gateway's
 * own copy of the registry's record, never from the caller.
 */
export function createPeerService(
  meshToken: string,
  links: AgentLinks,
  table: RoutingTable,
): GrpcImplementation<typeof AgentService.method> {
  const isMeshToken = secretMatcher(meshToken);
  return {
    async *infer(request, { metadata, signal }) {
      const credential = bearerCredential(metadata);
      if (credential === undefined || !isMeshToken(credential)) {
        throw new ConnectError("AgentService takes the mesh token: it serves the mesh's gateways only", Code.Unauthenticated);
      }
      if (!request.call) throw new ConnectError("call is required", Code.InvalidArgument);
      const provider = table.provider(request.providerId);
      if (!provider) throw new ConnectError(`provider '${request.providerId}' is not online`, Code.Unavailable);
      for await (const part of links.infer(provider.id, provider.ownerUserId, request.call, signal)) yield { part };
    },
  };
}
