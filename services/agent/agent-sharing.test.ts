import { expect } from "chai";
import { type HeartbeatRequest, Visibility } from "../../gen/infermesh/v1/registry_pb.js";
import { waitFor } from "../../test/support/wait-for.js";
import { createLogger } from "../shared/logger.js";
import { createSimulator, type Simulator } from "../sim/simulator.js";
import { createAgent } from "./agent.js";
import { type AgentSettings, parseShare, resolveAgentConfig } from "./agent-config.js";
import { type AgentFixture, startAgentFixture } from "./test-support/agent-fixture.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("agent heartbeats: its sharing and its run's instance id", () => {
  let simulator: Simulator;
  let fixture: AgentFixture | undefined;
  const cleanups: (() => Promise<void>)[] = [];

  beforeEach(async () => {
    simulator = createSimulator({ models: [{ id: "sim-llama" }], timeToFirstTokenMs: 0 });
    await simulator.listen();
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await fixture?.close();
    fixture = undefined;
  });

  /** startAgent starts an agent of the simulator with settings, attached through a gateway to a registry. */
  async function startAgent(settings: Omit<AgentSettings, "mesh" | "apiKey" | "upstreams">): Promise<AgentFixture> {
    fixture = await startAgentFixture({
      upstreams: [{ type: "llm", url: simulator.url as string }],
      servers: [simulator],
      settings,
      agent: { linkRetry: { initialMs: 20, maxMs: 100 } },
    });
    return fixture;
  }

  /** heartbeatsOf records the heartbeats the registry receives from now on, as the gateway relayed them, by provider id. */
  function heartbeatsOf(started: AgentFixture): (providerId: string) => HeartbeatRequest[] {
    const table = started.registry.server.table;
    const heard: HeartbeatRequest[] = [];
    const record = table.heartbeat.bind(table);
    table.heartbeat = (owner, request) => {
      heard.push(request);
      return record(owner, request);
    };
    return (providerId) => heard.filter((request) => request.providerId === providerId);
  }

  /** startAnother starts another agent of the simulator with the fixture's key, and settings. */
  async function startAnother(started: AgentFixture, settings: Omit<AgentSettings, "mesh" | "apiKey" | "upstreams">): Promise<string> {
    const config = resolveAgentConfig({
      mesh: started.gateway.baseUrl,
      apiKey: started.apiKey,
      shutdownGraceMs: 0,
      ...settings,
      upstreams: [{ type: "llm", url: simulator.url as string }],
    });
    const agent = createAgent({ config, log: createLogger("agent-test", "silent") });
    cleanups.push(() => agent.close());
    return (await agent.listen()).providerId as string;
  }

  it("sends the sharing it was started with, one instance id in every heartbeat, the same after it attaches again, and its link's number", async () => {
    const started = await startAgent({ share: parseShare("--share", "users:bob,carol,bob") });
    const heard = heartbeatsOf(started);
    await waitFor("a heartbeat", () => heard(started.providerId).length > 0);
    const firstLink = heard(started.providerId)[0]?.linkId;
    await started.restartGateway();
    await waitFor("a heartbeat through the new gateway", () => heard(started.providerId).some((r) => r.linkId !== firstLink), 5_000);
    const heartbeats = heard(started.providerId);
    const instanceId = heartbeats[0]?.instanceId;
    expect(instanceId).to.match(UUID);
    expect(heartbeats.map((request) => request.instanceId)).to.deep.equal(heartbeats.map(() => instanceId));
    // Each link numbers its heartbeats (a dial that failed takes a number too), the newer link higher, so that an old link's late heartbeat can be told apart.
    const sequences = new Set(
      heartbeats.map(
        (request) => `${request.linkId} ${request.linkId === firstLink ? request.linkSequence === 1 : request.linkSequence > 1}`,
      ),
    );
    expect([...sequences].map((entry) => entry.split(" ")[1])).to.deep.equal(["true", "true"]);
    for (const request of heartbeats) {
      expect(request.sharing, "every heartbeat says it").to.deep.include({ visibility: Visibility.USERS, allowedUsers: ["bob", "carol"] });
    }
  });

  it("sends public and private as they are", async () => {
    const started = await startAgent({ share: parseShare("--share", "public") });
    const heard = heartbeatsOf(started);
    const privateId = await startAnother(started, { name: "private box", share: parseShare("--share", "private") });
    await waitFor("heartbeats of both", () => heard(started.providerId).length > 0 && heard(privateId).length > 0);
    expect(heard(started.providerId)[0]?.sharing).to.deep.include({ visibility: Visibility.PUBLIC, allowedUsers: [] });
    expect(heard(privateId)[0]?.sharing).to.deep.include({ visibility: Visibility.PRIVATE, allowedUsers: [] });
  });

  it("sends no sharing when started without one, so that its owner's choice stays; another run has another instance id", async () => {
    const started = await startAgent({ name: "box" });
    const heard = heartbeatsOf(started);
    await waitFor("a heartbeat", () => heard(started.providerId).length > 0);
    expect(heard(started.providerId)[0]?.sharing).to.equal(undefined);
    const first = heard(started.providerId)[0]?.instanceId as string;
    expect(first).to.match(UUID);

    await started.agent.close();
    const before = heard(started.providerId).length;
    const providerId = await startAnother(started, { name: "box" });
    expect(providerId, "the same machine again").to.equal(started.providerId);
    await waitFor("a heartbeat of the new run", () => heard(providerId).length > before);
    const next = heard(providerId).at(-1)?.instanceId;
    expect(next).to.match(UUID);
    expect(next, "a new run is a new instance").not.to.equal(first);
  });
});
