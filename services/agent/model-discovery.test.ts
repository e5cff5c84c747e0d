import { expect } from "chai";
import { Modality, ServiceType } from "../../gen/infermesh/v1/capabilities_pb.js";
import { ManualClock } from "../../test/support/manual-clock.js";
import { waitFor } from "../../test/support/wait-for.js";
import { createLogger } from "../shared/logger.js";
import { resolveAgentConfig, type UpstreamSettings } from "./agent-config.js";
import { ModelDiscovery } from "./model-discovery.js";
import { type FakeUpstream, replay, startFakeUpstream } from "./test-support/fake-upstream.js";
import { UpstreamClient } from "./upstream-client.js";

const OLLAMA_TAGS = {
  models: [
    {
      name: "llama3.2:latest",
      model: "llama3.2:latest",
      details: { family: "llama", parameter_size: "3.2B", quantization_level: "Q4_K_M" },
    },
  ],
};

describe("model discovery against a fake upstream", () => {
  const log = createLogger("agent-test", "silent");
  let upstream: FakeUpstream;
  let clock: ManualClock;
  let discovery: ModelDiscovery | undefined;
  let clients: UpstreamClient[] = [];
  let changes: number;

  function discover(settings: Partial<UpstreamSettings> = {}): ModelDiscovery {
    const config = resolveAgentConfig({
      registry: "http://127.0.0.1:1",
      apiKey: "k",
      upstreams: [{ type: "llm", url: upstream.url, ...settings }],
    });
    const targets = config.upstreams.map((upstreamConfig) => {
      const client = new UpstreamClient({ url: upstreamConfig.url, apiKey: upstreamConfig.apiKey, connections: 2, timeoutMs: 2_000 });
      clients.push(client);
      return { config: upstreamConfig, client };
    });
    discovery = new ModelDiscovery({
      targets,
      clock,
      log,
      intervalMs: 30_000,
      initialBackoffMs: 1_000,
      onChange: () => changes++,
    });
    return discovery;
  }

  beforeEach(async () => {
    upstream = await startFakeUpstream();
    clock = new ManualClock();
    changes = 0;
  });

  afterEach(async () => {
    discovery?.stop();
    discovery = undefined;
    await Promise.all(clients.map((client) => client.close()));
    clients = [];
    await upstream.close();
  });

  it("reads llama-server's OpenAI list: id, type, default modalities, its serving context and size", async () => {
    const d = discover();
    await d.start();
    expect(upstream.requests.map((r) => `${r.method} ${r.path}`)).to.deep.equal(["GET /v1/models"]);
    const [model] = d.models();
    expect(model).to.deep.include({
      id: "models/tiny-random.gguf",
      serviceType: ServiceType.LLM,
      inputModalities: [Modality.TEXT],
      outputModalities: [Modality.TEXT],
      contextLength: 256,
      engine: "llamacpp",
      parameterCount: 4178240n,
    });
    expect(d.states()[0]?.up).to.equal(true);
    expect(changes).to.equal(1);
  });

  it("applies the upstream's type, expose/hide lists, capability overrides and engine", async () => {
    upstream.handler = (_request, response) => {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ object: "list", data: [{ id: "Whisper-1" }, { id: "whisper-2" }, { id: "hidden" }] }));
    };
    const d = discover({
      type: "stt",
      engine: "other",
      hide: ["HIDDEN"],
      capabilities: { "*": { supportedFeatures: ["timestamps"] }, "whisper-1": { contextLength: 448 } },
    });
    await d.start();
    expect(
      d.models().map((m) => [m.id, m.serviceType, m.inputModalities, m.outputModalities, m.supportedFeatures, m.contextLength, m.engine]),
    ).to.deep.equal([
      ["Whisper-1", ServiceType.STT, [Modality.AUDIO], [Modality.TEXT], ["timestamps"], 448, "other"],
      ["whisper-2", ServiceType.STT, [Modality.AUDIO], [Modality.TEXT], ["timestamps"], 0, "other"],
    ]);
    d.stop();
    const exposed = discover({ expose: ["whisper-2"] });
    await exposed.start();
    expect(exposed.models().map((m) => m.id)).to.deep.equal(["whisper-2"]);
  });

  it("falls back to Ollama's /api/tags when /v1/models is missing", async () => {
    upstream.handler = (request, response) => {
      if (request.path === "/api/tags") {
        response.writeHead(200, { "content-type": "application/json; charset=utf-8" });
        response.end(JSON.stringify(OLLAMA_TAGS));
      } else {
        replay(response, "err_404");
      }
    };
    const d = discover();
    await d.start();
    expect(upstream.requests.map((r) => r.path)).to.deep.equal(["/v1/models", "/api/tags"]);
    expect(d.models()[0]).to.deep.include({
      id: "llama3.2:latest",
      engine: "ollama",
      family: "llama",
      quantization: "Q4_K_M",
      parameterCount: 3_200_000_000n,
    });
  });

  it("does not advertise an upstream that is down, retries it with backoff, and advertises it when it returns", async () => {
    await upstream.close();
    const d = discover();
    await d.start();
    expect(d.states()[0]).to.deep.include({ up: false, models: [] });
    expect(d.states()[0]?.cause).to.match(/connection refused/);
    expect(d.models()).to.deep.equal([]);
    expect(changes).to.equal(0);

    clock.advance(1_000);
    await waitFor("the second attempt", () => d.states()[0]?.cause !== undefined && clock.pendingTimers === 1);
    await upstream.reopen();
    clock.advance(1_999);
    expect(upstream.requests, "backoff doubled to 2 s").to.have.length(0);
    clock.advance(1);
    await waitFor("the upstream to come back", () => d.states()[0]?.up);
    expect(d.models().map((m) => m.id)).to.deep.equal(["models/tiny-random.gguf"]);
    expect(changes).to.equal(1);

    upstream.handler = (_request, response) => {
      response.writeHead(503, { "content-type": "application/json" });
      response.end('{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}');
    };
    clock.advance(30_000);
    await waitFor("the upstream to go down", () => d.states()[0]?.up === false);
    expect(d.models()).to.deep.equal([]);
    expect(d.states()[0]?.cause).to.match(/HTTP 503/);
    expect(changes).to.equal(2);
  });

  it("advertises declared models without asking for a list, while the probe answers; whisper.cpp's 503 means loading", async () => {
    let health = 200;
    upstream.handler = (request, response) => {
      response.writeHead(request.path === "/health" ? health : 404, { "content-type": "application/json" });
      response.end(health === 200 ? '{"status":"ok"}' : '{"status":"loading model"}');
    };
    const d = discover({ type: "stt", kind: "whispercpp", declare: ["whisper-large-v3"] });
    await d.start();
    expect(upstream.requests.map((r) => `${r.method} ${r.path}`)).to.deep.equal(["GET /health"]);
    expect(d.models().map((m) => [m.id, m.serviceType, m.inputModalities, m.engine])).to.deep.equal([
      ["whisper-large-v3", ServiceType.STT, [Modality.AUDIO], "whispercpp"],
    ]);
    health = 503;
    clock.advance(30_000);
    await waitFor("the upstream to go down", () => d.states()[0]?.up === false);
    expect(d.states()[0]?.cause).to.equal(`${upstream.url} is not ready: GET /health answered HTTP 503`);

    d.stop();
    const openAi = discover({ type: "tts", declare: ["kokoro"] });
    await openAi.start();
    expect(upstream.requests.at(-1)?.path, "an OpenAI-compatible upstream is probed on its list, any answer but a 5xx will do").to.equal(
      "/v1/models",
    );
    expect(openAi.models().map((m) => [m.id, m.engine])).to.deep.equal([["kokoro", "other"]]);
  });

  it("lists an AUTOMATIC1111 WebUI's checkpoints by model_name, and says when its API is off", async () => {
    upstream.handler = (request, response) => {
      response.writeHead(request.path === "/sdapi/v1/sd-models" ? 200 : 404, { "content-type": "application/json" });
      response.end(
        JSON.stringify([{ title: "v1-5-pruned-emaonly.safetensors [6ce0161689]", model_name: "v1-5-pruned-emaonly", hash: "6ce0161689" }]),
      );
    };
    const d = discover({ type: "image", kind: "automatic1111", hide: ["nothing"] });
    await d.start();
    expect(upstream.requests.map((r) => r.path)).to.deep.equal(["/sdapi/v1/sd-models"]);
    expect(d.models().map((m) => [m.id, m.serviceType, m.outputModalities, m.engine])).to.deep.equal([
      ["v1-5-pruned-emaonly", ServiceType.IMAGE, [Modality.IMAGE], "automatic1111"],
    ]);
    d.stop();
    upstream.handler = (_request, response) => {
      response.writeHead(404, { "content-type": "application/json" });
      response.end('{"detail":"Not Found"}');
    };
    const off = discover({ type: "image", kind: "automatic1111" });
    await off.start();
    expect(off.states()[0]?.cause).to.equal(
      `${upstream.url} lists no models: GET /sdapi/v1/sd-models answered HTTP 404 (is the WebUI started with --api?)`,
    );
  });

  it("refuses a 200 answer that is not a model list", async () => {
    upstream.handler = (_request, response) => {
      response.writeHead(200, { "content-type": "text/html" });
      response.end("<html>hello</html>");
    };
    const d = discover();
    await d.start();
    expect(d.states()[0]?.up).to.equal(false);
    expect(d.states()[0]?.cause).to.match(/lists no models.*not JSON/);
  });
});
