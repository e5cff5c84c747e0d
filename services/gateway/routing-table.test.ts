import { create } from "@bufbuild/protobuf";
import { expect } from "chai";
import { ServiceType } from "../../gen/infermesh/v1/capabilities_pb.js";
import { type Provider, ProviderSchema, WatchProvidersResponseSchema } from "../../gen/infermesh/v1/registry_pb.js";
import { ManualClock } from "../../test/support/manual-clock.js";
import { RoutingTable } from "./routing-table.js";

const owner = { userId: "u1", userName: "alice" };

function provider(id: string, gatewayId = "gateway-1"): Provider {
  return create(ProviderSchema, { id, ownerUserId: "u1", online: true, gatewayId, models: [{ id: "m", serviceType: ServiceType.LLM }] });
}

const snapshot = (...providers: Provider[]) => create(WatchProvidersResponseSchema, { event: { case: "snapshot", value: { providers } } });

const ids = (table: RoutingTable) => {
  const found = table.lookup(owner, "m", ServiceType.LLM);
  return found.kind === "found" ? found.routes.map((r) => r.provider.id).sort() : [];
};

describe("RoutingTable", () => {
  it("keeps providers a reconnect snapshot lacks for the grace period, then lets them go", () => {
    const clock = new ManualClock();
    const joined: string[] = [];
    const left: string[] = [];
    const table = new RoutingTable({
      clock,
      reconnectGraceMs: 1_000,
      onJoined: (p) => joined.push(p.id),
      onLeft: (p) => left.push(p.id),
    });
    table.apply(snapshot(provider("a"), provider("b")));
    expect(ids(table)).to.deep.equal(["a", "b"]);
    table.apply(snapshot(provider("a")));
    expect(ids(table), "b is unconfirmed, not gone").to.deep.equal(["a", "b"]);
    clock.advance(999);
    expect(ids(table)).to.deep.equal(["a", "b"]);
    clock.advance(1);
    expect(ids(table)).to.deep.equal(["a"]);
    expect(joined).to.deep.equal(["a", "b"]);
    expect(left).to.deep.equal(["b"]);
    table.close();
  });

  it("confirms an unconfirmed provider when it shows up again, and replaces the table on the first snapshot", () => {
    const clock = new ManualClock();
    const table = new RoutingTable({ clock, reconnectGraceMs: 1_000 });
    table.apply(snapshot(provider("a"), provider("b")));
    table.apply(snapshot(provider("a")));
    table.apply(create(WatchProvidersResponseSchema, { event: { case: "change", value: { provider: provider("b") } } }));
    clock.advance(5_000);
    expect(ids(table)).to.deep.equal(["a", "b"]);
    const fresh = new RoutingTable({ clock });
    fresh.apply(snapshot(provider("c")));
    expect(ids(fresh)).to.deep.equal(["c"]);
  });

  it("never routes to a provider no gateway holds a link to (one that reports over HTTP)", () => {
    const table = new RoutingTable();
    table.apply(snapshot(provider("http-only", "")));
    expect(table.lookup(owner, "m", ServiceType.LLM).kind).to.equal("none");
  });
});
