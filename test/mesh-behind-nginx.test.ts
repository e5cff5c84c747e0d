import { expect } from "chai";
import { Agent as UndiciAgent, fetch as undiciFetch } from "undici";
import { type Agent, createAgent } from "../services/agent/agent.js";
import { resolveAgentConfig } from "../services/agent/agent-config.js";
import { LinkRefused } from "../services/agent/mesh-link.js";
import { createLogger } from "../services/shared/logger.js";
import { readServerTls } from "../services/shared/tls-files.js";
import { createSimulator, type Simulator } from "../services/sim/simulator.js";
import { type GatewayFixture, startGateway } from "./support/gateway-fixture.js";
import { type NginxProxy, skipWithoutNginx, startNginx } from "./support/nginx-fixture.js";
import { type RegistryFixture, startRegistry } from "./support/registry-fixture.js";
import { cleartextStatus, testCertificates } from "./support/test-certificates.js";
import { waitFor } from "./support/wait-for.js";

const AGENTS = 4;

/** startHomeAgent starts an agent that knows only the mesh's URL, serving one simulated model. */
async function startHomeAgent(
  mesh: string,
  apiKey: string,
  model: string,
  caFile?: string,
): Promise<{ agent: Agent; simulator: Simulator }> {
  const simulator = createSimulator({ models: [{ id: model }] });
  const { url } = await simulator.listen();
  const agent = createAgent({
    config: resolveAgentConfig({
      mesh,
      apiKey,
      name: `home-${model}`,
      upstreams: [{ type: "llm", url }],
      shutdownGraceMs: 200,
      ...(caFile ? { caFile } : {}),
    }),
    log: createLogger("agent", "silent"),
    linkRetry: { initialMs: 100, maxMs: 1_000 },
  });
  return { agent, simulator };
}

function chat(baseUrl: string, key: string, model: string, dispatcher?: UndiciAgent) {
  return undiciFetch(`${baseUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
    ...(dispatcher ? { dispatcher } : {}),
  });
}

describe("several gateways behind nginx (TLS, round robin), agents that know only its URL", function () {
  this.timeout(60_000);
  const certificates = testCertificates();
  let registry: RegistryFixture;
  let gateways: GatewayFixture[];
  let nginx: NginxProxy;
  let key: string;
  let home: { agent: Agent; simulator: Simulator }[];
  const trusting = new UndiciAgent({ connect: { ca: certificates.ca } });

  before(function () {
    skipWithoutNginx(this);
  });

  beforeEach(async () => {
    registry = await startRegistry();
    key = await registry.keyFor("alice");
    gateways = [await startGateway(registry.address), await startGateway(registry.address)];
    nginx = await startNginx({
      upstreams: { http: gateways.map((g) => new URL(g.baseUrl).host) },
      tls: { certFile: certificates.certFile, keyFile: certificates.keyFile },
    });
    home = [];
    for (let i = 0; i < AGENTS; i++) {
      const started = await startHomeAgent(`${nginx.url}/v1`, key, `model-${i}`, certificates.caFile);
      await started.agent.listen();
      home.push(started);
    }
  });

  afterEach(async () => {
    for (const { agent, simulator } of home) {
      await agent.close();
      await simulator.close();
    }
    await nginx.stop();
    for (const gateway of gateways) await gateway.stop();
    await registry.stop();
  });

  const everyModelFrom = async (baseUrl: string, dispatcher?: UndiciAgent) =>
    Promise.all(
      home.map(async (_, i) => {
        const response = await chat(baseUrl, key, `model-${i}`, dispatcher);
        return { status: response.status, model: ((await response.json()) as { model?: string }).model };
      }),
    );

  it("lets a client on either gateway, and through nginx, reach every agent", async () => {
    for (const gateway of gateways) {
      await waitFor("every agent in this gateway's table", () => [...gateway.gateway.table.providers()].length === AGENTS);
    }
    // Round robin spread the agents' links over both gateways, so some calls cross from one gateway to the other.
    const linkCounts = gateways.map((g) => g.gateway.links.size);
    expect(linkCounts.reduce((a, b) => a + b)).to.equal(AGENTS);
    expect(Math.min(...linkCounts)).to.be.greaterThan(0);
    for (const gateway of gateways) {
      const answers = await everyModelFrom(gateway.baseUrl);
      expect(answers.map((a) => a.status)).to.deep.equal(Array(AGENTS).fill(200));
      expect(answers.map((a) => a.model)).to.deep.equal(home.map((_, i) => `model-${i}`));
    }
    const viaNginx = await everyModelFrom(nginx.url, trusting);
    expect(viaNginx.map((a) => a.status)).to.deep.equal(Array(AGENTS).fill(200));
  });

  it("loses no agent for longer than its reconnect when one gateway goes", async () => {
    await waitFor(
      "every agent attached",
      () => gateways[1]?.gateway.table.providers() && [...(gateways[1]?.gateway.table.providers() ?? [])].length === AGENTS,
    );
    const [gone, left] = gateways as [GatewayFixture, GatewayFixture];
    const stoppedAt = Date.now();
    await gone.stop();
    await waitFor("every agent attached to the gateway left", () => left.gateway.links.size === AGENTS, 5_000, 20);
    const answers = await waitFor(
      "every agent answering through the gateway left",
      async () => {
        const all = await everyModelFrom(left.baseUrl);
        return all.every((a) => a.status === 200) ? all : undefined;
      },
      5_000,
      50,
    );
    expect(answers).to.have.length(AGENTS);
    expect(Date.now() - stoppedAt).to.be.lessThan(5_000);
    gateways = [left];
  });
});

describe("a gateway serving TLS itself", function () {
  this.timeout(30_000);
  const certificates = testCertificates();
  let registry: RegistryFixture;
  let gateway: GatewayFixture;
  let key: string;

  before(async () => {
    registry = await startRegistry();
    key = await registry.keyFor("alice");
    // Its internal port serves TLS too, under the name its certificate carries, for peers forwarding to it.
    gateway = await startGateway(registry.address, {
      tls: readServerTls(certificates.certFile, certificates.keyFile),
      ca: [certificates.ca.toString()],
      grpcListen: { host: "localhost", port: 0 },
    });
  });

  after(async () => {
    await gateway.stop();
    await registry.stop();
  });

  it("takes agents and OpenAI clients over https on its one port", async () => {
    const port = new URL(gateway.baseUrl).port;
    const { agent, simulator } = await startHomeAgent(`https://localhost:${port}`, key, "tls-model", certificates.caFile);
    try {
      const { providerId } = await agent.listen();
      expect(agent.connected).to.equal(true);
      await waitFor("the agent routable", () => providerId !== undefined && gateway.gateway.table.provider(providerId) !== undefined);
      const response = await chat(`https://localhost:${port}`, key, "tls-model", new UndiciAgent({ connect: { ca: certificates.ca } }));
      expect(response.status).to.equal(200);
      // The same port refuses cleartext: TLS is not optional once configured.
      const plain = await cleartextStatus(`http://127.0.0.1:${port}/health`);
      expect(plain).to.not.equal(200);
    } finally {
      await agent.close();
      await simulator.close();
    }
  });

  it("serves its operator's metrics port over TLS too", async () => {
    const withMetrics = await startGateway(registry.address, {
      tls: readServerTls(certificates.certFile, certificates.keyFile),
      ca: [certificates.ca.toString()],
      metricsListen: { host: "127.0.0.1", port: 0 },
      publicMetrics: false,
    });
    try {
      const port = new URL(withMetrics.metricsUrl as string).port;
      const scraped = await undiciFetch(`https://localhost:${port}/metrics`, {
        dispatcher: new UndiciAgent({ connect: { ca: certificates.ca } }),
      });
      expect(scraped.status).to.equal(200);
      expect(await scraped.text()).to.include("infermesh_gateway_requests_total");
      const plain = await cleartextStatus(`http://127.0.0.1:${port}/metrics`);
      expect(plain).to.not.equal(200);
    } finally {
      await withMetrics.stop();
    }
  });

  it("forwards over TLS to a peer gateway: a call on a second TLS gateway reaches the agent attached to the first", async () => {
    const peer = await startGateway(registry.address, {
      tls: readServerTls(certificates.certFile, certificates.keyFile),
      ca: [certificates.ca.toString()],
      grpcListen: { host: "localhost", port: 0 },
    });
    const port = new URL(gateway.baseUrl).port;
    const { agent, simulator } = await startHomeAgent(`https://localhost:${port}`, key, "far-model", certificates.caFile);
    try {
      const { providerId } = await agent.listen();
      await waitFor(
        "the agent in the peer's table",
        () => providerId !== undefined && peer.gateway.table.provider(providerId) !== undefined,
      );
      expect(peer.gateway.links.size).to.equal(0);
      const response = await chat(
        `https://localhost:${new URL(peer.baseUrl).port}`,
        key,
        "far-model",
        new UndiciAgent({ connect: { ca: certificates.ca } }),
      );
      expect(response.status).to.equal(200);
      expect(((await response.json()) as { model: string }).model).to.equal("far-model");
    } finally {
      await agent.close();
      await simulator.close();
      await peer.stop();
    }
  });

  it("stops an agent that does not trust the gateway's certificate with one clear error, not a hang", async () => {
    const port = new URL(gateway.baseUrl).port;
    const { agent, simulator } = await startHomeAgent(`https://localhost:${port}`, key, "untrusted", certificates.wrongCaFile);
    const startedAt = Date.now();
    try {
      const error = await agent.listen().then(
        () => undefined,
        (failure: unknown) => failure,
      );
      expect(error).to.be.instanceOf(LinkRefused);
      expect((error as Error).message).to.match(/certificate/i);
      expect((error as Error).message).to.include("--ca-file");
      expect(Date.now() - startedAt).to.be.lessThan(5_000);
    } finally {
      await agent.close();
      await simulator.close();
    }
  });
});
