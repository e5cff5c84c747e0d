import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import { Agent as UndiciAgent, fetch as undiciFetch } from "undici";
import { type Mesh, type MeshAgent, startMesh } from "./support/mesh-fixture.js";
import { waitFor } from "./support/wait-for.js";

/** EVENT_TEXT makes each firehose event about 16 KiB, so a stream outgrows every window and buffer on the way. */
const EVENT_TEXT = "x".repeat(16 * 1024);

/**
 * StreamingUpstream is a TEST FIXTURE standing in for a local model server: "firehose" streams events as fast as the
 * agent reads them, "drip" one small event at once and then every 5 s until the request goes away, "quick" answers at once. It
 * records, per request, the bytes written and whether the agent stopped reading (backpressure).
 */
interface StreamingUpstream {
  readonly url: string;
  readonly streams: Map<string, { written: number; blocked: boolean; closed: boolean }>;
  open(): number;
  close(): Promise<void>;
}

async function startStreamingUpstream(firehoseEvents: number): Promise<StreamingUpstream> {
  const streams = new Map<string, { written: number; blocked: boolean; closed: boolean }>();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method === "GET" && req.url === "/v1/models") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ object: "list", data: ["firehose", "drip", "quick"].map((id) => ({ id, object: "model" })) }));
      return;
    }
    if (req.method !== "POST" || req.url !== "/v1/chat/completions") {
      // The agent's discovery asks what else the server speaks: this one speaks chat only.
      res
        .writeHead(404, { "content-type": "application/json" })
        .end('{"error":{"message":"Not Found","type":"not_found_error","code":404}}');
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { model: string; user?: string };
      const record = { written: 0, blocked: false, closed: false };
      streams.set(body.user ?? String(streams.size), record);
      res.on("close", () => (record.closed = true));
      if (body.model === "quick") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content: body.user } }] }));
        return;
      }
      res.writeHead(200, { "content-type": "text/event-stream" });
      if (body.model === "drip") {
        const drop = () => res.write('data: {"choices":[{"delta":{"content":"."}}]}\n\n');
        drop();
        const timer = setInterval(drop, 5_000);
        res.on("close", () => clearInterval(timer));
        return;
      }
      let sent = 0;
      const pump = () => {
        while (sent < firehoseEvents) {
          const event = `data: {"choices":[{"index":0,"delta":{"content":"${EVENT_TEXT}"}}]}\n\n`;
          sent++;
          record.written += event.length;
          if (!res.write(event)) {
            record.blocked = true;
            res.once("drain", () => {
              record.blocked = false;
              pump();
            });
            return;
          }
        }
        res.end("data: [DONE]\n\n");
      };
      pump();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    streams,
    open: () => [...streams.values()].filter((s) => !s.closed).length,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe("the agent's link: per-call flow control and cancellation", function () {
  this.timeout(120_000);
  let mesh: Mesh;
  let key: string;
  let upstream: StreamingUpstream;
  let quick: StreamingUpstream;
  let agent: MeshAgent;

  beforeEach(async () => {
    // 0 lifts the per-key limits: this test is about the link, not the gateway's budgets.
    mesh = await startMesh({}, { rateLimits: { inferencePerMinute: 0, concurrentStreams: 0 } });
    key = await mesh.registry.keyFor("alice");
    upstream = await startStreamingUpstream(2_000);
    quick = await startStreamingUpstream(0);
    agent = await mesh.addAgent({
      user: "alice",
      apiKey: key,
      settings: {
        upstreams: [
          { type: "llm", url: upstream.url, expose: ["firehose", "drip"], maxConcurrency: 100, maxQueue: 3_000 },
          { type: "llm", url: quick.url, expose: ["quick"], maxConcurrency: 8 },
        ],
      },
    });
  });

  afterEach(async () => {
    await mesh.stop();
    await upstream.close();
    await quick.close();
  });

  const body = (model: string, user: string, stream = true) =>
    JSON.stringify({ model, user, stream, messages: [{ role: "user", content: "go" }] });

  it("lets one client stop reading a long stream without slowing another stream on the same agent", async () => {
    // The stalled client reads the head, then nothing.
    const stalled = httpRequest(`${mesh.gateway.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    });
    const stalledResponse = new Promise<IncomingMessage>((resolve) => stalled.on("response", resolve));
    stalled.on("error", () => {});
    stalled.end(body("firehose", "stalled"));
    (await stalledResponse).pause();
    await waitFor("the stalled stream held back at its model server", () => upstream.streams.get("stalled")?.blocked, 20_000);

    const started = Date.now();
    const response = await fetch(`${mesh.gateway.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: body("firehose", "reader"),
    });
    const text = await response.text();
    const elapsedMs = Date.now() - started;
    expect(response.status).to.equal(200);
    expect(text.endsWith("data: [DONE]\n\n")).to.equal(true);
    expect(text.split(EVENT_TEXT).length - 1).to.equal(2_000);
    // About 32 MiB went through while the other stream stood still, and nothing buffered it without bound.
    const held = upstream.streams.get("stalled");
    expect(held?.blocked).to.equal(true);
    expect(held?.written).to.be.lessThan(24 * 1024 * 1024);
    expect(elapsedMs).to.be.lessThan(30_000);
    stalled.destroy();
  });

  it("cancels 2,000 calls at once while other calls on the same agent finish untouched", async () => {
    const dispatcher = new UndiciAgent({ connections: 2_100 });
    const controllers = Array.from({ length: 2_000 }, () => new AbortController());
    const drips = controllers.map((controller, i) =>
      undiciFetch(`${mesh.gateway.baseUrl}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: body("drip", `drip-${i}`),
        signal: controller.signal,
        dispatcher,
      })
        .then(async (response) => {
          const reader = (response.body as ReadableStream<Uint8Array>).getReader();
          for (;;) if ((await reader.read()).done) return;
        })
        .catch(() => undefined),
    );
    // 100 of them stream from the model server; the agent queues the rest for a slot.
    await waitFor("2,000 calls at the agent", () => agent.agent.load().inFlight + agent.agent.load().queued === 2_000, 60_000, 50);
    expect(upstream.open()).to.equal(100);
    const linkBefore = mesh.gateway.gateway.table.provider(agent.providerId)?.linkId;

    for (const controller of controllers) controller.abort();
    const others = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const response = await fetch(`${mesh.gateway.baseUrl}/v1/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
          body: body("quick", `quick-${i}`, false),
        });
        return { status: response.status, json: (await response.json()) as { choices: { message: { content: string } }[] } };
      }),
    );
    others.forEach(({ status, json }, i) => {
      expect(status).to.equal(200);
      expect(json.choices[0]?.message.content).to.equal(`quick-${i}`);
    });
    await waitFor(
      "every cancelled call gone from the agent and its model server",
      () => upstream.open() === 0 && agent.agent.load().queued === 0,
      20_000,
      50,
    );
    await Promise.all(drips);
    // The link survived the burst: the same link, and the agent still serves.
    expect(mesh.gateway.gateway.table.provider(agent.providerId)?.linkId).to.equal(linkBefore);
    expect(agent.agent.load().inFlight).to.equal(0);
    const after = await fetch(`${mesh.gateway.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: body("quick", "after", false),
    });
    expect(after.status).to.equal(200);
    await dispatcher.close();
  });
});
