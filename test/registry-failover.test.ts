import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { type Agent, createAgent } from "../services/agent/agent.js";
import { resolveAgentConfig } from "../services/agent/agent-config.js";
import { createGateway, type Gateway } from "../services/gateway/gateway.js";
import { createRegistry, type Registry } from "../services/registry/registry.js";
import type { RegistryStore } from "../services/registry/store/registry-store.js";
import { createSqliteStore } from "../services/registry/store/sqlite-store.js";
import { formatHostPort } from "../services/shared/host-port.js";
import { createLogger } from "../services/shared/logger.js";
import { createSimulator, expectedCompletionText, type Simulator } from "../services/sim/simulator.js";
import { MESH_TOKEN } from "./support/registry-fixture.js";
import { type StallableProxy, startStallableProxy } from "./support/stallable-proxy.js";
import { waitFor } from "./support/wait-for.js";

// A gateway given several registry replicas uses one at a time; when that one dies or freezes, the watch and every
// call move to the next, and no provider goes offline on the way. Both replicas share one store, so keys and accounts
// agree; presence is each replica's own here, and the heartbeats the gateway relays register the agent again on
// whichever replica the gateway uses.

const MESSAGES = [{ role: "user" as const, content: "hi" }];
const ANSWER = expectedCompletionText(MESSAGES, 2);
/** HEARTBEAT_INTERVAL_MS is how often the replicas tell agents to heartbeat: short, so the new replica hears soon. */
const HEARTBEAT_INTERVAL_MS = 200;

/** Replica is one registry replica on a loopback port, over the shared store. */
interface Replica {
  readonly registry: Registry;
  readonly address: string;
}

async function startReplica(store: RegistryStore): Promise<Replica> {
  const registry = createRegistry({
    store,
    meshToken: MESH_TOKEN,
    shutdownGraceMs: 0,
    heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
    listen: { host: "127.0.0.1", port: 0 },
  });
  const { grpc } = await registry.listen();
  return { registry, address: formatHostPort(grpc) };
}

/** Watcher samples whether the gateway's table holds a provider, every 20 ms, until stopped. */
function watchTable(gateway: Gateway, providerId: string): { stop(): number } {
  let lacked = 0;
  const timer = setInterval(() => {
    if (gateway.table.provider(providerId) === undefined) lacked++;
  }, 20);
  return {
    stop() {
      clearInterval(timer);
      if (gateway.table.provider(providerId) === undefined) lacked++;
      return lacked;
    },
  };
}

/** Answer is what a chat request got: its status and the answer's text. */
interface Answer {
  readonly status: number;
  readonly content: string | undefined;
}

/** askForever sends chat requests one after another until stopped, and collects their statuses. */
function askForever(baseUrl: string, apiKey: string): { readonly answers: Answer[]; stop(): Promise<Answer[]> } {
  const answers: Answer[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const response = await fetch(`${baseUrl}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "sim-llama", messages: MESSAGES, max_tokens: 2 }),
      });
      const body = (await response.json()) as { choices?: { message: { content: string } }[] };
      answers.push({ status: response.status, content: body.choices?.[0]?.message.content });
    }
  })();
  return {
    answers,
    async stop() {
      running = false;
      await loop;
      return answers;
    },
  };
}

describe("registry replicas: a gateway moves off one that died or froze", function () {
  this.timeout(60_000);
  let dir: string;
  let store: RegistryStore;
  let replicas: Replica[];
  let proxy: StallableProxy | undefined;
  let gateway: Gateway;
  let baseUrl: string;
  let simulator: Simulator;
  let agent: Agent;
  let providerId: string;
  let apiKey: string;

  /** start runs two replicas, a gateway given both (the first through a stallable proxy, when asked), and an agent. */
  async function start(throughProxy: boolean): Promise<void> {
    dir = mkdtempSync(join(tmpdir(), "infermesh-replicas-"));
    store = createSqliteStore({ path: join(dir, "infermesh.db") });
    replicas = [await startReplica(store), await startReplica(store)];
    proxy = throughProxy ? await startStallableProxy(replicas[0]?.address ?? "") : undefined;
    const first = proxy?.address ?? replicas[0]?.address;
    gateway = createGateway({
      registry: [`http://${first}`, `http://${replicas[1]?.address}`],
      meshToken: MESH_TOKEN,
      log: createLogger("gateway", "silent"),
      listen: { host: "127.0.0.1", port: 0 },
      shutdownGraceMs: 1_000,
    });
    baseUrl = `http://${formatHostPort((await gateway.listen()).http)}`;
    await gateway.registryLink.ready;
    apiKey = (await store.createApiKey("erin")).apiKey;
    simulator = createSimulator({});
    const { url } = await simulator.listen();
    agent = createAgent({
      config: resolveAgentConfig({
        mesh: baseUrl,
        apiKey,
        name: "erin-agent",
        upstreams: [{ type: "llm", url }],
        logLevel: "silent",
        shutdownGraceMs: 500,
      }),
      log: createLogger("agent", "silent"),
    });
    await agent.listen();
    providerId = await waitFor("the agent attached", () => agent.providerId);
    await waitFor("the agent in the gateway's table", () => gateway.table.provider(providerId) !== undefined);
  }

  afterEach(async () => {
    await agent.close();
    await simulator.close();
    await gateway.close();
    await proxy?.close();
    for (const { registry } of replicas) await registry.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("moves the watch and the relayed heartbeats to the next replica when the current one dies, and never loses the provider", async () => {
    await start(false);
    const [one, two] = replicas as [Replica, Replica];
    expect(gateway.registryLink.registryUrl).to.equal(`http://${one.address}`);
    await waitFor("the agent online on replica 1", () => one.registry.table.get(providerId)?.online === true);

    const table = watchTable(gateway, providerId);
    const asking = askForever(baseUrl, apiKey);
    await waitFor("a first answer", () => asking.answers.length > 0);
    const killedAt = Date.now();
    await one.registry.close();
    await waitFor(
      "the gateway's watch on replica 2",
      () => gateway.registryLink.registryUrl === `http://${two.address}` && gateway.registryLink.connected,
      5_000,
    );
    const movedMs = Date.now() - killedAt;
    await waitFor("the agent online on replica 2", () => two.registry.table.get(providerId)?.online === true, 5_000, 20);
    const onlineMs = Date.now() - killedAt;
    const answeredThen = asking.answers.length;
    await waitFor("answers after the move", () => asking.answers.length >= answeredThen + 5);
    const answers = await asking.stop();
    const lacked = table.stop();

    console.log(`      moved off the killed replica in ${movedMs} ms; the agent online on replica 2 after ${onlineMs} ms`);
    expect(lacked, "samples of the gateway's table without the provider").to.equal(0);
    expect(
      answers.filter((answer) => answer.status !== 200 || answer.content !== ANSWER),
      "answers that failed",
    ).to.deep.equal([]);
    expect(await (await fetch(`${baseUrl}/health`)).json()).to.deep.equal({ status: "ok", registry: "connected" });
  });
});
