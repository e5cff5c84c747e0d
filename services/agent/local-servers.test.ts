import { expect } from "chai";
import { createSimulator, type Simulator } from "../sim/simulator.js";
import { type DiscoveredServer, discoverLocalServers, unconfiguredServers } from "./local-servers.js";
import { type FakeHandler, type FakeUpstream, replay, startFakeUpstream } from "./test-support/fake-upstream.js";

/** routes answers each listed path with its status and JSON body, and anything else with Go's plain 404, as Ollama does. */
function routes(answers: Readonly<Record<string, readonly [number, unknown]>>): FakeHandler {
  return (request, response) => {
    const answer = answers[request.path];
    if (answer === undefined) {
      response.writeHead(404, { "content-type": "text/plain" });
      response.end("404 page not found");
      return;
    }
    response.writeHead(answer[0], { "content-type": "application/json" });
    response.end(JSON.stringify(answer[1]));
  };
}

const OLLAMA = routes({
  "/v1/models": [200, { object: "list", data: [{ id: "llama3.2:latest", object: "model", created: 1737000000, owned_by: "library" }] }],
  "/api/version": [200, { version: "0.6.2" }],
});

const VLLM_WHISPER = routes({
  "/v1/models": [
    200,
    { object: "list", data: [{ id: "openai/whisper-large-v3", object: "model", owned_by: "vllm", root: "openai/whisper-large-v3" }] },
  ],
});

const LM_STUDIO = routes({
  "/v1/models": [
    200,
    {
      object: "list",
      data: [
        { id: "qwen2-vl-7b-instruct", object: "model", owned_by: "organization_owner" },
        { id: "text-embedding-nomic-embed-text-v1.5", object: "model", owned_by: "organization_owner" },
      ],
    },
  ],
  "/api/v0/models": [
    200,
    {
      object: "list",
      data: [
        { id: "qwen2-vl-7b-instruct", object: "model", type: "vlm", publisher: "mlx-community", compatibility_type: "mlx" },
        { id: "text-embedding-nomic-embed-text-v1.5", object: "model", type: "embeddings", publisher: "nomic-ai" },
      ],
    },
  ],
});

const LOCAL_AI = routes({
  "/v1/models": [
    200,
    {
      object: "list",
      data: ["gpt-4", "whisper-1", "stablediffusion", "tts-1", "text-embedding-ada-002"].map((id) => ({ id, object: "model" })),
    },
  ],
  "/.well-known/localai.json": [200, { version: "v2.28.0", endpoints: { models: "/v1/models" } }],
});

const LOADING_LLAMA: FakeHandler = (_request, response) => {
  response.writeHead(503, { "content-type": "application/json; charset=utf-8" });
  response.end('{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}');
};

const WEB_APP: FakeHandler = (_request, response) => {
  response.writeHead(200, { "content-type": "text/html" });
  response.end("<!doctype html><title>not a model server</title>");
};

describe("discoverLocalServers", () => {
  const fakes: FakeUpstream[] = [];
  let sim: Simulator | undefined;

  async function fake(handler?: FakeHandler): Promise<FakeUpstream> {
    const started = await startFakeUpstream(handler);
    fakes.push(started);
    return started;
  }

  afterEach(async () => {
    await Promise.all(fakes.splice(0).map((started) => started.close()));
    await sim?.close();
    sim = undefined;
  });

  it("finds each kind of local server on the ports it is given, names its engine and sorts its models by type", async () => {
    const llama = await fake();
    const ollama = await fake(OLLAMA);
    const vllm = await fake(VLLM_WHISPER);
    const lmStudio = await fake(LM_STUDIO);
    const localAi = await fake(LOCAL_AI);
    const loading = await fake(LOADING_LLAMA);
    const webApp = await fake(WEB_APP);
    const stopped = await fake();
    await stopped.close();
    const ports = [llama, ollama, vllm, lmStudio, localAi, loading, webApp, stopped].map((server) => server.port);

    const found = await discoverLocalServers({ ports: [...ports, llama.port] });

    const url = (server: FakeUpstream) => `http://127.0.0.1:${server.port}`;
    expect(found).to.deep.equal([
      { type: "llm", url: url(llama), engine: "llamacpp", models: ["models/tiny-random.gguf"] },
      { type: "llm", url: url(ollama), engine: "ollama", models: ["llama3.2:latest"] },
      { type: "stt", url: url(vllm), engine: "vllm", models: ["openai/whisper-large-v3"] },
      {
        type: "llm",
        url: url(lmStudio),
        engine: "lmstudio",
        models: ["qwen2-vl-7b-instruct", "text-embedding-nomic-embed-text-v1.5"],
      },
      { type: "llm", url: url(localAi), engine: "localai", models: ["gpt-4", "text-embedding-ada-002"] },
      { type: "stt", url: url(localAi), engine: "localai", models: ["whisper-1"] },
      { type: "image", url: url(localAi), engine: "localai", models: ["stablediffusion"] },
      { type: "tts", url: url(localAi), engine: "localai", models: ["tts-1"] },
      { type: "llm", url: url(loading), engine: "llamacpp", models: [] },
    ] satisfies DiscoveredServer[]);
    expect(
      llama.requests.map((r) => `${r.method} ${r.path}`),
      "a list that names its engine needs no more questions",
    ).to.deep.equal(["GET /v1/models"]);
    expect(ollama.requests.map((r) => r.path).sort()).to.deep.equal([
      "/.well-known/localai.json",
      "/api/v0/models",
      "/api/version",
      "/props",
      "/v1/models",
    ]);
    expect(
      webApp.requests.map((r) => r.path),
      "a server that is no model server is asked its list only",
    ).to.deep.equal(["/v1/models"]);
  });

  it("tells llama-server by its /props when its list does not name it, and a simulator's models by the types it states", async () => {
    const unnamed = await fake((request, response) => {
      if (request.path === "/v1/models") {
        response.writeHead(200, { "content-type": "application/json" });
        response.end(JSON.stringify({ object: "list", data: [{ id: "whisper-in-the-name", object: "model" }] }));
      } else if (request.path === "/props") replay(response, "props");
      else replay(response, "err_404");
    });
    sim = createSimulator({
      models: [{ id: "sim-llama" }, { id: "sim-whisper", kind: "stt" }, { id: "sim-voice", kind: "tts" }],
    });
    const { url } = await sim.listen();
    const simPort = Number(new URL(url).port);

    expect(await discoverLocalServers({ ports: [unnamed.port, simPort] })).to.deep.equal([
      { type: "llm", url: `http://127.0.0.1:${unnamed.port}`, engine: "llamacpp", models: ["whisper-in-the-name"] },
      { type: "llm", url: `http://127.0.0.1:${simPort}`, engine: "llamacpp", models: ["sim-llama"] },
      { type: "stt", url: `http://127.0.0.1:${simPort}`, engine: "llamacpp", models: ["sim-whisper"] },
      { type: "tts", url: `http://127.0.0.1:${simPort}`, engine: "llamacpp", models: ["sim-voice"] },
    ] satisfies DiscoveredServer[]);
  });

  it("gives up on a server that does not answer within the timeout, and probes only this machine", async () => {
    const silent = await fake(() => {});
    const llama = await fake();
    const started = Date.now();
    const found = await discoverLocalServers({ ports: [silent.port, llama.port], timeoutMs: 200 });
    expect(found.map((server) => server.url)).to.deep.equal([`http://127.0.0.1:${llama.port}`]);
    expect(silent.requests.map((r) => r.path)).to.deep.equal(["/v1/models"]);
    expect(Date.now() - started, "the timeout bounds the wait").to.be.below(5_000);

    let asked: string[] = [];
    const fetch = async (url: string) => {
      asked.push(url);
      throw new Error("connect ECONNREFUSED");
    };
    expect(await discoverLocalServers({ host: "::1", ports: [8080], fetch })).to.deep.equal([]);
    expect(asked).to.deep.equal(["http://[::1]:8080/v1/models"]);
    asked = [];
    expect(await discoverLocalServers({ host: "localhost", fetch })).to.deep.equal([]);
    expect(asked).to.deep.equal([8080, 11434, 8000, 1234].map((port) => `http://localhost:${port}/v1/models`));
    for (const host of ["192.168.1.20", "0.0.0.0", "example.com", "::"]) {
      let refused: unknown;
      try {
        await discoverLocalServers({ host, fetch });
      } catch (error) {
        refused = error;
      }
      expect((refused as Error | undefined)?.message, host).to.equal(
        `discoverLocalServers: ${host} is not a loopback address; only this machine is probed`,
      );
    }
    expect(asked, "nothing asked of another host").to.have.length(4);
  });

  it("leaves out the servers the configuration already names on this machine, whatever their type", () => {
    const found: DiscoveredServer[] = [
      { type: "llm", url: "http://127.0.0.1:8080", engine: "localai", models: ["gpt-4"] },
      { type: "stt", url: "http://127.0.0.1:8080", engine: "localai", models: ["whisper-1"] },
      { type: "llm", url: "http://127.0.0.1:11434", engine: "ollama", models: ["llama3.2:latest"] },
      { type: "llm", url: "http://127.0.0.1:8000", engine: "vllm", models: ["Qwen/Qwen3-8B"] },
    ];
    expect(
      unconfiguredServers(found, [{ url: "http://localhost:8080/v1" }, { url: "http://[::1]:8000" }, { url: "http://192.168.1.9:11434" }]),
    ).to.deep.equal([found[2]]);
    expect(unconfiguredServers(found, [])).to.deep.equal(found);
  });
});
