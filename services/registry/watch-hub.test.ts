import { create } from "@bufbuild/protobuf";
import { expect } from "chai";
import { ChangeCause, type Provider, ProviderSchema } from "../../gen/infermesh/v1/registry_pb.js";
import { WatchHub, type WatchView } from "./watch-hub.js";

const everything: WatchView = (provider) => provider;

function provider(id: string, inFlight = 0, online = true, ownerUserId = "u1"): Provider {
  return create(ProviderSchema, { id, online, ownerUserId, load: { inFlight } });
}

type Event = { kind: "snapshot"; ids: string[] } | { kind: "change"; id: string; inFlight: number; online: boolean };

async function take(stream: AsyncIterator<unknown>, count: number): Promise<Event[]> {
  const events: Event[] = [];
  while (events.length < count) {
    const { value, done } = (await stream.next()) as { value: { event: { case: string; value: unknown } }; done: boolean };
    if (done) break;
    const { event } = value;
    if (event.case === "snapshot") {
      events.push({ kind: "snapshot", ids: (event.value as { providers: Provider[] }).providers.map((p) => p.id) });
    } else {
      const p = (event.value as { provider: Provider }).provider;
      events.push({ kind: "change", id: p.id, inFlight: p.load?.inFlight ?? 0, online: p.online });
    }
  }
  return events;
}

describe("WatchHub", () => {
  it("sends a snapshot, then each change in order", async () => {
    const hub = new WatchHub();
    const controller = new AbortController();
    const stream = hub.watch([provider("a"), provider("b")], everything, controller.signal)[Symbol.asyncIterator]();
    expect(await take(stream, 1)).to.deep.equal([{ kind: "snapshot", ids: ["a", "b"] }]);
    hub.publish({ provider: provider("c", 1), cause: ChangeCause.HEARTBEAT });
    hub.publish({ provider: provider("a", 0, false), cause: ChangeCause.EXPIRED });
    expect(await take(stream, 2)).to.deep.equal([
      { kind: "change", id: "c", inFlight: 1, online: true },
      { kind: "change", id: "a", inFlight: 0, online: false },
    ]);
    controller.abort();
    expect((await stream.next()).done).to.equal(true);
    expect(hub.size).to.equal(0);
  });

  it("coalesces a slow watcher's backlog to the latest state of each provider", async () => {
    const hub = new WatchHub();
    const stream = hub.watch([], everything, new AbortController().signal)[Symbol.asyncIterator]();
    await take(stream, 1);
    for (let i = 1; i <= 1000; i++) {
      hub.publish({ provider: provider("a", i), cause: ChangeCause.HEARTBEAT });
      hub.publish({ provider: provider("b", i), cause: ChangeCause.HEARTBEAT });
    }
    expect(await take(stream, 2)).to.deep.equal([
      { kind: "change", id: "a", inFlight: 1000, online: true },
      { kind: "change", id: "b", inFlight: 1000, online: true },
    ]);
    hub.close();
    expect((await stream.next()).done).to.equal(true);
  });

  it("shows a watcher only what its view admits, and reports a provider leaving the view as offline", async () => {
    const hub = new WatchHub();
    const ownOnly: WatchView = (p) => (p.ownerUserId === "u1" ? p : undefined);
    const stream = hub
      .watch([provider("mine"), provider("theirs", 0, true, "u2")], ownOnly, new AbortController().signal)
      [Symbol.asyncIterator]();
    expect(await take(stream, 1)).to.deep.equal([{ kind: "snapshot", ids: ["mine"] }]);
    hub.publish({ provider: provider("theirs", 5, true, "u2"), cause: ChangeCause.HEARTBEAT });
    hub.publish({ provider: provider("mine", 0, true, "u2"), cause: ChangeCause.HEARTBEAT });
    expect(await take(stream, 1)).to.deep.equal([{ kind: "change", id: "mine", inFlight: 0, online: false }]);
    hub.close();
  });

  it("ends every stream on close, and refuses new ones", async () => {
    const hub = new WatchHub();
    const stream = hub.watch([], everything, new AbortController().signal)[Symbol.asyncIterator]();
    await take(stream, 1);
    hub.close();
    expect((await stream.next()).done).to.equal(true);
    const late = hub.watch([provider("a")], everything, new AbortController().signal)[Symbol.asyncIterator]();
    expect((await late.next()).done).to.equal(true);
  });
});
