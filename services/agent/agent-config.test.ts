import { expect } from "chai";
import { Modality } from "../../gen/infermesh/v1/capabilities_pb.js";
import { UsageError } from "../../src/cli/flags.js";
import {
  DEFAULT_MAX_CONCURRENCY,
  DEFAULT_MAX_QUEUE,
  parseAgentConfig,
  upstreamFlag,
  type AgentConfig,
} from "./agent-config.js";
import { advertisedEndpoint, defaultProviderId, newAgentToken } from "./provider-identity.js";

const KEY = "im_0123456789abcdef_secretsecretsecretsecretsecretsecretsecret1";
const BASE = ["--registry", "127.0.0.1:7700", "--api-key", KEY];

function parse(argv: readonly string[], env: NodeJS.ProcessEnv = {}, files: Record<string, string> = {}): AgentConfig {
  return parseAgentConfig(argv, env, (path) => {
    const text = files[path];
    if (text === undefined) throw Object.assign(new Error("no such file"), { code: "ENOENT" });
    return text;
  });
}

function usageError(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).to.be.instanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error("expected a UsageError");
}

describe("agent configuration", () => {
  it("parses flags into a frozen config with defaults", () => {
    const config = parse([...BASE, "--upstream", "http://127.0.0.1:8080/v1/", "--upstream", "tts=http://127.0.0.1:8880", "--listen", "0.0.0.0:7701"]);
    expect(Object.isFrozen(config)).to.equal(true);
    expect(config.registry).to.equal("http://127.0.0.1:7700");
    expect(config.listen).to.deep.equal({ host: "0.0.0.0", port: 7701 });
    expect(config.upstreams.map((u) => [u.type, u.url, u.maxConcurrency, u.maxQueue])).to.deep.equal([
      ["llm", "http://127.0.0.1:8080", DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_QUEUE],
      ["tts", "http://127.0.0.1:8880", DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_QUEUE],
    ]);
    expect(config.discoveryIntervalMs).to.equal(30_000);
    expect(config.shutdownGraceMs).to.equal(10_000);
  });

  it("takes every flag from INFERMESH_* variables, flags winning", () => {
    const config = parse(["--max-queue", "3"], {
      INFERMESH_REGISTRY: "https://registry.example:443",
      INFERMESH_API_KEY: KEY,
      INFERMESH_UPSTREAM: "llm=http://a:1,stt=http://b:2",
      INFERMESH_MAX_QUEUE: "9",
      INFERMESH_MAX_CONCURRENCY: "2",
    });
    expect(config.registry).to.equal("https://registry.example");
    expect(config.upstreams.map((u) => [u.type, u.url, u.maxConcurrency, u.maxQueue])).to.deep.equal([
      ["llm", "http://a:1", 2, 3],
      ["stt", "http://b:2", 2, 3],
    ]);
  });

  it("reads a JSON config file, with flags overriding its top-level fields and adding upstreams", () => {
    const file = JSON.stringify({
      registry: "10.0.0.1:7700",
      api_key: "from-file",
      name: "gpu box",
      max_concurrency: 8,
      upstreams: [
        {
          type: "llm",
          url: "http://127.0.0.1:8080",
          engine: "llamacpp",
          models: { expose: ["qwen3"], hide: ["draft"] },
          capabilities: { qwen3: { input_modalities: ["text", "image"], supported_features: ["tools", "vision"], context_length: 32768 } },
          max_queue: 2,
          api_key: "upstream-secret",
        },
      ],
    });
    const config = parse(["--config", "agent.json", "--api-key", KEY, "--upstream", "image=http://127.0.0.1:7860"], {}, { "agent.json": file });
    expect(config.apiKey).to.equal(KEY);
    expect(config.registry).to.equal("http://10.0.0.1:7700");
    expect(config.name).to.equal("gpu box");
    const [llm, image] = config.upstreams;
    expect(llm).to.deep.include({ engine: "llamacpp", maxConcurrency: 8, maxQueue: 2, apiKey: "upstream-secret", hide: ["draft"] });
    expect(llm?.expose).to.deep.equal(["qwen3"]);
    expect(llm?.capabilities["qwen3"]).to.deep.equal({
      inputModalities: [Modality.TEXT, Modality.IMAGE],
      supportedFeatures: ["tools", "vision"],
      contextLength: 32768,
    });
    expect(image).to.deep.include({ type: "image", url: "http://127.0.0.1:7860", maxConcurrency: 8, maxQueue: DEFAULT_MAX_QUEUE });
  });

  it("names the flag or the file's field in every error", () => {
    expect(usageError(() => parse(["--upstream", "http://x:1"]))).to.match(/--registry \(or INFERMESH_REGISTRY/);
    expect(usageError(() => parse(["--registry", "r:1", "--upstream", "http://x:1"]))).to.match(/--api-key/);
    expect(usageError(() => parse(BASE))).to.match(/--upstream .*"upstreams"/);
    expect(usageError(() => parse([...BASE, "--upstream", "gpu=http://x:1"]))).to.match(/--upstream: unknown upstream type 'gpu'/);
    expect(usageError(() => parse([...BASE, "--upstream", "ftp://x"]))).to.match(/--upstream expects an http/);
    expect(usageError(() => parse([...BASE, "--upstream", "http://x:1", "--max-concurrency", "0"]))).to.match(
      /--max-concurrency expects a whole number of requests from 1/,
    );
    expect(usageError(() => parse([...BASE, "--upstream", "http://x:1", "--listen", "nope"]))).to.match(/--listen expects HOST:PORT/);
    expect(usageError(() => parse([...BASE, "--upstream", "http://x:1", "--id", "has space"]))).to.match(/--id expects/);
    expect(usageError(() => parse([...BASE, "--upstream", "http://x:1", "--upstream", "llm=http://x:1/"]))).to.match(/given twice/);
    expect(usageError(() => parse([...BASE, "--config", "missing.json"]))).to.match(/--config missing.json: cannot read it \(ENOENT\)/);
    const bad = (json: unknown) => usageError(() => parse([...BASE, "--config", "c.json"], {}, { "c.json": JSON.stringify(json) }));
    expect(bad({ upstreams: [{ url: "http://x:1", max_concurrency: "many" }] })).to.match(/field upstreams\[0\]\.max_concurrency expects a whole number/);
    expect(bad({ upstreams: [{ url: "http://x:1", capabilities: { m: { input_modalities: ["smell"] } } }] })).to.match(
      /capabilities\["m"\]\.input_modalities\[0\]: unknown modality 'smell'/,
    );
    expect(bad({ upstream: [] })).to.match(/field upstream: unknown field/);
    expect(bad({ upstreams: [{ url: "http://x:1", modles: {} }] })).to.match(/upstreams\[0\]\.modles: unknown field/);
    expect(usageError(() => parse([...BASE, "--config", "c.json"], {}, { "c.json": "{" }))).to.match(/not valid JSON/);
  });

  it("reads --upstream as [TYPE=]URL without mistaking a URL's own '=' for a type", () => {
    expect(upstreamFlag("http://h:1/a=b")).to.deep.equal({ type: "llm", url: "http://h:1/a=b" });
    expect(upstreamFlag("STT=http://h:2")).to.deep.equal({ type: "stt", url: "http://h:2" });
  });

  it("reads a native kind and a declared model from --upstream [TYPE=][KIND+]URL[#MODEL], the type following the kind", () => {
    expect(upstreamFlag("stt=whispercpp+http://h:8081#whisper-large-v3")).to.deep.equal({
      type: "stt",
      kind: "whispercpp",
      url: "http://h:8081",
      declare: ["whisper-large-v3"],
    });
    expect(upstreamFlag("whispercpp+http://h:8081/#ggml-base.en")).to.deep.include({ type: "stt", url: "http://h:8081" });
    expect(upstreamFlag("Automatic1111+http://h:7860")).to.deep.equal({ type: "image", kind: "automatic1111", url: "http://h:7860" });
    expect(upstreamFlag("tts=openai+http://h:8880#kokoro")).to.deep.equal({ type: "tts", kind: "openai", url: "http://h:8880", declare: ["kokoro"] });
    const config = parse([...BASE], { INFERMESH_UPSTREAM: "whispercpp+http://a:1#whisper-1,image=automatic1111+http://b:2" });
    expect(config.upstreams.map((u) => [u.type, u.kind, u.url, u.declare])).to.deep.equal([
      ["stt", "whispercpp", "http://a:1", ["whisper-1"]],
      ["image", "automatic1111", "http://b:2", undefined],
    ]);
    expect(parse([...BASE, "--upstream", "http://x:1"]).upstreams[0]).to.deep.include({ kind: "openai", declare: undefined });
  });

  it("reads kind and models.declare from the config file, the type following the kind", () => {
    const file = JSON.stringify({
      upstreams: [
        { kind: "whispercpp", url: "http://127.0.0.1:8081", models: { declare: ["whisper-large-v3"] } },
        { type: "image", kind: "automatic1111", url: "http://127.0.0.1:7860", models: { hide: ["sd_xl_refiner_1.0"] } },
        { type: "tts", url: "http://127.0.0.1:8880", models: { declare: ["kokoro", "tts-1"] } },
      ],
    });
    const config = parse([...BASE, "--config", "a.json"], {}, { "a.json": file });
    expect(config.upstreams.map((u) => [u.type, u.kind, u.declare, u.hide])).to.deep.equal([
      ["stt", "whispercpp", ["whisper-large-v3"], []],
      ["image", "automatic1111", undefined, ["sd_xl_refiner_1.0"]],
      ["tts", "openai", ["kokoro", "tts-1"], []],
    ]);
  });

  it("refuses a kind on a type it cannot serve, an unknown kind, and whisper.cpp without a declared model", () => {
    expect(usageError(() => upstreamFlag("llm=whispercpp+http://h:1#m"))).to.equal(
      "--upstream llm=whispercpp+http://h:1#m: a whispercpp server serves type stt, not llm",
    );
    expect(usageError(() => upstreamFlag("comfyui+http://h:1"))).to.equal(
      "--upstream: unknown upstream kind 'comfyui' (expected openai, whispercpp, automatic1111)",
    );
    expect(usageError(() => upstreamFlag("whispercpp+http://h:1"))).to.match(/cannot list its model; declare it \(flag: whispercpp\+URL#MODEL/);
    expect(usageError(() => upstreamFlag("whispercpp+http://h:1#"))).to.match(/the model after '#' must not be empty/);
    const bad = (json: unknown) => usageError(() => parse([...BASE, "--config", "c.json"], {}, { "c.json": JSON.stringify(json) }));
    expect(bad({ upstreams: [{ kind: "whispercpp", url: "http://x:1" }] })).to.match(/^--config c\.json: field upstreams\[0\]: whisper\.cpp's server/);
    expect(bad({ upstreams: [{ type: "tts", kind: "automatic1111", url: "http://x:1" }] })).to.match(/serves type image, not tts/);
    expect(bad({ upstreams: [{ kind: "a1111", url: "http://x:1" }] })).to.match(/upstreams\[0\]\.kind: unknown upstream kind 'a1111'/);
    expect(bad({ upstreams: [{ url: "http://x:1", models: { declare: [] } }] })).to.match(/models\.declare: list at least one model/);
    expect(bad({ upstreams: [{ url: "http://x:1", models: { announce: [] } }] })).to.match(/unknown field \(known: declare, expose, hide\)/);
  });
});

describe("provider identity", () => {
  it("derives a stable, readable provider id that differs by endpoint and by key id, and hides the key", () => {
    const id = defaultProviderId("GPU-Box.local", "10.0.0.5:7701", KEY);
    expect(id).to.match(/^gpu-box\.local-[0-9a-f]{12}$/);
    expect(defaultProviderId("GPU-Box.local", "10.0.0.5:7701", KEY)).to.equal(id);
    expect(defaultProviderId("GPU-Box.local", "10.0.0.5:7702", KEY)).not.to.equal(id);
    expect(defaultProviderId("GPU-Box.local", "10.0.0.5:7701", KEY.replace("0123", "4567"))).not.to.equal(id);
    expect(defaultProviderId("GPU-Box.local", "10.0.0.5:7701", KEY.replace("secret", "other!"))).to.equal(id);
    expect(id).not.to.contain("secret");
    expect(defaultProviderId("!!!", "h:1", "not-an-im-key")).to.match(/^agent-[0-9a-f]{12}$/);
  });

  it("advertises the bound port, and an external address for a wildcard listen host", () => {
    const interfaces = {
      lo: [{ address: "127.0.0.1", family: "IPv4", internal: true } as never],
      eth0: [{ address: "192.168.1.20", family: "IPv4", internal: false } as never],
    };
    expect(advertisedEndpoint({ host: "127.0.0.1", port: 0 }, 4321, undefined, interfaces)).to.equal("127.0.0.1:4321");
    expect(advertisedEndpoint({ host: "0.0.0.0", port: 7701 }, 7701, undefined, interfaces)).to.equal("192.168.1.20:7701");
    expect(advertisedEndpoint({ host: "0.0.0.0", port: 0 }, 5000, { host: "agent.example", port: 0 }, interfaces)).to.equal("agent.example:5000");
    expect(advertisedEndpoint({ host: "::", port: 1 }, 1, undefined, { lo: interfaces.lo })).to.equal("127.0.0.1:1");
  });

  it("draws a fresh 256-bit agent token each time", () => {
    const token = newAgentToken();
    expect(token).to.match(/^[A-Za-z0-9_-]{43}$/);
    expect(newAgentToken()).not.to.equal(token);
  });
});
