import { expect } from "chai";
import { type AgentConfig, DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_QUEUE } from "../../services/agent/agent-config.js";
import { expectSampleConfig, SAMPLE_CONFIG_FILE } from "../../services/agent/test-support/sample-config-file.js";
import { ConfigError } from "../../services/shared/config-error.js";
import { refusal as configError, fakeFiles, UNPREFIXED_EXPORTS, refusalMessage as usageError } from "../../test/support/config-errors.js";
import { discoverAgentConfig, parseAgentConfig } from "./agent-flags.js";
import { UsageError } from "./flags.js";

const KEY = "im_0123456789abcdef_secretsecretsecretsecretsecretsecretsecret1";
const MESH = "https://mesh.example.org";
const BASE = ["--mesh", `${MESH}/v1`, "--api-key", KEY];

function parse(argv: readonly string[], env: NodeJS.ProcessEnv = {}, files: Record<string, string> = {}): AgentConfig {
  return parseAgentConfig(argv, env, fakeFiles(files));
}

describe("infermesh agent's flags", () => {
  it("parses flags into a frozen config with defaults", () => {
    const config = parse([
      ...BASE,
      "--upstream",
      "http://127.0.0.1:8080/v1/",
      "--upstream",
      "tts=http://127.0.0.1:8880",
      "--ca-file",
      "ca.pem",
      "--metrics-listen",
      "0.0.0.0:9100",
    ]);
    expect(Object.isFrozen(config)).to.equal(true);
    expect(config).to.deep.include({ mesh: MESH, apiKey: KEY, caFile: "ca.pem", id: undefined, name: undefined });
    expect(config.metricsListen).to.deep.equal({ host: "0.0.0.0", port: 9100 });
    expect(config.upstreams.map((u) => [u.type, u.url, u.maxConcurrency, u.maxQueue])).to.deep.equal([
      ["llm", "http://127.0.0.1:8080", DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_QUEUE],
      ["tts", "http://127.0.0.1:8880", DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_QUEUE],
    ]);
    expect(config.discoveryIntervalMs).to.equal(30_000);
    expect(config.shutdownGraceMs).to.equal(10_000);
  });

  it("takes every flag from its variable (INFERMESH_AGENT_*, and the shared INFERMESH_MESH, INFERMESH_CA_FILE and INFERMESH_API_KEY), flags winning", () => {
    const config = parse(["--max-queue", "3"], {
      INFERMESH_MESH: "https://mesh.example.org:443/v1",
      INFERMESH_CA_FILE: "/etc/infermesh/ca.pem",
      INFERMESH_API_KEY: KEY,
      INFERMESH_AGENT_UPSTREAM: "llm=http://a:1,stt=http://b:2",
      INFERMESH_AGENT_MAX_QUEUE: "9",
      INFERMESH_AGENT_MAX_CONCURRENCY: "2",
      INFERMESH_AGENT_METRICS_LISTEN: "127.0.0.1:0",
      INFERMESH_AGENT_NAME: "gpu box",
      INFERMESH_AGENT_ID: "box-1",
      INFERMESH_LOG_LEVEL: "debug",
    });
    expect(config).to.deep.include({ mesh: MESH, caFile: "/etc/infermesh/ca.pem", name: "gpu box", id: "box-1" });
    expect(config.upstreams.map((u) => [u.type, u.url, u.maxConcurrency, u.maxQueue])).to.deep.equal([
      ["llm", "http://a:1", 2, 3],
      ["stt", "http://b:2", 2, 3],
    ]);
    expect(config.metricsListen).to.deep.equal({ host: "127.0.0.1", port: 0 });
    expect(config.logLevel).to.equal("debug");
  });

  it("ignores the variables of other commands: a gateway's INFERMESH_REGISTRY and INFERMESH_LISTEN, INFERMESH_UPSTREAM, INFERMESH_SIM_API_KEY", () => {
    const config = parse([...BASE, "--upstream", "http://x:1"], {
      ...UNPREFIXED_EXPORTS,
      INFERMESH_REGISTRY: "10.0.0.1:7700",
      INFERMESH_ADVERTISE: "10.0.0.2:7001",
      INFERMESH_UPSTREAM: "tts=http://y:2",
      INFERMESH_MAX_QUEUE: "1",
    });
    expect(config.metricsListen).to.equal(undefined);
    expect(config.upstreams.map((u) => u.url)).to.deep.equal(["http://x:1"]);
    expect(config.upstreams[0]?.maxQueue).to.equal(DEFAULT_MAX_QUEUE);
    expect(() => parse(["--mesh", MESH, "--upstream", "http://x:1"], { INFERMESH_SIM_API_KEY: KEY })).to.throw(ConfigError, /--api-key/);
  });

  it("refuses the flags of agents that gateways dialled, and their variables, saying what to use instead", () => {
    const args = [...BASE, "--upstream", "http://x:1"];
    const meshInstead = "the agent reaches the mesh through its public URL: use --mesh URL (the gateway's, as OpenAI clients use it)";
    const noPort = "the agent opens no port: it dials the mesh (--mesh URL)";
    expect(usageError(() => parse([...args, "--registry", "127.0.0.1:7700"]))).to.equal(`--registry is no longer used: ${meshInstead}`);
    expect(usageError(() => parse(["--registry", "127.0.0.1:7700", "--upstream", "http://x:1"]))).to.equal(
      `--registry is no longer used: ${meshInstead}`,
    );
    expect(usageError(() => parse([...args, "--listen", "0.0.0.0:7701"]))).to.equal(`--listen is no longer used: ${noPort}`);
    expect(usageError(() => parse([...args, "--advertise", "10.0.0.5:7701"]))).to.equal(`--advertise is no longer used: ${noPort}`);
    expect(usageError(() => parse(args, { INFERMESH_AGENT_LISTEN: "127.0.0.1:0" }))).to.equal(
      `INFERMESH_AGENT_LISTEN is no longer used: ${noPort}`,
    );
    expect(configError(() => parse([...args, "--listen", "0.0.0.0:7701"])).setting).to.equal("--listen");
    expect(usageError(() => parse([...args, "--config", "old.json"], {}, { "old.json": '{"registry":"10.0.0.1:7700"}' }))).to.equal(
      `--config old.json: field registry: no longer used: ${meshInstead}`,
    );
  });

  it("reads a JSON config file, with flags overriding its top-level fields and adding upstreams", () => {
    const file = SAMPLE_CONFIG_FILE;
    const config = parse(
      ["--config", "agent.json", "--api-key", KEY, "--upstream", "image=http://127.0.0.1:7860"],
      {},
      { "agent.json": file },
    );
    expectSampleConfig(config, KEY);
    const logged = parse(["--config", "agent.json"], {}, { "agent.json": JSON.stringify({ ...JSON.parse(file), log_level: "warn" }) });
    expect(logged.logLevel, "a flag's default never hides the file's value").to.equal("warn");
  });

  it("names the flag or the file's field in every error", () => {
    expect(usageError(() => parse(["--upstream", "http://x:1"]))).to.match(/--mesh \(or INFERMESH_MESH/);
    expect(usageError(() => parse(["--mesh", MESH, "--upstream", "http://x:1"]))).to.match(/--api-key/);
    expect(usageError(() => parse(["--mesh", "mesh.example.org:443", "--api-key", KEY, "--upstream", "http://x:1"]))).to.equal(
      "--mesh expects an http:// or https:// URL, got 'mesh.example.org:443'",
    );
    expect(usageError(() => parse(BASE))).to.match(/--upstream .*"upstreams"/);
    expect(usageError(() => parse([...BASE, "--upstream", "gpu=http://x:1"]))).to.match(/--upstream: unknown upstream type 'gpu'/);
    expect(usageError(() => parse([...BASE, "--upstream", "ftp://x"]))).to.match(/--upstream expects an http/);
    expect(usageError(() => parse([...BASE, "--upstream", "http://x:1", "--max-concurrency", "0"]))).to.match(
      /--max-concurrency expects a whole number of requests from 1/,
    );
    expect(usageError(() => parse([...BASE, "--upstream", "http://x:1", "--metrics-listen", "nope"]))).to.match(
      /--metrics-listen expects HOST:PORT/,
    );
    expect(usageError(() => parse([...BASE, "--upstream", "http://x:1", "--id", "has space"]))).to.match(/--id expects/);
    expect(usageError(() => parse([...BASE, "--upstream", "http://x:1", "--upstream", "llm=http://x:1/"]))).to.match(/given twice/);
    expect(usageError(() => parse([...BASE, "--config", "missing.json"]))).to.match(/--config missing.json: cannot read it \(ENOENT\)/);
    const bad = (json: unknown) => usageError(() => parse([...BASE, "--config", "c.json"], {}, { "c.json": JSON.stringify(json) }));
    expect(bad({ upstreams: [{ url: "http://x:1", max_concurrency: "many" }] })).to.match(
      /field upstreams\[0\]\.max_concurrency expects a whole number/,
    );
    expect(bad({ upstreams: [{ url: "http://x:1", capabilities: { m: { input_modalities: ["smell"] } } }] })).to.match(
      /capabilities\["m"\]\.input_modalities\[0\]: unknown modality 'smell'/,
    );
    expect(bad({ upstream: [] })).to.match(/field upstream: unknown field/);
    expect(bad({ upstreams: [{ url: "http://x:1", modles: {} }] })).to.match(/upstreams\[0\]\.modles: unknown field/);
    expect(usageError(() => parse([...BASE, "--config", "c.json"], {}, { "c.json": "{" }))).to.match(/not valid JSON/);
  });

  it("says what is missing in full, pointing at --api-key-file to keep the key off the command line", () => {
    expect(usageError(() => parse(["--upstream", "http://x:1", "--api-key", KEY]))).to.equal(
      `--mesh (or INFERMESH_MESH, or the config file's "mesh") is required`,
    );
    expect(usageError(() => parse(["--mesh", MESH, "--upstream", "http://x:1"]))).to.equal(
      `--api-key (or INFERMESH_API_KEY, or the config file's "api_key") is required; --api-key-file FILE (or INFERMESH_API_KEY_FILE) keeps it off the command line`,
    );
    expect(usageError(() => parse(BASE))).to.equal(
      `--upstream (or INFERMESH_AGENT_UPSTREAM, or the config file's "upstreams") is required`,
    );
  });

  it("names the variable, not the flag, when a bad value came from the environment, in the value's unit", () => {
    const args = [...BASE, "--upstream", "http://x:1"];
    expect(usageError(() => parse(args, { INFERMESH_AGENT_METRICS_LISTEN: "localhost" }))).to.equal(
      "INFERMESH_AGENT_METRICS_LISTEN expects HOST:PORT with a port from 0 to 65535, got 'localhost'",
    );
    expect(usageError(() => parse(["--api-key", KEY, "--upstream", "http://x:1"], { INFERMESH_MESH: "ftp://mesh" }))).to.equal(
      "INFERMESH_MESH expects an http:// or https:// URL, got 'ftp://mesh'",
    );
    expect(usageError(() => parse(args, { INFERMESH_AGENT_SHUTDOWN_GRACE_MS: "10s" }))).to.equal(
      "INFERMESH_AGENT_SHUTDOWN_GRACE_MS expects a whole number of milliseconds from 0 to 3600000, got '10s'",
    );
    expect(usageError(() => parse([...args, "--discovery-interval-ms", "1"]))).to.equal(
      "--discovery-interval-ms expects a whole number of milliseconds from 100 to 86400000, got '1'",
    );
    expect(usageError(() => parse([...args, "--log-level", "loud"]))).to.equal(
      "--log-level expects one of fatal, error, warn, info, debug, trace or silent, got 'loud'",
    );
  });

  it("reads --share, from INFERMESH_AGENT_SHARE too, winning over the config file's share; none given, none sent", () => {
    const args = [...BASE, "--upstream", "http://x:1"];
    expect(parse(args).share).to.equal(undefined);
    expect(parse([...args, "--share", "users:alice,bob,alice"]).share).to.deep.equal({
      visibility: "users",
      allowedUsers: ["alice", "bob"],
    });
    expect(parse(args, { INFERMESH_AGENT_SHARE: "public" }).share).to.deep.equal({ visibility: "public", allowedUsers: [] });
    expect(parse([...args, "--share", "private"], { INFERMESH_AGENT_SHARE: "public" }).share?.visibility).to.equal("private");
    const files = { "agent.json": JSON.stringify({ share: "public" }) };
    expect(parse([...args, "--config", "agent.json"], {}, files).share?.visibility).to.equal("public");
    expect(parse([...args, "--config", "agent.json", "--share", "users:carol"], {}, files).share).to.deep.equal({
      visibility: "users",
      allowedUsers: ["carol"],
    });
    expect(parse([...args, "--config", "agent.json"], { INFERMESH_AGENT_SHARE: "private" }, files).share?.visibility).to.equal("private");
  });

  it("names the flag or its variable when --share is bad, with the forms it takes", () => {
    const args = [...BASE, "--upstream", "http://x:1"];
    expect(usageError(() => parse([...args, "--share", "everyone"]))).to.equal(
      "--share expects private, public or users:NAME[,NAME...], got 'everyone'",
    );
    expect(usageError(() => parse(args, { INFERMESH_AGENT_SHARE: "users:" }))).to.equal(
      "INFERMESH_AGENT_SHARE expects private, public or users:NAME[,NAME...] naming at least one user, got 'users:'",
    );
    expect(usageError(() => parse([...args, "--share", "users:bob/1"]))).to.match(/^--share expects .* got 'bob\/1' in 'users:bob\/1'$/);
  });

  it("suggests the nearest flag for an unknown one", () => {
    const error = (() => {
      try {
        parse([...BASE, "--upstrem", "http://x:1"]);
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();
    expect(error).to.be.instanceOf(UsageError);
    expect((error as UsageError).message).to.equal("unknown flag --upstrem; did you mean --upstream?");
  });

  describe("--api-key-file", () => {
    const args = ["--mesh", MESH, "--upstream", "http://x:1"];

    it("reads the key from a file, trimmed, from the flag or INFERMESH_API_KEY_FILE", () => {
      expect(parse([...args, "--api-key-file", "key"], {}, { key: `  ${KEY}\n` }).apiKey).to.equal(KEY);
      expect(parse(args, { INFERMESH_API_KEY_FILE: "key" }, { key: `${KEY}\r\n` }).apiKey).to.equal(KEY);
    });

    it("wins over INFERMESH_API_KEY when given on the command line, as every flag wins over the environment", () => {
      expect(parse([...args, "--api-key-file", "key"], { INFERMESH_API_KEY: "from-env" }, { key: KEY }).apiKey).to.equal(KEY);
      expect(parse([...args, "--api-key", KEY], { INFERMESH_API_KEY_FILE: "key" }, { key: "from-file" }).apiKey).to.equal(KEY);
    });

    it("refuses an unreadable, empty or many-line file, and both forms at once, naming the file", () => {
      expect(usageError(() => parse([...args, "--api-key-file", "nope"]))).to.equal("--api-key-file cannot read 'nope': no such file");
      expect(usageError(() => parse([...args, "--api-key-file", "key"], {}, { key: " \n" }))).to.equal(
        "--api-key-file names an empty file, 'key'",
      );
      expect(usageError(() => parse(args, { INFERMESH_API_KEY_FILE: "key" }, { key: "" }))).to.equal(
        "INFERMESH_API_KEY_FILE names an empty file, 'key'",
      );
      expect(usageError(() => parse([...args, "--api-key-file", "key"], {}, { key: `${KEY}\nsecond` }))).to.match(
        /^--api-key-file expects a file holding the secret alone on one line/,
      );
      expect(usageError(() => parse([...args, "--api-key", KEY, "--api-key-file", "key"], {}, { key: KEY }))).to.equal(
        "--api-key and --api-key-file are both given; give one of them",
      );
      expect(usageError(() => parse(args, { INFERMESH_API_KEY: KEY, INFERMESH_API_KEY_FILE: "key" }, { key: KEY }))).to.equal(
        "INFERMESH_API_KEY and INFERMESH_API_KEY_FILE are both given; give one of them",
      );
    });
  });

  describe("--discover", () => {
    const found = [
      { type: "llm" as const, url: "http://127.0.0.1:8080", engine: "llamacpp", models: ["qwen"] },
      { type: "llm" as const, url: "http://127.0.0.1:11434", engine: "ollama", models: ["llama3"] },
    ];

    it("serves the servers found on this machine beside the configured ones, the configured one winning its port", async () => {
      let told: readonly unknown[] = [];
      const config = await discoverAgentConfig(
        [...BASE, "--discover", "--upstream", "stt=http://localhost:8080"],
        {},
        {
          discover: async () => found,
          onFound: (servers) => (told = servers),
        },
      );
      expect(config.upstreams.map((u) => [u.type, u.url, u.engine])).to.deep.equal([
        ["stt", "http://localhost:8080", undefined],
        ["llm", "http://127.0.0.1:11434", "ollama"],
      ]);
      expect(told).to.have.length(1);
    });

    it("needs no --upstream, and says so when it finds nothing to serve", async () => {
      const config = await discoverAgentConfig([...BASE, "--discover"], {}, { discover: async () => found });
      expect(config.upstreams).to.have.length(2);
      const error = await discoverAgentConfig([...BASE], { INFERMESH_AGENT_DISCOVER: "true" }, { discover: async () => [] }).then(
        () => undefined,
        (failure: unknown) => failure,
      );
      expect(error).to.be.instanceOf(ConfigError);
      expect((error as Error).message).to.equal(
        "--discover found no model server on 127.0.0.1 ports 8080, 11434, 8000, 1234; start one, or give --upstream TYPE=URL",
      );
    });

    it("is not asked for without the flag, and the missing --upstream names it", async () => {
      let asked = false;
      const error = await discoverAgentConfig(
        [...BASE],
        {},
        {
          discover: async () => {
            asked = true;
            return found;
          },
        },
      ).then(
        () => undefined,
        (failure: unknown) => failure,
      );
      expect(asked).to.equal(false);
      expect((error as Error).message).to.match(/--upstream .* is required, or --discover/);
    });
  });
});
