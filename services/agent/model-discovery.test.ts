import { expect } from "chai";
import { Modality, ServiceType } from "../../gen/infermesh/v1/capabilities_pb.js";
import { ManualClock } from "../../test/support/manual-clock.js";
import { waitFor } from "../../test/support/wait-for.js";
import { createLogger } from "../shared/logger.js";
import { createSimulator, type Simulator } from "../sim/simulator.js";
import { DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_QUEUE, type UpstreamConfig, type UpstreamSettings } from "./agent-config.js";
import { ModelDiscovery } from "./model-discovery.js";
import { type FakeHandler, type FakeUpstream, llamaServer, replay, sampleBody, startFakeUpstream } from "./test-support/fake-upstream.js";
import { UpstreamClient } from "./upstream-client.js";
import { advertisedModels, type ModelListing, parseOpenAiModelList, servingUpstreams } from "./upstream-models.js";

const OLLAMA_TAGS = {
  models: [
    {
      name: "llama3.2:latest",
      model: "llama3.2:latest",
      details: { family: "llama", parameter_size: "3.2B", quantization_level: "Q4_K_M" },
    },
  ],
};

/** upstreamConfig is an upstream as the agent's configuration resolves it, with its defaults. */
function upstreamConfig(settings: UpstreamSettings): UpstreamConfig {
  return {
    type: settings.type,
    kind: settings.kind ?? "openai",
    url: settings.url,
    engine: settings.engine,
    declare: settings.declare,
    expose: settings.expose,
    hide: settings.hide ?? [],
    capabilities: settings.capabilities ?? {},
    maxConcurrency: settings.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY,
    maxQueue: settings.maxQueue ?? DEFAULT_MAX_QUEUE,
    apiKey: settings.apiKey,
  };
}

/** propsWith is llama-server's captured /props answer with some of its fields replaced. */
function propsWith(changes: Readonly<Record<string, unknown>>): string {
  return JSON.stringify({ ...(JSON.parse(sampleBody("props").toString("utf8")) as object), ...changes });
}

/** answerJson answers every request with status and a JSON body. */
function answerJson(status: number, body: unknown): FakeHandler {
  return (_request, response) => {
    response.writeHead(status, { "content-type": "application/json" });
    response.end(typeof body === "string" ? body : JSON.stringify(body));
  };
}

/** resetConnection answers every request by cutting its connection, as a server that dies in the middle does. */
const resetConnection: FakeHandler = (_request, response) => void response.socket?.destroy();

describe("model discovery against a fake upstream", () => {
  const log = createLogger("agent-test", "silent");
  let upstream: FakeUpstream;
  let clock: ManualClock;
  let discovery: ModelDiscovery | undefined;
  let clients: UpstreamClient[] = [];
  let changes: number;

  function discover(settings: Partial<UpstreamSettings> = {}): ModelDiscovery {
    return discoverAll([{ type: "llm", url: upstream.url, ...settings }]);
  }

  function discoverAll(upstreams: readonly UpstreamSettings[], requestTimeoutMs?: number): ModelDiscovery {
    const targets = upstreams.map((settings) => {
      const config = upstreamConfig(settings);
      const client = new UpstreamClient({ url: config.url, apiKey: config.apiKey, connections: 2, timeoutMs: 2_000 });
      clients.push(client);
      return { config, client };
    });
    discovery = new ModelDiscovery({
      targets,
      clock,
      log,
      intervalMs: 30_000,
      initialBackoffMs: 1_000,
      ...(requestTimeoutMs === undefined ? {} : { requestTimeoutMs }),
      onChange: () => changes++,
    });
    return discovery;
  }

  /** nextCheck runs the check due in ms and waits until it has finished, its next one planned. */
  async function nextCheck(ms: number, what: string): Promise<void> {
    const seen = upstream.requests.length;
    clock.advance(ms);
    await waitFor(what, () => upstream.requests.length > seen && clock.pendingTimers === 1);
  }

  /** features lists each advertised model as "TYPE id: features". */
  function features(d: ModelDiscovery): string[] {
    return d.models().map((m) => `${ServiceType[m.serviceType]} ${m.id}: ${m.supportedFeatures.join(" ")}`);
  }

  /** requestsSeen lists the requests the upstream received as "METHOD path body", the body when there is one. */
  function requestsSeen(): string[] {
    return upstream.requests.map((r) => `${r.method} ${r.path}${r.body.length > 0 ? ` ${r.body.toString("utf8")}` : ""}`);
  }

  /** gets lists the paths of the GET requests the upstream received: the listing's, not the probes'. */
  function gets(): string[] {
    return upstream.requests.filter((r) => r.method === "GET").map((r) => r.path);
  }

  /** modelsByType lists each upstream's models as "type id" pairs, in configuration order. */
  function modelsByType(d: ModelDiscovery): string[][] {
    return d.states().map((state) => state.models.map((m) => `${ServiceType[m.serviceType]} ${m.id}`));
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

  it("reads llama-server's OpenAI list, its /props and its probes: id, type, modalities, protocols, its serving context and size", async () => {
    const d = discover();
    await d.start();
    expect(requestsSeen()).to.deep.equal([
      "GET /v1/models",
      "GET /props",
      'POST /v1/embeddings {"model":"models/tiny-random.gguf","input":"infermesh probe"}',
      'POST /v1/rerank {"model":"models/tiny-random.gguf","query":"infermesh","documents":["probe"]}',
      "POST /v1/responses {}",
      "POST /v1/messages {}",
      "POST /v1/messages/count_tokens {}",
    ]);
    const [model] = d.models();
    expect(model).to.deep.include({
      id: "models/tiny-random.gguf",
      serviceType: ServiceType.LLM,
      inputModalities: [Modality.TEXT],
      outputModalities: [Modality.TEXT],
      supportedFeatures: ["responses", "messages", "count_tokens"],
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
    expect(upstream.requests.map((r) => r.path)).to.deep.equal([
      "/v1/models",
      "/api/tags",
      "/api/show",
      "/v1/responses",
      "/v1/messages",
      "/v1/messages/count_tokens",
    ]);
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

  it("takes vision, audio and tool support from llama-server's /props, asked only of a one-model llm server that may be llama.cpp", async () => {
    const models = llamaServer();
    const capable = propsWith({
      modalities: { vision: true, video: false, audio: true },
      chat_template_caps: { supports_tools: true, supports_tool_calls: true },
    });
    upstream.handler = (request, response) =>
      request.path === "/props" ? answerJson(200, capable)(request, response) : models(request, response);
    const d = discover();
    await d.start();
    expect(d.models().map((m) => [m.id, m.inputModalities, m.supportedFeatures, m.engine])).to.deep.equal([
      [
        "models/tiny-random.gguf",
        [Modality.TEXT, Modality.IMAGE, Modality.AUDIO],
        ["vision", "tools", "responses", "messages", "count_tokens"],
        "llamacpp",
      ],
    ]);
    d.stop();

    const overridden = discover({ capabilities: { "*": { inputModalities: [Modality.TEXT], supportedFeatures: [] } } });
    await overridden.start();
    expect(overridden.models().map((m) => [m.inputModalities, m.supportedFeatures])).to.deep.equal([[[Modality.TEXT], []]]);
    overridden.stop();

    // An unknown engine is asked: a llama-server that does not say who owns its model still answers /props.
    upstream.requests.length = 0;
    const unnamed = { object: "list", data: [{ id: "local-model", object: "model" }] };
    upstream.handler = (request, response) =>
      request.path === "/props" ? answerJson(200, capable)(request, response) : answerJson(200, unnamed)(request, response);
    const unknown = discover();
    await unknown.start();
    expect(gets()).to.deep.equal(["/v1/models", "/props"]);
    expect(unknown.models().map((m) => [m.id, m.inputModalities, m.supportedFeatures, m.engine])).to.deep.equal([
      [
        "local-model",
        [Modality.TEXT, Modality.IMAGE, Modality.AUDIO],
        ["vision", "tools", "responses", "messages", "count_tokens"],
        "llamacpp",
      ],
    ]);
    unknown.stop();

    // A server without /props keeps its listing as it is.
    upstream.handler = (request, response) =>
      request.path === "/v1/models" ? answerJson(200, unnamed)(request, response) : replay(response, "err_404");
    const plain = discover();
    await plain.start();
    expect(plain.states()[0]?.up).to.equal(true);
    expect(plain.models().map((m) => [m.id, m.inputModalities, m.supportedFeatures, m.engine])).to.deep.equal([
      ["local-model", [Modality.TEXT], [], "other"],
    ]);
    plain.stop();

    // Not asked: a server that lists several models (llama-server's router mode), an stt upstream, a known other engine.
    upstream.requests.length = 0;
    const two = JSON.parse(sampleBody("models").toString("utf8")) as { data: { id: string }[] };
    two.data.push({ ...(two.data[0] as { id: string }), id: "second.gguf" });
    upstream.handler = answerJson(200, two);
    const router = discover();
    await router.start();
    expect(router.models().map((m) => [m.id, m.inputModalities])).to.deep.equal([
      ["models/tiny-random.gguf", [Modality.TEXT]],
      ["second.gguf", [Modality.TEXT]],
    ]);
    router.stop();
    upstream.handler = answerJson(200, { object: "list", data: [{ id: "whisper-1", object: "model" }] });
    const stt = discover({ type: "stt" });
    await stt.start();
    stt.stop();
    upstream.handler = answerJson(200, { object: "list", data: [{ id: "Qwen/Qwen3-8B", object: "model", owned_by: "vllm" }] });
    const vllm = discover();
    await vllm.start();
    expect(gets()).to.deep.equal(["/v1/models", "/v1/models", "/v1/models"]);
  });

  describe("what the model list leaves unsaid", () => {
    it("advertises a llama-server started with --embeddings as an embedding model, found by asking it to embed", async () => {
      upstream.handler = llamaServer("embeddings");
      const d = discover();
      await d.start();
      expect(requestsSeen(), "its list and props say nothing of it; no protocol is asked of a server with no chat model").to.deep.equal([
        "GET /v1/models",
        "GET /props",
        'POST /v1/embeddings {"model":"tiny-embed","input":"infermesh probe"}',
      ]);
      expect(
        d.models().map((m) => [m.id, m.serviceType, m.inputModalities, m.outputModalities, m.supportedFeatures, m.contextLength, m.engine]),
      ).to.deep.equal([["tiny-embed", ServiceType.EMBEDDING, [Modality.TEXT], [], [], 2048, "llamacpp"]]);
    });

    it("advertises an older llama-server's model as an llm without the protocols it answers 404 for", async () => {
      upstream.handler = llamaServer("older");
      const d = discover();
      await d.start();
      expect(upstream.requests.map((r) => r.path)).to.deep.equal([
        "/v1/models",
        "/props",
        "/v1/embeddings",
        "/v1/rerank",
        "/v1/responses",
        "/v1/messages",
        "/v1/messages/count_tokens",
      ]);
      expect(features(d)).to.deep.equal(["LLM models/tiny-random.gguf: "]);
    });

    it("asks once, until the server lists other models or goes down: the next checks ask for the list and props only", async () => {
      const d = discover();
      await d.start();
      expect(features(d)).to.deep.equal(["LLM models/tiny-random.gguf: responses messages count_tokens"]);

      upstream.requests.length = 0;
      await nextCheck(30_000, "the next check");
      expect(requestsSeen()).to.deep.equal(["GET /v1/models", "GET /props"]);
      expect(features(d)).to.deep.equal(["LLM models/tiny-random.gguf: responses messages count_tokens"]);

      upstream.requests.length = 0;
      upstream.handler = llamaServer("embeddings");
      await nextCheck(30_000, "the check of a server that lists another model");
      expect(upstream.requests.map((r) => r.path)).to.deep.equal(["/v1/models", "/props", "/v1/embeddings"]);
      expect(features(d)).to.deep.equal(["EMBEDDING tiny-embed: "]);

      upstream.handler = answerJson(503, { error: { code: 503, message: "Loading model", type: "unavailable_error" } });
      await nextCheck(30_000, "the check that finds it down");
      expect(d.states()[0]?.up).to.equal(false);
      upstream.requests.length = 0;
      upstream.handler = llamaServer("embeddings");
      await nextCheck(1_000, "the check that finds it back, with the same list");
      expect(
        upstream.requests.map((r) => r.path),
        "what comes back may be another server: it is asked again",
      ).to.deep.equal(["/v1/models", "/props", "/v1/embeddings"]);
      expect(features(d)).to.deep.equal(["EMBEDDING tiny-embed: "]);
    });

    it("asks once for the upstreams of one server checked at once, each advertising the models of its type", async () => {
      upstream.handler = llamaServer("embeddings");
      const d = discoverAll([
        { type: "llm", url: upstream.url },
        { type: "embedding", url: `${upstream.url}/` },
        { type: "stt", url: upstream.url },
      ]);
      await d.start();
      expect(modelsByType(d)).to.deep.equal([[], ["EMBEDDING tiny-embed"], []]);
      expect(upstream.requests.map((r) => `${r.method} ${r.path}`).sort()).to.deep.equal([
        "GET /props",
        "GET /v1/models",
        "GET /v1/models",
        "GET /v1/models",
        "POST /v1/embeddings",
      ]);
    });

    it("in router mode asks only the loaded models, and the protocols once; the others go by their ids", async () => {
      const router = {
        object: "list",
        data: [
          { id: "qwen3-8b", status: { value: "loaded" } },
          { id: "bge-m3", status: { value: "loaded", args: ["--embeddings"] } },
          { id: "nomic-embed-text-v1.5", status: { value: "unloaded" } },
          { id: "gemma-3-4b", status: { value: "loading" } },
          { id: "bge-reranker-v2-m3", status: { value: "unloaded" } },
        ].map((entry) => ({ ...entry, object: "model", owned_by: "llamacpp" })),
      };
      upstream.handler = (request, response) => {
        if (request.path === "/v1/models") return answerJson(200, router)(request, response);
        const { model } = JSON.parse(request.body.toString("utf8") || "{}") as { model?: string };
        if (request.path === "/v1/embeddings" && model === "bge-m3") return replay(response, "embeddings_single");
        llamaServer()(request, response);
      };
      const d = discover();
      await d.start();
      expect(upstream.requests.map((r) => `${r.path} ${JSON.parse(r.body.toString("utf8") || "{}").model ?? ""}`)).to.deep.equal([
        "/v1/models ",
        "/v1/embeddings qwen3-8b",
        "/v1/rerank qwen3-8b",
        "/v1/embeddings bge-m3",
        "/v1/responses ",
        "/v1/messages ",
        "/v1/messages/count_tokens ",
      ]);
      expect(features(d)).to.deep.equal([
        "LLM qwen3-8b: responses messages count_tokens",
        "EMBEDDING bge-m3: ",
        "EMBEDDING nomic-embed-text-v1.5: ",
        "LLM gemma-3-4b: responses messages count_tokens",
        "RERANK bge-reranker-v2-m3: ",
      ]);
    });

    it("asks Ollama's /api/show what each model does, never its embeddings, which it computes with chat models too", async () => {
      const shown: Readonly<Record<string, readonly string[]>> = {
        "llama3.2-vision:latest": ["completion", "tools", "vision"],
        "nomic-embed-text:latest": ["embedding"],
      };
      let listed = Object.keys(shown);
      upstream.handler = (request, response) => {
        const { model } = JSON.parse(request.body.toString("utf8") || "{}") as { model?: string };
        if (request.path === "/v1/models") {
          return answerJson(200, { object: "list", data: listed.map((id) => ({ id, object: "model", owned_by: "library" })) })(
            request,
            response,
          );
        }
        if (request.path === "/api/version") return answerJson(200, { version: "0.12.6" })(request, response);
        if (request.path === "/api/show") return answerJson(200, { details: {}, capabilities: shown[model ?? ""] })(request, response);
        if (request.path === "/v1/embeddings") return replay(response, "embeddings_single");
        if (request.path === "/v1/responses") return answerJson(400, { error: { message: "model is required" } })(request, response);
        response.writeHead(404, { "content-type": "text/plain" });
        response.end("404 page not found");
      };
      const d = discover();
      await d.start();
      expect(requestsSeen()).to.deep.equal([
        "GET /v1/models",
        "GET /api/version",
        'POST /api/show {"model":"llama3.2-vision:latest"}',
        'POST /api/show {"model":"nomic-embed-text:latest"}',
        "POST /v1/responses {}",
        "POST /v1/messages {}",
        "POST /v1/messages/count_tokens {}",
      ]);
      expect(d.models().map((m) => [m.id, m.serviceType, m.inputModalities, m.supportedFeatures, m.engine])).to.deep.equal([
        ["llama3.2-vision:latest", ServiceType.LLM, [Modality.TEXT, Modality.IMAGE], ["vision", "tools", "responses"], "ollama"],
        ["nomic-embed-text:latest", ServiceType.EMBEDDING, [Modality.TEXT], [], "ollama"],
      ]);
      d.stop();

      upstream.requests.length = 0;
      listed = ["llama3.2-vision:latest"];
      const single = discover();
      await single.start();
      expect(
        upstream.requests.map((r) => r.path).filter((path) => path === "/v1/embeddings"),
        "a one-model Ollama is not asked to embed either",
      ).to.deep.equal([]);
      expect(single.models().map((m) => [m.id, m.serviceType])).to.deep.equal([["llama3.2-vision:latest", ServiceType.LLM]]);
    });

    it("makes nothing up from a probe that gets no answer in time, asking again at the next check; a server gone mid-probe is down", async () => {
      const chat = llamaServer();
      upstream.handler = (request, response) => (request.path === "/v1/embeddings" ? undefined : chat(request, response));
      const d = discoverAll([{ type: "llm", url: upstream.url }], 300);
      await d.start();
      expect(
        upstream.requests.map((r) => r.path),
        "no rerank probe after a silent embeddings probe",
      ).to.deep.equal(["/v1/models", "/props", "/v1/embeddings", "/v1/responses", "/v1/messages", "/v1/messages/count_tokens"]);
      expect(features(d), "its type goes by its id").to.deep.equal(["LLM models/tiny-random.gguf: responses messages count_tokens"]);

      upstream.requests.length = 0;
      upstream.handler = (request, response) =>
        request.path === "/v1/embeddings" ? resetConnection(request, response) : chat(request, response);
      await nextCheck(30_000, "the next check");
      expect(upstream.requests.map((r) => r.path)).to.deep.equal(["/v1/models", "/props", "/v1/embeddings"]);
      expect(d.states()[0]?.up).to.equal(false);
      expect(d.states()[0]?.cause).to.match(/closed the connection unexpectedly/);
    });
  });

  it("withdraws a server's models at once when a call cannot reach it, probes it every second, and restores them when it answers", async () => {
    const elsewhere = await startFakeUpstream();
    try {
      const d = discoverAll([
        { type: "llm", url: upstream.url },
        { type: "stt", url: upstream.url, declare: ["whisper-1"] },
        { type: "llm", url: elsewhere.url },
      ]);
      await d.start();
      expect(d.states().map((state) => state.up)).to.deep.equal([true, true, true]);
      const before = changes;

      await upstream.close();
      d.reportUnreachable(0, "cannot connect to the local llm server: connection refused (is the server running?)");
      expect(d.states().map((state) => [state.up, state.cause])).to.deep.equal([
        [false, "cannot connect to the local llm server: connection refused (is the server running?)"],
        [false, "cannot connect to the local llm server: connection refused (is the server running?)"],
        [true, undefined],
      ]);
      expect(modelsByType(d), "only the other server's model is left").to.deep.equal([[], [], ["LLM models/tiny-random.gguf"]]);
      expect(changes, "one change, told at once").to.equal(before + 1);
      d.reportUnreachable(1, "a second call failed too");
      expect(changes, "a server already down is not reported twice").to.equal(before + 1);
      expect(d.states()[1]?.cause).to.match(/connection refused/);

      expect(clock.pendingTimers, "two quick probes and the other server's check").to.equal(3);
      clock.advance(1_000);
      await waitFor("the first probes to fail", () => clock.pendingTimers === 3);
      upstream.requests.length = 0;
      await upstream.reopen();
      clock.advance(1_999);
      expect(upstream.requests, "the probe delay doubled to 2 s").to.have.length(0);
      clock.advance(1);
      await waitFor("the server's upstreams to come back", () => d.states().every((state) => state.up));
      expect(modelsByType(d)).to.deep.equal([["LLM models/tiny-random.gguf"], ["STT whisper-1"], ["LLM models/tiny-random.gguf"]]);
      expect(changes).to.equal(before + 3);
      expect(clock.pendingTimers, "back to the usual interval").to.equal(3);
    } finally {
      await elsewhere.close();
    }
  });

  it("probes an unreachable server at 1, 2, 4, then every 5 s, and ignores a check that began before the report", async () => {
    const models = llamaServer();
    const d = discover();
    await d.start();
    const before = changes;

    let release: (() => void) | undefined;
    upstream.handler = (request, response) => {
      if (request.path === "/props") release = () => replay(response, "props");
      else models(request, response);
    };
    clock.advance(30_000);
    await waitFor("the usual check to ask for /props", () => release);
    d.reportUnreachable(0, "the local llm server closed the connection unexpectedly (ECONNRESET: read ECONNRESET)");
    upstream.handler = resetConnection;
    release?.();

    let seen = upstream.requests.length;
    for (const delayMs of [1_000, 2_000, 4_000, 5_000, 5_000]) {
      clock.advance(delayMs - 1);
      expect(upstream.requests, `no probe before ${delayMs} ms`).to.have.length(seen);
      clock.advance(1);
      await waitFor(`the probe after ${delayMs} ms to fail`, () => upstream.requests.length === seen + 1 && clock.pendingTimers === 1);
      seen++;
    }
    expect(d.states()[0]).to.deep.include({ up: false, models: [] });
    expect(d.states()[0]?.cause).to.match(/closed the connection unexpectedly/);
    expect(changes, "the answer to the check begun before the report was ignored").to.equal(before + 1);

    upstream.handler = models;
    clock.advance(5_000);
    await waitFor("the server to come back", () => d.states()[0]?.up);
    expect(d.models().map((m) => m.id)).to.deep.equal(["models/tiny-random.gguf"]);
    expect(changes).to.equal(before + 2);
  });

  it("advertises each model of a server configured under several types under one type; a server of its own lists all", async () => {
    const localAi = {
      object: "list",
      data: [
        { id: "gpt-4", object: "model" },
        { id: "whisper-1", object: "model" },
        { id: "tts-1", object: "model" },
        { id: "stablediffusion", object: "model" },
        { id: "text-embedding-ada-002", object: "model" },
        { id: "speaches-large", object: "model", task: "automatic-speech-recognition" },
        { id: "kokoro-chat", object: "model", service_type: "llm" },
        { id: "mystery", object: "model" },
      ],
    };
    upstream.handler = answerJson(200, localAi);
    const own = await startFakeUpstream(answerJson(200, localAi));
    try {
      const d = discoverAll([
        { type: "llm", url: upstream.url },
        { type: "stt", url: `${upstream.url}/` },
        { type: "stt", url: own.url },
      ]);
      await d.start();
      expect(modelsByType(d), "the llm upstream advertises the embedding model as one").to.deep.equal([
        ["LLM gpt-4", "EMBEDDING text-embedding-ada-002", "LLM kokoro-chat", "LLM mystery"],
        ["STT whisper-1", "STT speaches-large"],
        localAi.data.map((model) => `STT ${model.id}`),
      ]);
      d.stop();

      const claimed = discoverAll([
        { type: "llm", url: upstream.url, expose: ["WHISPER-1", "gpt-4"] },
        { type: "stt", url: upstream.url, declare: ["gpt-4"] },
        { type: "tts", url: upstream.url },
      ]);
      await claimed.start();
      expect(modelsByType(claimed), "a model an upstream exposes or declares is that upstream's").to.deep.equal([
        ["LLM gpt-4", "LLM whisper-1"],
        ["STT gpt-4"],
        ["TTS tts-1"],
      ]);
    } finally {
      await own.close();
    }
  });
});

describe("model discovery of a simulator serving several kinds", () => {
  let sim: Simulator | undefined;
  const clients: UpstreamClient[] = [];

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    await sim?.close();
  });

  it("advertises each model under the kind the simulator states for it, behind one upstream per kind on one URL", async () => {
    sim = createSimulator({
      models: [
        { id: "sim-llama" },
        { id: "sim-whisper", kind: "stt" },
        { id: "sim-diffusion", kind: "image" },
        { id: "sim-voice", kind: "tts" },
        { id: "voice-chat", kind: "llm" },
      ],
    });
    const { url } = await sim.listen();
    const targets = (["tts", "image", "stt", "llm"] as const).map((type) => {
      const client = new UpstreamClient({ url, apiKey: undefined, connections: 1, timeoutMs: 2_000 });
      clients.push(client);
      return { config: upstreamConfig({ type, url }), client };
    });
    const discovery = new ModelDiscovery({
      targets,
      clock: new ManualClock(),
      log: createLogger("agent-test", "silent"),
      intervalMs: 30_000,
      onChange: () => {},
    });
    await discovery.start();
    discovery.stop();
    expect(
      discovery.states().map((state) => state.models.map((m) => [m.id, m.serviceType, m.inputModalities, m.outputModalities])),
    ).to.deep.equal([
      [["sim-voice", ServiceType.TTS, [Modality.TEXT], [Modality.AUDIO]]],
      [["sim-diffusion", ServiceType.IMAGE, [Modality.TEXT, Modality.IMAGE], [Modality.IMAGE]]],
      [["sim-whisper", ServiceType.STT, [Modality.AUDIO], [Modality.TEXT]]],
      [
        ["sim-llama", ServiceType.LLM, [Modality.TEXT], [Modality.TEXT]],
        ["voice-chat", ServiceType.LLM, [Modality.TEXT], [Modality.TEXT]],
      ],
    ]);
  });
});

describe("servingUpstreams", () => {
  const url = "http://127.0.0.1:8080";
  const llm = upstreamConfig({ type: "llm", url });
  const stt = upstreamConfig({ type: "stt", url });
  const image = upstreamConfig({ type: "image", url });
  const tts = upstreamConfig({ type: "tts", url });
  const embedding = upstreamConfig({ type: "embedding", url });
  const rerank = upstreamConfig({ type: "rerank", url });

  it("picks the upstream a model's stated type names, else the one its id suggests, else the llm one or the first; none for a type not configured", () => {
    const picked = (model: Parameters<typeof servingUpstreams>[0], upstreams = [stt, llm]) =>
      servingUpstreams(model, upstreams).map((upstream) => upstream.type);
    expect(picked({ id: "whisper-large-v3", serviceType: "llm" })).to.deep.equal(["llm"]);
    expect(picked({ id: "faster-whisper-large-v3" })).to.deep.equal(["stt"]);
    expect(picked({ id: "parakeet-tdt-0.6b" })).to.deep.equal(["stt"]);
    expect(picked({ id: "nomic-embed-text" })).to.deep.equal(["llm"], "an embedding model without an embedding upstream: the llm one");
    expect(picked({ id: "bge-reranker-v2-m3" }, [stt, llm])).to.deep.equal(["llm"]);
    expect(picked({ id: "nomic-embed-text" }, [llm, embedding, rerank])).to.deep.equal(["embedding"]);
    expect(picked({ id: "bge-reranker-v2-m3" }, [llm, embedding, rerank])).to.deep.equal(["rerank"]);
    expect(picked({ id: "qwen3-embedding-8b", serviceType: "embedding" }, [stt, tts])).to.deep.equal([], "no llm upstream either");
    expect(picked({ id: "qwen3:8b" })).to.deep.equal(["llm"], "a model that says nothing is most likely a chat model");
    expect(picked({ id: "qwen3:8b" }, [llm, stt])).to.deep.equal(["llm"]);
    expect(picked({ id: "qwen3:8b" }, [tts, stt])).to.deep.equal(["tts"], "the first configured, without an llm one");
    expect(picked({ id: "kokoro-82m" })).to.deep.equal([], "a speech model is no chat model");
    expect(picked({ id: "gpt-4o-mini-tts" }, [llm, tts])).to.deep.equal(["tts"]);
    expect(picked({ id: "xtts_v2" }, [llm, tts])).to.deep.equal(["tts"]);
    expect(picked({ id: "mattsmith-7b" }, [llm, tts])).to.deep.equal(["llm"]);
    expect(picked({ id: "sdxl-turbo" }, [llm, image])).to.deep.equal(["image"]);
    expect(picked({ id: "sd-1.5" }, [llm, image])).to.deep.equal(["image"]);
    expect(picked({ id: "flux.1-schnell" }, [llm, image])).to.deep.equal(["image"]);
    expect(picked({ id: "mistral-small", serviceType: "image" }, [llm, image])).to.deep.equal(["image"]);
    expect(picked({ id: "gpt-4-vision-preview" }, [image, llm])).to.deep.equal(["llm"], "its id says nothing: the llm one");
    expect(picked({ id: "llama-3-sdk-assistant" }, [llm, image]), "short tokens stand alone").to.deep.equal(["llm"]);
  });

  it("leaves a shared server's declared upstream as declared, and an upstream of its own as it is", () => {
    const declared = upstreamConfig({ type: "stt", url, declare: ["gpt-4"] });
    const listing = { models: [{ id: "gpt-4" }, { id: "whisper-1" }], engine: undefined };
    expect(advertisedModels(listing, declared, [llm, declared]).map((m) => m.id)).to.deep.equal(["gpt-4", "whisper-1"]);
    expect(advertisedModels(listing, llm, [llm, declared]).map((m) => m.id)).to.deep.equal([]);
    expect(advertisedModels(listing, stt).map((m) => m.id)).to.deep.equal(["gpt-4", "whisper-1"]);
  });
});

describe("advertisedModels", () => {
  const url = "http://127.0.0.1:8080";
  const typed = (listing: ModelListing, settings: UpstreamSettings) =>
    advertisedModels(listing, upstreamConfig(settings)).map(
      (m) =>
        `${ServiceType[m.serviceType]} ${m.id} in:${m.inputModalities.map((i) => Modality[i]).join(",")} out:${m.outputModalities.map((o) => Modality[o]).join(",")}`,
    );

  it("gives an llm upstream's embedding and rerank models their own type, as stated, else as the id says; other upstreams theirs", () => {
    const listing = parseOpenAiModelList({
      object: "list",
      data: [
        { id: "text-embedding-nomic-embed-text-v1.5", type: "embeddings" },
        { id: "gte-large", task: "feature-extraction" },
        { id: "all-minilm-l6", task: "sentence-similarity" },
        { id: "ms-marco-minilm", task: "text-ranking" },
        { id: "distilbert-sst2", task: "text-classification" },
        { id: "jina-reranker-v2" },
        { id: "qwen3-embedding-0.6b" },
        { id: "qwen3-embedding-chat", service_type: "llm" },
        { id: "qwen3-8b", type: "vlm" },
      ],
    }) as ModelListing;
    expect(typed(listing, { type: "llm", url })).to.deep.equal([
      "EMBEDDING text-embedding-nomic-embed-text-v1.5 in:TEXT out:",
      "EMBEDDING gte-large in:TEXT out:",
      "EMBEDDING all-minilm-l6 in:TEXT out:",
      "RERANK ms-marco-minilm in:TEXT out:",
      "LLM distilbert-sst2 in:TEXT out:TEXT",
      "RERANK jina-reranker-v2 in:TEXT out:",
      "EMBEDDING qwen3-embedding-0.6b in:TEXT out:",
      "LLM qwen3-embedding-chat in:TEXT out:TEXT",
      "LLM qwen3-8b in:TEXT out:TEXT",
    ]);
    const embedder = { models: [{ id: "e5-large", tools: true, protocols: ["responses" as const] }], engine: "vllm" };
    expect(typed(embedder, { type: "embedding", url }), "--upstream embedding=URL declares the type").to.deep.equal([
      "EMBEDDING e5-large in:TEXT out:",
    ]);
    expect(
      advertisedModels(embedder, upstreamConfig({ type: "embedding", url }))[0]?.supportedFeatures,
      "chat features are an llm's",
    ).to.deep.equal([]);
    expect(typed({ models: [{ id: "bge-reranker-v2-m3" }, { id: "gpt-4" }], engine: undefined }, { type: "rerank", url })).to.deep.equal([
      "RERANK bge-reranker-v2-m3 in:TEXT out:",
      "RERANK gpt-4 in:TEXT out:",
    ]);
    expect(
      typed({ models: [{ id: "nomic-embed-text", serviceType: "embedding" }], engine: undefined }, { type: "stt", url }),
    ).to.deep.equal(["STT nomic-embed-text in:AUDIO out:TEXT"], "an stt server of its own lists all its models as stt");
  });

  it("reads llama-server's router status into loaded, and gives an llm the protocols its server speaks, overrides winning", () => {
    const listing = parseOpenAiModelList({
      data: [
        { id: "a", status: { value: "loaded" } },
        { id: "b", status: { value: "unloaded" } },
        { id: "c", status: "LOADED" },
        { id: "d" },
      ],
    });
    expect(listing?.models.map((m) => [m.id, m.loaded])).to.deep.equal([
      ["a", true],
      ["b", false],
      ["c", true],
      ["d", undefined],
    ]);
    const spoken = { models: [{ id: "qwen3", tools: true, protocols: ["responses" as const, "messages" as const] }], engine: undefined };
    expect(advertisedModels(spoken, upstreamConfig({ type: "llm", url }))[0]?.supportedFeatures).to.deep.equal([
      "tools",
      "responses",
      "messages",
    ]);
    const overridden = upstreamConfig({ type: "llm", url, capabilities: { qwen3: { supportedFeatures: ["tools"] } } });
    expect(advertisedModels(spoken, overridden)[0]?.supportedFeatures).to.deep.equal(["tools"]);
  });
});
