import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { expect } from "chai";
import { ServiceType } from "../../gen/infermesh/v1/capabilities_pb.js";
import {
  type Provider,
  ProviderSchema,
  ProviderState,
  Visibility,
  WatchProvidersResponseSchema,
} from "../../gen/infermesh/v1/registry_pb.js";
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

  describe("why a caller has no provider", () => {
    const bob = { userId: "u2", userName: "bob" };
    const of = (id: string, owner: string, fields: MessageInitShape<typeof ProviderSchema> = {}) =>
      create(ProviderSchema, {
        id,
        ownerUserId: owner,
        online: true,
        gatewayId: "g",
        models: [{ id: "m", serviceType: ServiceType.LLM }],
        ...fields,
      });
    const change = (p: Provider) => create(WatchProvidersResponseSchema, { event: { case: "change", value: { provider: p } } });
    const reason = (table: RoutingTable, viewer = owner, type = ServiceType.LLM) => {
      const found = table.lookup(viewer, "M", type);
      return found.kind === "none" ? found.reason : found.kind;
    };

    it("says model_not_served when nobody the caller may use serves it, whatever others' providers do", () => {
      const table = new RoutingTable();
      table.apply(snapshot(of("bobs", "u2"), of("bobs-paused", "u2", { paused: true, sharing: { visibility: Visibility.PUBLIC } })));
      expect(reason(table)).to.deep.equal({ code: "model_not_served" });
      table.apply(change(of("bobs-gone", "u2", { online: false })));
      expect(reason(table), "another user's offline provider stays secret").to.deep.equal({ code: "model_not_served" });
    });

    it("says providers_paused to the owner of a paused provider, and hides it from everyone else", () => {
      const table = new RoutingTable();
      table.apply(snapshot(of("mine", "u1", { paused: true, sharing: { visibility: Visibility.PUBLIC } })));
      expect(reason(table)).to.deep.equal({ code: "providers_paused" });
      expect(reason(table, bob)).to.deep.equal({ code: "model_not_served" });
      expect(table.visibleRoutes(bob)).to.deep.equal([]);
      expect(table.visibleRoutes(owner).map((r) => r.provider.id)).to.deep.equal(["mine"]);
    });

    it("says providers_draining when every provider the caller may use is shutting down", () => {
      const table = new RoutingTable();
      table.apply(
        snapshot(of("shared", "u2", { state: ProviderState.DRAINING, sharing: { visibility: Visibility.USERS, allowedUsers: ["alice"] } })),
      );
      expect(reason(table)).to.deep.equal({ code: "providers_draining" });
    });

    it("says providers_offline, with when, for the caller's own provider that left; from a snapshot too", () => {
      const clock = new ManualClock();
      const table = new RoutingTable({ clock });
      table.apply(snapshot(of("mine", "u1")));
      table.apply(change(of("mine", "u1", { online: false, lastHeartbeatTime: { seconds: 1_700_000_000n, nanos: 0 } })));
      expect(reason(table)).to.deep.equal({ code: "providers_offline", sinceMs: 1_700_000_000_000 });
      expect(reason(table, owner, ServiceType.STT), "only for the model's type").to.deep.equal({ code: "model_not_served" });
      const restarted = new RoutingTable({ clock });
      restarted.apply(snapshot(of("mine", "u1", { online: false })));
      expect(reason(restarted)).to.deep.equal({ code: "providers_offline", sinceMs: clock.now() });
      restarted.apply(change(of("mine", "u1")));
      expect(reason(restarted)).to.equal("found");
      clock.advance(2 * 60 * 60 * 1000);
      expect(reason(table), "forgotten after an hour").to.deep.equal({ code: "model_not_served" });
    });

    describe("with a feature the operation needs (a protocol the model's server must speak)", () => {
      const speaking = (id: string, owner: string, features: string[], fields: MessageInitShape<typeof ProviderSchema> = {}) =>
        of(id, owner, { models: [{ id: "m", serviceType: ServiceType.LLM, supportedFeatures: features }], ...fields });
      const lookup = (table: RoutingTable, viewer = owner) => {
        const found = table.lookup(viewer, "M", ServiceType.LLM, "responses");
        return found.kind === "found" ? found.routes.map((r) => r.provider.id) : found.kind === "none" ? found.reason : found.kind;
      };
      const publicly = { sharing: { visibility: Visibility.PUBLIC } };

      it("finds only the providers that declare it, in any case", () => {
        const table = new RoutingTable();
        table.apply(snapshot(speaking("plain", "u1", ["tools"]), speaking("speaks", "u1", ["tools", "Responses"])));
        expect(lookup(table)).to.deep.equal(["speaks"]);
        expect(ids(table), "without a feature, every provider of the type").to.deep.equal(["plain", "speaks"]);
      });

      it("says missing_feature when the caller reaches the model with its type but none of those providers declares it", () => {
        const table = new RoutingTable();
        table.apply(snapshot(speaking("mine", "u1", ["messages"]), speaking("shared", "u2", [], publicly)));
        expect(lookup(table)).to.equal("missing_feature");
        expect(table.lookup(owner, "m", ServiceType.EMBEDDING, "responses").kind, "a type it is not served with").to.equal("wrong_type");
      });

      it("goes to a shared provider that declares it when the caller's own do not", () => {
        const table = new RoutingTable();
        table.apply(snapshot(speaking("mine", "u1", []), speaking("shared", "u2", ["responses"], publicly)));
        expect(lookup(table)).to.deep.equal(["shared"]);
      });

      it("counts a provider the caller may not use as if it did not exist, feature or not", () => {
        const table = new RoutingTable();
        table.apply(snapshot(speaking("bobs-private", "u2", ["responses"]), speaking("mine", "u1", [])));
        expect(lookup(table)).to.equal("missing_feature");
        expect(lookup(table, { userId: "u3", userName: "carol" })).to.deep.equal({ code: "model_not_served" });
      });

      it("says providers_paused when the caller's providers that declare it are paused, before missing_feature", () => {
        const table = new RoutingTable();
        table.apply(snapshot(speaking("paused", "u1", ["responses"], { paused: true }), speaking("plain", "u1", [])));
        expect(lookup(table)).to.deep.equal({ code: "providers_paused" });
      });
    });

    it("prefers the caller's own providers and falls back to shared ones", () => {
      const table = new RoutingTable();
      table.apply(snapshot(of("mine", "u1"), of("shared", "u2", { sharing: { visibility: Visibility.PUBLIC } })));
      const routed = () => {
        const found = table.lookup(owner, "m", ServiceType.LLM);
        return found.kind === "found" ? found.routes.map((r) => r.provider.id) : [];
      };
      expect(routed()).to.deep.equal(["mine"]);
      table.apply(change(of("mine", "u1", { state: ProviderState.DRAINING })));
      expect(routed()).to.deep.equal(["shared"]);
    });
  });
});
