import { expect } from "chai";
import { refusal as configError, refusalMessage as usageError } from "../../test/support/config-errors.js";
import { providerIdFor } from "../shared/provider-id.js";
import {
  type AgentConfig,
  type AgentSettings,
  DEFAULT_MAX_CONCURRENCY,
  parseShare,
  parseUpstream,
  readAgentConfigFile,
  resolveAgentConfig,
} from "./agent-config.js";
import { expectSampleConfig, SAMPLE_CONFIG_FILE } from "./test-support/sample-config-file.js";

const KEY = "im_0123456789abcdef_secretsecretsecretsecretsecretsecretsecret1";
const BASE: AgentSettings = { mesh: "https://mesh.example.org", apiKey: KEY };

/** fromFile reads the config file text under the name path, as `--config path` would. */
function fromFile(path: string, text: string): AgentSettings {
  return readAgentConfigFile(path, (asked) => {
    if (asked !== path) throw Object.assign(new Error("no such file"), { code: "ENOENT" });
    return text;
  });
}

describe("agent configuration", () => {
  it("resolves settings into a frozen config with defaults, later sources winning field by field and upstreams adding up", () => {
    const config: AgentConfig = resolveAgentConfig(
      { ...BASE, name: "first", upstreams: [parseUpstream("--upstream", "http://127.0.0.1:8080/v1/")] },
      { name: "second", maxQueue: 3, upstreams: [parseUpstream("--upstream", "tts=http://127.0.0.1:8880")] },
    );
    expect(Object.isFrozen(config)).to.equal(true);
    expect(config.name).to.equal("second");
    expect(config).to.deep.include({ mesh: "https://mesh.example.org", caFile: undefined, id: undefined, metricsListen: undefined });
    expect(config.logLevel).to.equal("info");
    expect(config.upstreams.map((u) => [u.type, u.url, u.maxConcurrency, u.maxQueue])).to.deep.equal([
      ["llm", "http://127.0.0.1:8080", DEFAULT_MAX_CONCURRENCY, 3],
      ["tts", "http://127.0.0.1:8880", DEFAULT_MAX_CONCURRENCY, 3],
    ]);
    expect(config.discoveryIntervalMs).to.equal(30_000);
    expect(config.shutdownGraceMs).to.equal(10_000);
  });

  it("refuses settings without a mesh, a key or an upstream, and an upstream given twice, naming the field", () => {
    const upstreams = [parseUpstream("--upstream", "http://x:1")];
    expect(configError(() => resolveAgentConfig({ apiKey: KEY, upstreams })).setting).to.equal("mesh");
    expect(usageError(() => resolveAgentConfig({ apiKey: KEY, upstreams }))).to.equal(`the agent's "mesh" is required`);
    expect(usageError(() => resolveAgentConfig({ mesh: "http://m:1", upstreams }))).to.equal(`the agent's "api_key" is required`);
    expect(usageError(() => resolveAgentConfig(BASE))).to.equal(`the agent's "upstreams" is required`);
    expect(
      usageError(() => resolveAgentConfig({ ...BASE, upstreams }, { upstreams: [parseUpstream("--upstream", "llm=http://x:1/")] })),
    ).to.match(/given twice/);
  });

  it("reads a JSON config file: top-level fields, upstreams with models, capabilities, limits and their own keys", () => {
    const file = SAMPLE_CONFIG_FILE;
    const config = resolveAgentConfig(fromFile("agent.json", file), {
      apiKey: KEY,
      upstreams: [parseUpstream("--upstream", "image=http://127.0.0.1:7860")],
    });
    expectSampleConfig(config, KEY);
  });

  it("names the file and its field in every error, in the field's unit", () => {
    expect(usageError(() => readAgentConfigFile("missing.json", () => readError("ENOENT")))).to.match(
      /--config missing.json: cannot read it \(ENOENT\)/,
    );
    const bad = (json: unknown) => usageError(() => fromFile("c.json", JSON.stringify(json)));
    expect(bad({ upstreams: [{ url: "http://x:1", max_concurrency: "many" }] })).to.match(
      /field upstreams\[0\]\.max_concurrency expects a whole number/,
    );
    expect(bad({ upstreams: [{ url: "http://x:1", capabilities: { m: { input_modalities: ["smell"] } } }] })).to.match(
      /capabilities\["m"\]\.input_modalities\[0\]: unknown modality 'smell'/,
    );
    expect(bad({ upstream: [] })).to.match(/field upstream: unknown field/);
    expect(bad({ upstreams: [{ url: "http://x:1", modles: {} }] })).to.match(/upstreams\[0\]\.modles: unknown field/);
    expect(usageError(() => fromFile("c.json", "{"))).to.match(/not valid JSON/);
    expect(bad({ upstream_timeout_ms: 5 })).to.equal(
      "--config c.json: field upstream_timeout_ms expects a whole number of milliseconds from 100 to 86400000, got '5'",
    );
    expect(bad({ metrics_listen: 9100 })).to.equal("--config c.json: field metrics_listen expects a string, got the number 9100");
    expect(bad({ mesh: "mesh.example.org:443" })).to.equal(
      "--config c.json: field mesh expects an http:// or https:// URL, got 'mesh.example.org:443'",
    );
    expect(bad({ ca_file: "" })).to.match(/^--config c\.json: field ca_file /);
    expect(bad({ upstreams: {} })).to.equal("--config c.json: field upstreams expects a list, got an object");
    expect(bad({ apiKey: KEY }), "only snake_case names are fields").to.match(/field apiKey: unknown field; did you mean api_key\?$/);
  });

  it("reads the mesh's public URL as OpenAI clients use it, and the CA file to trust for it", () => {
    const settings = fromFile("c.json", JSON.stringify({ mesh: "https://mesh.example.org:8443/infermesh/v1/", ca_file: "ca.pem" }));
    expect(settings).to.deep.equal({ mesh: "https://mesh.example.org:8443/infermesh", caFile: "ca.pem" });
  });

  it("refuses the fields of agents that gateways dialled, saying what to use instead", () => {
    const bad = (json: unknown) => usageError(() => fromFile("c.json", JSON.stringify(json)));
    expect(bad({ registry: "10.0.0.1:7700" })).to.equal(
      "--config c.json: field registry: no longer used: the agent reaches the mesh through its public URL: use --mesh URL (the gateway's, as OpenAI clients use it)",
    );
    expect(bad({ listen: "0.0.0.0:7701" })).to.equal(
      "--config c.json: field listen: no longer used: the agent opens no port: it dials the mesh (--mesh URL)",
    );
    expect(bad({ advertise: "10.0.0.5:7701" })).to.equal(
      "--config c.json: field advertise: no longer used: the agent opens no port: it dials the mesh (--mesh URL)",
    );
    expect(configError(() => fromFile("c.json", JSON.stringify({ registry: "r:1" }))).setting).to.equal("--config c.json: field registry");
  });

  it("suggests the nearest field for a misspelt one, and lists the known ones when none is near", () => {
    const bad = (json: unknown) => usageError(() => fromFile("c.json", JSON.stringify(json)));
    expect(bad({ upstream: [] })).to.equal("--config c.json: field upstream: unknown field; did you mean upstreams?");
    expect(bad({ upstreams: [{ url: "http://x:1", modles: {} }] })).to.equal(
      "--config c.json: field upstreams[0].modles: unknown field; did you mean models?",
    );
    expect(bad({ upstreams: [{ url: "http://x:1", models: { announce: [] } }] })).to.equal(
      "--config c.json: field upstreams[0].models.announce: unknown field (known: declare, expose and hide)",
    );
  });

  it("reads an upstream's one-line form [TYPE=]URL without mistaking a URL's own '=' for a type", () => {
    expect(parseUpstream("--upstream", "http://h:1/a=b")).to.deep.equal({ type: "llm", url: "http://h:1/a=b" });
    expect(parseUpstream("--upstream", "STT=http://h:2")).to.deep.equal({ type: "stt", url: "http://h:2" });
    expect(parseUpstream("--upstream", "embedding=http://h:3")).to.deep.equal({ type: "embedding", url: "http://h:3" });
    expect(parseUpstream("--upstream", "rerank=http://h:4#bge-reranker-v2-m3")).to.deep.equal({
      type: "rerank",
      url: "http://h:4",
      declare: ["bge-reranker-v2-m3"],
    });
    expect(usageError(() => parseUpstream("--upstream", "embedding=whispercpp+http://h:5#x"))).to.match(
      /a whispercpp server serves type stt, not embedding/,
    );
    expect(usageError(() => parseUpstream("--upstream", "gpu=http://x:1"))).to.match(/--upstream: unknown upstream type 'gpu'/);
    expect(usageError(() => parseUpstream("--upstream", "ftp://x"))).to.match(/--upstream expects an http/);
  });

  it("reads a native kind and a declared model from [TYPE=][KIND+]URL[#MODEL], the type following the kind", () => {
    expect(parseUpstream("--upstream", "stt=whispercpp+http://h:8081#whisper-large-v3")).to.deep.equal({
      type: "stt",
      kind: "whispercpp",
      url: "http://h:8081",
      declare: ["whisper-large-v3"],
    });
    expect(parseUpstream("--upstream", "whispercpp+http://h:8081/#ggml-base.en")).to.deep.include({ type: "stt", url: "http://h:8081" });
    expect(parseUpstream("--upstream", "Automatic1111+http://h:7860")).to.deep.equal({
      type: "image",
      kind: "automatic1111",
      url: "http://h:7860",
    });
    expect(parseUpstream("--upstream", "tts=openai+http://h:8880#kokoro")).to.deep.equal({
      type: "tts",
      kind: "openai",
      url: "http://h:8880",
      declare: ["kokoro"],
    });
    expect(resolveAgentConfig({ ...BASE, upstreams: [parseUpstream("--upstream", "http://x:1")] }).upstreams[0]).to.deep.include({
      kind: "openai",
      declare: undefined,
    });
  });

  it("reads kind and models.declare from the config file, the type following the kind", () => {
    const file = JSON.stringify({
      upstreams: [
        { kind: "whispercpp", url: "http://127.0.0.1:8081", models: { declare: ["whisper-large-v3"] } },
        { type: "image", kind: "automatic1111", url: "http://127.0.0.1:7860", models: { hide: ["sd_xl_refiner_1.0"] } },
        { type: "tts", url: "http://127.0.0.1:8880", models: { declare: ["kokoro", "tts-1"] } },
        { type: "embedding", url: "http://127.0.0.1:8090" },
        { type: "Rerank", url: "http://127.0.0.1:8091", models: { declare: ["bge-reranker-v2-m3"] } },
      ],
    });
    const config = resolveAgentConfig(BASE, fromFile("a.json", file));
    expect(config.upstreams.map((u) => [u.type, u.kind, u.declare, u.hide])).to.deep.equal([
      ["stt", "whispercpp", ["whisper-large-v3"], []],
      ["image", "automatic1111", undefined, ["sd_xl_refiner_1.0"]],
      ["tts", "openai", ["kokoro", "tts-1"], []],
      ["embedding", "openai", undefined, []],
      ["rerank", "openai", ["bge-reranker-v2-m3"], []],
    ]);
  });

  it("refuses a kind on a type it cannot serve, an unknown kind, and whisper.cpp without a declared model", () => {
    expect(usageError(() => parseUpstream("--upstream", "llm=whispercpp+http://h:1#m"))).to.equal(
      "--upstream llm=whispercpp+http://h:1#m: a whispercpp server serves type stt, not llm",
    );
    expect(usageError(() => parseUpstream("--upstream", "tts=automatic1111+http://h:1"))).to.equal(
      "--upstream tts=automatic1111+http://h:1: an automatic1111 server serves type image, not tts",
    );
    expect(usageError(() => parseUpstream("--upstream", "comfyui+http://h:1"))).to.equal(
      "--upstream: unknown upstream kind 'comfyui' (expected openai, whispercpp or automatic1111)",
    );
    expect(usageError(() => parseUpstream("--upstream", "whispercpp+http://h:1"))).to.match(
      /cannot list its model; declare it \(flag: whispercpp\+URL#MODEL/,
    );
    expect(usageError(() => parseUpstream("--upstream", "whispercpp+http://h:1#"))).to.match(/the model after '#' must not be empty/);
    const bad = (json: unknown) => usageError(() => fromFile("c.json", JSON.stringify(json)));
    expect(bad({ upstreams: [{ kind: "whispercpp", url: "http://x:1" }] })).to.match(
      /^--config c\.json: field upstreams\[0\]: whisper\.cpp's server/,
    );
    expect(bad({ upstreams: [{ type: "tts", kind: "automatic1111", url: "http://x:1" }] })).to.match(/serves type image, not tts/);
    expect(bad({ upstreams: [{ kind: "a1111", url: "http://x:1" }] })).to.match(/upstreams\[0\]\.kind: unknown upstream kind 'a1111'/);
    expect(bad({ upstreams: [{ url: "http://x:1", models: { declare: [] } }] })).to.match(/models\.declare: list at least one model/);
    expect(bad({ upstreams: [{ url: "http://x:1", models: { announce: [] } }] })).to.match(
      /unknown field \(known: declare, expose and hide\)/,
    );
  });
});

describe("the agent's sharing", () => {
  const upstreams = [parseUpstream("--upstream", "http://x:1")];

  it("reads private, public and users:NAME,... into frozen data, names trimmed and each kept once in order", () => {
    expect(parseShare("--share", "private")).to.deep.equal({ visibility: "private", allowedUsers: [] });
    expect(parseShare("--share", " PUBLIC ")).to.deep.equal({ visibility: "public", allowedUsers: [] });
    const users = parseShare("--share", "Users:bob, alice@example.org,bob,carol.x_y-1");
    expect(users).to.deep.equal({ visibility: "users", allowedUsers: ["bob", "alice@example.org", "carol.x_y-1"] });
    expect(Object.isFrozen(users) && Object.isFrozen(users.allowedUsers)).to.equal(true);
    expect(parseShare("--share", `users:${"a".repeat(64)}`).allowedUsers).to.deep.equal(["a".repeat(64)]);
  });

  it("is undefined unless given, so that the agent sends none and its owner's choice stays", () => {
    expect(resolveAgentConfig({ ...BASE, upstreams }).share).to.equal(undefined);
    expect(resolveAgentConfig({ ...BASE, upstreams, share: parseShare("s", "public") }).share?.visibility).to.equal("public");
  });

  it("refuses any other form, an empty list and a name the registry would refuse, saying which forms it takes", () => {
    const forms = "private, public or users:NAME[,NAME...]";
    expect(usageError(() => parseShare("--share", "friends"))).to.equal(`--share expects ${forms}, got 'friends'`);
    expect(usageError(() => parseShare("--share", "users"))).to.equal(`--share expects ${forms}, got 'users'`);
    expect(usageError(() => parseShare("--share", ""))).to.equal(`--share expects ${forms}, got ''`);
    expect(usageError(() => parseShare("--share", "users: "))).to.equal(`--share expects ${forms} naming at least one user, got 'users: '`);
    const names = `--share expects ${forms} with user names of 1 to 64 of A-Z a-z 0-9 . _ @ -`;
    expect(usageError(() => parseShare("--share", "users:alice,bob smith"))).to.equal(
      `${names}, got 'bob smith' in 'users:alice,bob smith'`,
    );
    expect(usageError(() => parseShare("--share", "users:alice,"))).to.equal(`${names}, got '' in 'users:alice,'`);
    expect(usageError(() => parseShare("--share", `users:${"a".repeat(65)}`))).to.match(/got 'a{65}'/);
    expect(configError(() => parseShare("INFERMESH_AGENT_SHARE", "all")).setting).to.equal("INFERMESH_AGENT_SHARE");
  });

  it("reads the config file's share in the same form, naming the field in errors", () => {
    expect(fromFile("c.json", JSON.stringify({ share: "users:alice,bob" }))).to.deep.equal({
      share: { visibility: "users", allowedUsers: ["alice", "bob"] },
    });
    expect(usageError(() => fromFile("c.json", JSON.stringify({ share: "everyone" })))).to.equal(
      "--config c.json: field share expects private, public or users:NAME[,NAME...], got 'everyone'",
    );
    expect(usageError(() => fromFile("c.json", JSON.stringify({ share: ["alice"] })))).to.equal(
      "--config c.json: field share expects a string, got a list",
    );
    expect(usageError(() => fromFile("c.json", JSON.stringify({ shares: "public" })))).to.equal(
      "--config c.json: field shares: unknown field; did you mean share?",
    );
  });
});

function readError(code: string): never {
  throw Object.assign(new Error(code), { code });
}

describe("provider identity", () => {
  it("derives a stable, readable provider id from the owner and the name, apart for two owners of one name", () => {
    const id = providerIdFor("user-1", "GPU-Box.local");
    expect(id).to.match(/^gpu-box\.local-[0-9a-f]{12}$/);
    expect(providerIdFor("user-1", "GPU-Box.local")).to.equal(id);
    expect(providerIdFor("user-2", "GPU-Box.local")).not.to.equal(id);
    expect(providerIdFor("user-1", "gpu box")).to.match(/^gpu-box-[0-9a-f]{12}$/);
    expect(providerIdFor("user-1", "!!!")).to.match(/^agent-[0-9a-f]{12}$/);
    expect(providerIdFor("user-1", "x".repeat(300))).to.have.length(64 + 1 + 12);
  });

  it("takes an --id of its own, checked as the registry checks ids", () => {
    const upstreams = [parseUpstream("--upstream", "http://x:1")];
    expect(resolveAgentConfig({ ...BASE, id: "box:1", upstreams }).id).to.equal("box:1");
    expect(usageError(() => fromFile("c.json", JSON.stringify({ id: "has space" })))).to.equal(
      "--config c.json: field id expects 1 to 128 letters, digits, '.', '_', ':' or '-', got 'has space'",
    );
  });
});
