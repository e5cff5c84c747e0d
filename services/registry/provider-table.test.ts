import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { expect } from "chai";
import { ServiceType } from "../../gen/infermesh/v1/capabilities_pb.js";
import {
  ChangeCause,
  type HeartbeatRequest,
  HeartbeatRequestSchema,
  LoadSchema,
  ProviderSchema,
  ProviderState,
  SharingSchema,
  Visibility,
} from "../../gen/infermesh/v1/registry_pb.js";
import { ManualClock } from "../../test/support/manual-clock.js";
import { canSee } from "../shared/visibility.js";
import { sharingData } from "./provider-settings.js";
import { type ProviderChangeEvent, ProviderTable } from "./provider-table.js";

const alice = { userId: "u-alice", userName: "alice", keyId: "k1" };
const TTL_MS = 30_000;

function heartbeat(overrides: Omit<MessageInitShape<typeof HeartbeatRequestSchema>, "$typeName"> = {}): HeartbeatRequest {
  return create(HeartbeatRequestSchema, {
    providerId: "p1",
    endpoint: "10.0.0.5:7100",
    gatewayId: "gateway-1",
    linkId: "link-1",
    models: [{ id: "llama", serviceType: ServiceType.LLM }],
    load: { inFlight: 0, maxConcurrency: 4 },
    ...overrides,
  });
}

describe("ProviderTable", () => {
  let clock: ManualClock;
  let changes: ProviderChangeEvent[];
  let table: ProviderTable;

  beforeEach(() => {
    clock = new ManualClock();
    changes = [];
    table = new ProviderTable({ clock, ttlMs: TTL_MS, offlineRetentionMs: 60_000, onChange: (e) => changes.push(e) });
  });

  afterEach(() => table.close());

  it("registers a provider on its first heartbeat, online and accepting, owned by the caller", () => {
    const { provider, changed } = table.heartbeat(alice, heartbeat());
    expect(changed).to.equal(true);
    expect(provider).to.include({ id: "p1", name: "p1", ownerUserId: "u-alice", ownerUserName: "alice", online: true });
    expect(provider.state).to.equal(ProviderState.ACCEPTING);
    expect(provider.sharing?.visibility).to.equal(Visibility.PRIVATE);
    expect(changes.map((c) => c.cause)).to.deep.equal([ChangeCause.HEARTBEAT]);
    expect(table.onlineCount).to.equal(1);
  });

  it("mirrors another replica's changes to its watchers, marked replicated, and leaves expiry to the shared sweep", () => {
    const replica = new ProviderTable({ clock, ttlMs: TTL_MS, expires: false, onChange: (e) => changes.push(e) });
    try {
      const { provider } = replica.heartbeat(alice, heartbeat());
      clock.advance(10 * TTL_MS);
      expect(replica.get("p1")?.online, "a replica's own clock never expires a provider").to.equal(true);
      const busier = create(ProviderSchema, { ...provider, load: create(LoadSchema, { inFlight: 3, maxConcurrency: 4 }) });
      replica.mirror(busier, ChangeCause.HEARTBEAT);
      replica.mirror(create(ProviderSchema, { ...busier, lastHeartbeatTime: timestampFromMs(99_000) }), ChangeCause.HEARTBEAT);
      // The next heartbeat here is compared whole with the mirrored state, not taken as the steady one it last saw.
      expect(replica.heartbeat(alice, heartbeat()).changed).to.equal(true);
      replica.mirror(create(ProviderSchema, { id: "p1", online: false }), ChangeCause.EXPIRED);
      replica.mirror(create(ProviderSchema, { ...provider, id: "p2" }), ChangeCause.HEARTBEAT);
      expect(changes.map((c) => [c.provider.id, c.cause, c.provider.online, c.replicated ?? false])).to.deep.equal([
        ["p1", ChangeCause.HEARTBEAT, true, false],
        ["p1", ChangeCause.HEARTBEAT, true, true],
        ["p1", ChangeCause.HEARTBEAT, true, false],
        ["p1", ChangeCause.EXPIRED, false, true],
        ["p2", ChangeCause.HEARTBEAT, true, true],
      ]);
      expect(replica.onlineCount).to.equal(1);
      expect(replica.expire("p2")).to.equal(true);
      expect(replica.expire("p2")).to.equal(false);
      expect(changes.at(-1)).to.include({ cause: ChangeCause.EXPIRED });
      expect(changes.at(-1)?.replicated).to.equal(undefined);
    } finally {
      replica.close();
    }
  });

  it("reports a steady heartbeat as no change, and a load, model or state change as one", () => {
    table.heartbeat(alice, heartbeat());
    clock.advance(10_000);
    expect(table.heartbeat(alice, heartbeat()).changed).to.equal(false);
    expect(table.heartbeat(alice, heartbeat({ load: { inFlight: 2, maxConcurrency: 4 } })).changed).to.equal(true);
    const twoModels = [
      { id: "llama", serviceType: ServiceType.LLM },
      { id: "whisper", serviceType: ServiceType.STT },
    ];
    expect(table.heartbeat(alice, heartbeat({ load: { inFlight: 2, maxConcurrency: 4 }, models: twoModels })).changed).to.equal(true);
    const draining = heartbeat({ load: { inFlight: 2, maxConcurrency: 4 }, models: twoModels, state: ProviderState.DRAINING });
    expect(table.heartbeat(alice, draining).changed).to.equal(true);
    expect(changes).to.have.length(4);
    expect(table.get("p1")?.state).to.equal(ProviderState.DRAINING);
  });

  it("takes a provider offline exactly when the TTL passes without a heartbeat, and tells watchers then", () => {
    table.heartbeat(alice, heartbeat());
    clock.advance(TTL_MS - 1);
    expect(table.get("p1")?.online).to.equal(true);
    expect(changes).to.have.length(1);
    clock.advance(1);
    expect(table.get("p1")?.online).to.equal(false);
    expect(changes.at(-1)?.cause).to.equal(ChangeCause.EXPIRED);
    expect(changes.at(-1)?.provider.online).to.equal(false);
    expect(table.onlineCount).to.equal(0);
    expect(table.providers()).to.deep.equal([]);
    expect(table.providers(true).map((p) => p.id)).to.deep.equal(["p1"]);
  });

  it("restarts the TTL on every heartbeat", () => {
    table.heartbeat(alice, heartbeat());
    for (let i = 0; i < 5; i++) {
      clock.advance(TTL_MS - 1_000);
      table.heartbeat(alice, heartbeat());
    }
    expect(table.get("p1")?.online).to.equal(true);
    expect(changes).to.have.length(1);
  });

  it("deregisters at once, and a later heartbeat brings the provider back", () => {
    table.heartbeat(alice, heartbeat());
    expect(table.deregister("p1")).to.equal(true);
    expect(changes.at(-1)?.cause).to.equal(ChangeCause.DEREGISTERED);
    expect(table.get("p1")?.online).to.equal(false);
    expect(table.deregister("p1")).to.equal(false);
    clock.advance(TTL_MS * 2);
    expect(changes).to.have.length(2);
    table.heartbeat(alice, heartbeat());
    expect(table.get("p1")?.online).to.equal(true);
    expect(table.onlineCount).to.equal(1);
  });

  it("records where the agent is attached, and counts its attaching elsewhere as a change", () => {
    const { provider } = table.heartbeat(alice, heartbeat());
    expect(provider).to.include({ endpoint: "10.0.0.5:7100", gatewayId: "gateway-1", linkId: "link-1" });
    const moved = table.heartbeat(alice, heartbeat({ endpoint: "10.0.0.6:7100", gatewayId: "gateway-2", linkId: "link-2" }));
    expect(moved.changed).to.equal(true);
    expect(table.get("p1")).to.include({ endpoint: "10.0.0.6:7100", gatewayId: "gateway-2", linkId: "link-2" });
  });

  it("deregisters for a link only while the provider is still attached on that link", () => {
    table.heartbeat(alice, heartbeat());
    table.heartbeat(alice, heartbeat({ gatewayId: "gateway-2", linkId: "link-2" }));
    expect(table.deregister("p1", "link-1"), "a link the agent has left").to.equal(false);
    expect(table.get("p1")?.online).to.equal(true);
    expect(table.deregister("p1", "link-2")).to.equal(true);
    expect(table.get("p1")?.online).to.equal(false);
    expect(changes.map((c) => c.cause)).to.deep.equal([ChangeCause.HEARTBEAT, ChangeCause.HEARTBEAT, ChangeCause.DEREGISTERED]);
  });

  it("forgets an offline provider after the retention period", () => {
    table.heartbeat(alice, heartbeat());
    table.deregister("p1");
    clock.advance(59_999);
    expect(table.providers(true)).to.have.length(1);
    clock.advance(1);
    expect(table.providers(true)).to.have.length(0);
  });

  it("does not blame providers for its own freeze: a late expiry timer grants a third of a TTL first", () => {
    // A clock whose timers fire only when told, at whatever time it is then: as after a SIGSTOP/SIGCONT.
    let now = 0;
    const timers: { fn: () => void; cancelled: boolean }[] = [];
    const frozen = {
      now: () => now,
      setTimer: (fn: () => void) => {
        const timer = { fn, cancelled: false };
        timers.push(timer);
        return {
          cancel: () => {
            timer.cancelled = true;
          },
        };
      },
    };
    const events: ProviderChangeEvent[] = [];
    const late = new ProviderTable({ clock: frozen, ttlMs: TTL_MS, onChange: (e) => events.push(e) });
    late.heartbeat(alice, heartbeat());
    now = TTL_MS * 3;
    for (const timer of timers.filter((t) => !t.cancelled)) timer.fn();
    expect(late.get("p1")?.online, "a heartbeat may be waiting unread").to.equal(true);
    late.heartbeat(alice, heartbeat());
    now += TTL_MS;
    for (const timer of timers.filter((t) => !t.cancelled)) timer.fn();
    expect(late.get("p1")?.online, "an on-time expiry still expires").to.equal(false);
    expect(events.at(-1)?.cause).to.equal(ChangeCause.EXPIRED);
    late.close();
  });

  it("lists online providers ordered by id", () => {
    for (const id of ["c", "a", "b"]) table.heartbeat(alice, heartbeat({ providerId: id }));
    expect(table.providers().map((p) => p.id)).to.deep.equal(["a", "b", "c"]);
  });
});

describe("canSee", () => {
  const bob = { userId: "u-bob", userName: "bob" };
  const owned = (visibility: Visibility, allowedUsers: string[] = []) =>
    new ProviderTable({ clock: new ManualClock(), ttlMs: 1, onChange: () => {} }).heartbeat(alice, heartbeat(), {
      paused: false,
      sharing: sharingData(create(SharingSchema, { visibility, allowedUsers })),
      sharingInstanceId: "",
    }).provider;

  it("lets a user see their own providers whatever the sharing", () => {
    expect(canSee(alice, owned(Visibility.PRIVATE))).to.equal(true);
  });

  it("hides private providers from other users, and shows shared ones to whom they are shared", () => {
    expect(canSee(bob, owned(Visibility.PRIVATE))).to.equal(false);
    expect(canSee(bob, owned(Visibility.UNSPECIFIED))).to.equal(false);
    expect(canSee(bob, owned(Visibility.USERS, ["carol"]))).to.equal(false);
    expect(canSee(bob, owned(Visibility.USERS, ["carol", "bob"]))).to.equal(true);
    expect(canSee(bob, owned(Visibility.PUBLIC))).to.equal(true);
  });
});
