import { Code, ConnectError } from "@connectrpc/connect";
import type { InferenceCall, InferencePart } from "../../gen/infermesh/v1/inference_pb.js";
import type { Provider } from "../../gen/infermesh/v1/registry_pb.js";
import { failedCall } from "../shared/answer-queue.js";
import type { PeerCalls } from "../shared/grpc/infer-client.js";
import type { AgentLinks } from "./agent-links.js";

/** AgentCalls reaches providers' agents: what the dispatcher calls. */
export interface AgentCalls {
  /**
   * infer sends the call to the provider's agent and yields the answer's parts. Aborting signal cancels the call (and
   * so the agent's upstream request). gRPC-level failures surface as ConnectErrors with the gRPC code.
   */
  infer(provider: Provider, call: InferenceCall, signal: AbortSignal): AsyncIterable<InferencePart>;
  /** reachable tells whether a call to the provider can go anywhere now. */
  reachable(provider: Provider): boolean;
}

/**
 * meshCalls reaches an agent wherever its link is: on this gateway's own links, or through the gateway that holds it
 * (the registry's record says which, and that gateway's internal endpoint). An agent holds one link, to whichever
 * gateway the load balancer gave it, so a call that lands on another gateway takes one hop on the private network.
 */
export function meshCalls(gatewayId: string, links: AgentLinks, peers: PeerCalls): AgentCalls {
  return {
    infer(provider, call, signal) {
      if (provider.gatewayId === gatewayId) return links.infer(provider.id, provider.ownerUserId, call, signal);
      if (provider.endpoint !== "") return peers.infer(provider.endpoint, provider.id, call, signal);
      return failedCall(
        new ConnectError(`provider '${provider.id}' is attached to a gateway that takes no forwarded calls`, Code.Unavailable),
      );
    },
    reachable(provider) {
      if (provider.gatewayId === gatewayId) return links.attached(provider.id);
      return provider.gatewayId !== "" && provider.endpoint !== "";
    },
  };
}
