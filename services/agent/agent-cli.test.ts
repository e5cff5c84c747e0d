import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { type CliProcess, runCli, START_DEADLINE_MS, spawnCli } from "../../test/support/cli-process.js";
import { type GatewayFixture, startGateway } from "../../test/support/gateway-fixture.js";
import { type RegistryFixture, startRegistry } from "../../test/support/registry-fixture.js";
import { waitFor } from "../../test/support/wait-for.js";
import { createSimulator, type Simulator } from "../sim/simulator.js";

/** notJson is what a command wrote to stderr besides its JSON log lines: the lines written for people. */
function notJson(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line !== "" && !line.startsWith("{"));
}

describe("the infermesh agent command", function () {
  // Each run starts Node with tsx; a loaded 2-core machine needs the headroom.
  this.timeout(60_000);
  let registry: RegistryFixture;
  let gateway: GatewayFixture;
  let simulator: Simulator;
  let apiKey: string;
  let agent: CliProcess | undefined;

  before(async () => {
    // Providers stay online for a minute without heartbeats: one that goes offline sooner was taken offline.
    registry = await startRegistry({ heartbeatIntervalMs: 200, ttlMs: 60_000 });
    gateway = await startGateway(registry.address);
    apiKey = await registry.keyFor("carol");
    simulator = createSimulator({ models: [{ id: "sim-llama" }] });
    await simulator.listen();
  });

  after(async () => {
    if (agent && agent.child.exitCode === null) agent.child.kill("SIGKILL");
    await simulator.close();
    await gateway.stop();
    await registry.stop();
  });

  it("logs 'agent ready' with its models, attaches, and on SIGTERM detaches (offline at once) and exits 0, never logging the key", async () => {
    agent = spawnCli(["agent", "--upstream", `llm=${simulator.url}/v1`, "--id", "carol-box"], {
      INFERMESH_MESH: `${gateway.baseUrl}/v1`,
      INFERMESH_API_KEY: apiKey,
    });
    const ready = await agent.waitForLog("agent ready");
    expect(ready).to.deep.include({ providerId: "carol-box", mesh: gateway.baseUrl, attached: true });
    expect(ready.upstreams).to.deep.equal([{ url: simulator.url, type: "llm", up: true, models: [{ id: "sim-llama", type: "llm" }] }]);
    await waitFor("registration", () => registry.server.table.get("carol-box")?.online, 10_000);
    expect(gateway.gateway.links.attached("carol-box")).to.equal(true);
    agent.child.kill("SIGTERM");
    const result = await agent.exited;
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stderr).to.contain('"msg":"attached to the mesh"').and.to.contain('"msg":"agent stopped"');
    expect(result.stderr).not.to.contain(apiKey);
    expect(result.stderr, "nor its secret part").not.to.contain(apiKey.slice("im_".length + 16 + 1));
    await waitFor("the provider offline", () => registry.server.table.get("carol-box")?.online === false, 2_000);
  });

  it("stops a bad command line with one line naming the flag, and exit code 2", async () => {
    const result = await runCli(["agent", "--mesh", gateway.baseUrl, "--upstream", "gpu=http://127.0.0.1:1"], {
      INFERMESH_API_KEY: apiKey,
    });
    expect(result.code).to.equal(2);
    expect(result.stderr.trim()).to.equal(
      "infermesh agent: --upstream: unknown upstream type 'gpu' (expected llm, stt, image, tts, embedding or rerank)",
    );
  });

  it("stops with one line saying why when the mesh refuses its key, exit 1", async () => {
    const revoked = await registry.keyFor("mallory");
    await registry.store.revokeApiKey((await registry.store.authenticate(revoked))?.keyId as string);
    const refused = spawnCli(["agent", "--mesh", gateway.baseUrl, "--upstream", `${simulator.url}`, "--id", "mallory-box"], {
      INFERMESH_API_KEY: revoked,
    });
    agent = refused;
    await waitFor("the line saying why", () => notJson(refused.stderr()).length > 0, START_DEADLINE_MS);
    expect(notJson(refused.stderr())).to.deep.equal([
      `infermesh agent: the mesh at ${gateway.baseUrl} refused this agent: invalid or revoked API key`,
    ]);
    await waitFor("the agent to exit once it has said why", () => refused.child.exitCode !== null, 10_000);
    const result = await refused.exited;
    expect([result.code, result.stdout]).to.deep.equal([1, ""]);
    expect(notJson(result.stderr)).to.have.length(1);
    expect(result.stderr).not.to.contain(revoked);
    expect(registry.server.table.get("mallory-box")).to.equal(undefined);
  });

  describe("with its key in a file", () => {
    let dir: string;

    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), "infermesh-agent-key-"));
    });

    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it("reads --api-key-file, keeping the key off its command line, and ignores a gateway's INFERMESH_REGISTRY and INFERMESH_LISTEN", async () => {
      const keyFile = join(dir, "key");
      writeFileSync(keyFile, `${apiKey}\n`, { mode: 0o600 });
      agent = spawnCli(
        ["agent", "--mesh", gateway.baseUrl, "--api-key-file", keyFile, "--upstream", `${simulator.url}`, "--id", "carol-file"],
        {
          INFERMESH_REGISTRY: "127.0.0.1:1",
          INFERMESH_LISTEN: "127.0.0.1:1",
        },
      );
      const attached = await agent.waitForLog("attached to the mesh");
      expect(attached).to.deep.include({ providerId: "carol-file", mesh: gateway.baseUrl });
      await waitFor("registration", () => registry.server.table.get("carol-file")?.online, 10_000);
      expect(registry.server.table.get("carol-file")?.ownerUserName).to.equal("carol");
      expect(registry.server.table.get("carol-file")?.endpoint, "attached where --mesh points").to.equal(gateway.grpcAddress);
      expect(agent.child.spawnargs.join(" ")).not.to.contain(apiKey);
      agent.child.kill("SIGTERM");
      expect((await agent.exited).code).to.equal(0);
    });

    it("stops with one line naming the file when it cannot read it, exit 2", async () => {
      const missing = join(dir, "no-such-key");
      const result = await runCli(["agent", "--mesh", gateway.baseUrl, "--api-key-file", missing, "--upstream", `${simulator.url}`], {});
      expect(result.code).to.equal(2);
      expect(result.stderr).to.equal(`infermesh agent: --api-key-file cannot read '${missing}': no such file\n`);
    });
  });
});
