import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import { InferenceCallSchema } from "../../gen/infermesh/v1/inference_pb.js";
import { ProviderSchema } from "../../gen/infermesh/v1/registry_pb.js";
import { ManualClock } from "../../test/support/manual-clock.js";
import { freeLoopbackPort } from "../../test/support/prometheus-tools.js";
import { createPeerCalls } from "../shared/grpc/infer-client.js";
import type { AgentLinks } from "./agent-links.js";
import { meshCalls, PEER_DOWN_MS } from "./mesh-calls.js";

describe("meshCalls", () => {
  it("passes over every provider of a peer gateway that refused a forwarded call, for a while", async () => {
    const clock = new ManualClock();
    const peers = createPeerCalls({ meshToken: "mesh-token-0123456789", clock });
    try {
      // Nothing listens there: the gateway that held these agents' links is gone.
      const dead = `127.0.0.1:${await freeLoopbackPort()}`;
      const onDead = (id: string) => create(ProviderSchema, { id, gatewayId: "gateway-dead", endpoint: dead, online: true });
      const elsewhere = create(ProviderSchema, { id: "c", gatewayId: "gateway-live", endpoint: "127.0.0.1:1", online: true });
      const calls = meshCalls("gateway-self", {} as AgentLinks, peers, clock);
      const [a, b] = [onDead("a"), onDead("b")];
      expect([a, b, elsewhere].map((p) => calls.reachable(p))).to.deep.equal([true, true, true]);

      const refused = await firstError(calls.infer(a, create(InferenceCallSchema, {}), new AbortController().signal));
      expect(refused).to.be.instanceOf(ConnectError);
      expect((refused as ConnectError).code).to.equal(Code.Unavailable);
      calls.noteFailure?.(a, refused);
      expect([a, b, elsewhere].map((p) => calls.reachable(p))).to.deep.equal([false, false, true]);

      // A failure that says nothing about the peer being gone (the agent's own) passes over nobody.
      calls.noteFailure?.(elsewhere, new ConnectError("the agent's server failed", Code.Unavailable));
      expect(calls.reachable(elsewhere)).to.equal(true);

      clock.advance(PEER_DOWN_MS);
      expect([a, b].map((p) => calls.reachable(p))).to.deep.equal([true, true]);
    } finally {
      peers.close();
    }
  });
});

async function firstError(parts: AsyncIterable<unknown>): Promise<unknown> {
  try {
    for await (const _ of parts) return undefined;
  } catch (error) {
    return error;
  }
  return undefined;
}
