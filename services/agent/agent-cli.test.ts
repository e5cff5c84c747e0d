import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { type CliProcess, runCli, spawnCli } from "../../test/support/cli-process.js";
import { type RegistryFixture, startRegistry } from "../../test/support/registry-fixture.js";
import { waitFor } from "../../test/support/wait-for.js";
import { createSimulator, type Simulator } from "../sim/simulator.js";

describe("the infermesh agent command", function () {
  // Each run starts Node with tsx; a loaded 2-core machine needs the headroom.
  this.timeout(60_000);
  let registry: RegistryFixture;
  let simulator: Simulator;
  let apiKey: string;
  let agent: CliProcess | undefined;

  before(async () => {
    registry = await startRegistry({ heartbeatIntervalMs: 200 });
    apiKey = await registry.keyFor("carol");
    simulator = createSimulator({ models: [{ id: "sim-llama" }] });
    await simulator.listen();
  });

  after(async () => {
    if (agent && agent.child.exitCode === null) agent.child.kill("SIGKILL");
    await simulator.close();
    await registry.stop();
  });

  it("logs 'agent ready' with its models, registers, and on SIGTERM deregisters and exits 0, never logging the key", async () => {
    agent = spawnCli(["agent", "--listen", "127.0.0.1:0", "--upstream", `llm=${simulator.url}/v1`, "--id", "carol-box"], {
      INFERMESH_REGISTRY: registry.address,
      INFERMESH_API_KEY: apiKey,
    });
    const ready = await agent.waitForLog("agent ready");
    expect(ready).to.deep.include({ providerId: "carol-box", registry: `http://${registry.address}` });
    expect(ready.upstreams).to.deep.equal([{ url: simulator.url, type: "llm", up: true, models: [{ id: "sim-llama", type: "llm" }] }]);
    await waitFor("registration", () => registry.server.table.get("carol-box")?.online, 10_000);
    agent.child.kill("SIGTERM");
    const result = await agent.exited;
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stderr).to.contain('"msg":"deregistered from the registry"').and.to.contain('"msg":"agent stopped"');
    expect(result.stderr).not.to.contain(apiKey);
    expect(result.stderr, "nor its secret part").not.to.contain(apiKey.slice("im_".length + 16 + 1));
    expect(registry.server.table.get("carol-box")?.online).to.equal(false);
  });

  it("stops a bad command line with one line naming the flag, and exit code 2", async () => {
    const result = await runCli(["agent", "--registry", registry.address, "--upstream", "gpu=http://127.0.0.1:1"], {
      INFERMESH_API_KEY: apiKey,
    });
    expect(result.code).to.equal(2);
    expect(result.stderr.trim()).to.equal("infermesh agent: --upstream: unknown upstream type 'gpu' (expected llm, stt, image or tts)");
  });

  describe("with its key in a file", () => {
    let dir: string;

    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), "infermesh-agent-key-"));
    });

    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it("reads --api-key-file, keeping the key off its command line, and its own INFERMESH_AGENT_LISTEN over an exported INFERMESH_LISTEN", async () => {
      const keyFile = join(dir, "key");
      writeFileSync(keyFile, `${apiKey}\n`, { mode: 0o600 });
      agent = spawnCli(
        ["agent", "--registry", registry.address, "--api-key-file", keyFile, "--upstream", `${simulator.url}`, "--id", "carol-file"],
        {
          INFERMESH_LISTEN: "127.0.0.1:1",
          INFERMESH_AGENT_LISTEN: "127.0.0.1:0",
        },
      );
      const ready = await agent.waitForLog("registered with the registry");
      expect(ready).to.deep.include({ providerId: "carol-file" });
      expect(registry.server.table.get("carol-file")?.ownerUserName).to.equal("carol");
      expect(registry.server.table.get("carol-file")?.endpoint)
        .to.match(/^127\.0\.0\.1:\d+$/)
        .and.not.to.equal("127.0.0.1:1");
      expect(agent.child.spawnargs.join(" ")).not.to.contain(apiKey);
      agent.child.kill("SIGTERM");
      expect((await agent.exited).code).to.equal(0);
    });

    it("stops with one line naming the file when it cannot read it, exit 2", async () => {
      const missing = join(dir, "no-such-key");
      const result = await runCli(
        ["agent", "--registry", registry.address, "--api-key-file", missing, "--upstream", `${simulator.url}`],
        {},
      );
      expect(result.code).to.equal(2);
      expect(result.stderr).to.equal(`infermesh agent: --api-key-file cannot read '${missing}': no such file\n`);
    });
  });
});
