import { Code, ConnectError } from "@connectrpc/connect";
import type { InferenceCall, InferencePart } from "../../gen/infermesh/v1/inference_pb.js";
import type { Provider } from "../../gen/infermesh/v1/registry_pb.js";
import { failedCall } from "../shared/answer-queue.js";
import type { Clock } from "../shared/clock.js";
import type { PeerCalls } from "../shared/grpc/infer-client.js";
import { neverConnected } from "../shared/socket-errors.js";
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
  /** noteFailure hears why a call to the provider failed before its answer began, so that the next pick knows. */
  noteFailure?(provider: Provider, error: unknown): void;
}

/**
 * PEER_DOWN_MS is how long providers attached to a gateway that refused a forwarded call are passed over: long enough
 * for their agents to dial another gateway and the registry to say so, short enough that a gateway that restarted on
 * the same address is used again soon.
 */
export const PEER_DOWN_MS = 3_000;

/**
 * meshCalls reaches an agent wherever its link is: on this gateway's own links, or through the gateway that holds it
 * (the registry's record says which, and that gateway's internal endpoint). An agent holds one link, to whichever
 * gateway the load balancer gave it, so a call that lands on another gateway takes one hop on the private network.
 */
export function meshCalls(gatewayId: string, links: AgentLinks, peers: PeerCalls, clock: Clock): AgentCalls {
  // A dead gateway holds the links of several agents: one refused call passes over all of them, not one per request.
  const downUntil = new Map<string, number>();
  const peerDown = (endpoint: string) => {
    const until = downUntil.get(endpoint);
    if (until === undefined) return false;
    if (clock.now() < until) return true;
    downUntil.delete(endpoint);
    return false;
  };
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
      return provider.gatewayId !== "" && provider.endpoint !== "" && !peerDown(provider.endpoint);
    },
    noteFailure(provider, error) {
      if (provider.gatewayId === gatewayId || provider.endpoint === "" || !peerUnreachable(error)) return;
      downUntil.set(provider.endpoint, clock.now() + PEER_DOWN_MS);
    },
  };
}

/**
 * peerUnreachable tells a call that never reached the peer gateway (dead, or its host gone): its socket error among
 * the causes, or, where a cause was kept only as text, named in a message.
 */
function peerUnreachable(error: unknown): boolean {
  if (neverConnected(error)) return true;
  for (let cause = error, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth++) {
    if (/\bconnect (ECONNREFUSED|EHOSTUNREACH|ENETUNREACH)\b/.test(cause.message)) return true;
  }
  return false;
}
