import { expect } from "chai";
import { Agent as UndiciAgent, fetch as undiciFetch } from "undici";
import { readServerTls } from "../services/shared/tls-files.js";
import { createSimulator, type Simulator } from "../services/sim/simulator.js";
import { type CliProcess, type CliResult, START_DEADLINE_MS, spawnCli } from "./support/cli-process.js";
import { type GatewayFixture, startGateway } from "./support/gateway-fixture.js";
import { type RegistryFixture, startRegistry } from "./support/registry-fixture.js";
import { testCertificates } from "./support/test-certificates.js";
import { waitFor } from "./support/wait-for.js";

// "Every client takes https:// URLs and a --ca-file FILE (and honours NODE_EXTRA_CA_CERTS)": an `infermesh agent`
// process given no --ca-file trusts a private CA named by NODE_EXTRA_CA_CERTS, as Node's own clients do; without it,
// the same agent stops at once with one line saying what to trust, rather than dialling a gateway it never will.

const MODEL = "extra-ca-model";

describe("an agent process and NODE_EXTRA_CA_CERTS", function () {
  this.timeout(2 * START_DEADLINE_MS);
  const certificates = testCertificates();
  const trusting = new UndiciAgent({ connect: { ca: certificates.ca } });
  let registry: RegistryFixture;
  let gateway: GatewayFixture;
  let simulator: Simulator;
  let meshUrl: string;
  let key: string;
  /** trusted and untrusted start together, their compile and start-up overlapping, and each test reads one. */
  let trusted: CliProcess;
  let untrusted: CliProcess;
  const started: CliProcess[] = [];

  before(async () => {
    registry = await startRegistry({ heartbeatIntervalMs: 200 });
    key = await registry.keyFor("erin");
    gateway = await startGateway(registry.address, { tls: readServerTls(certificates.certFile, certificates.keyFile) });
    // The certificate names 127.0.0.1; the fixture's base URL says http only because it does not know about TLS.
    meshUrl = `https://127.0.0.1:${new URL(gateway.baseUrl).port}`;
    simulator = createSimulator({ models: [{ id: MODEL }] });
    await simulator.listen();
    trusted = startAgent("trusting-box", certificates.caFile);
    untrusted = startAgent("untrusting-box", undefined);
  });

  after(async () => {
    for (const agent of started) {
      if (agent.child.exitCode === null && agent.child.signalCode === null) agent.child.kill("SIGKILL");
      await agent.exited;
    }
    await trusting.close();
    await gateway.stop();
    await simulator.close();
    await registry.stop();
  });

  /** startAgent runs `infermesh agent` against the TLS gateway, without --ca-file, with NODE_EXTRA_CA_CERTS as given. */
  const startAgent = (name: string, extraCaCerts: string | undefined): CliProcess => {
    // An undefined variable is left out of the child's environment, whatever the test runner's shell exported.
    const agent = spawnCli(["agent", "--mesh", meshUrl, "--upstream", `llm=${simulator.url}`, "--name", name], {
      INFERMESH_API_KEY: key,
      NODE_EXTRA_CA_CERTS: extraCaCerts,
    });
    started.push(agent);
    return agent;
  };

  it("attaches over https to a gateway whose certificate that CA signed, and serves a chat through it", async () => {
    const ready = await trusted.waitForLog("agent ready");
    expect(ready).to.deep.include({ attached: true });
    expect(gateway.gateway.links.attached(String(ready.providerId)), "its link is on the TLS gateway").to.equal(true);
    await waitFor("the model routable", () => [...gateway.gateway.table.providers()].some((p) => p.models.some((m) => m.id === MODEL)));
    const response = await undiciFetch(`${meshUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 2 }),
      dispatcher: trusting,
    });
    expect(response.status).to.equal(200);
    expect(((await response.json()) as { model: string }).model).to.equal(MODEL);
  });

  it("without it, stops at once with one clear line naming NODE_EXTRA_CA_CERTS and --ca-file, not dialling forever", async () => {
    // An agent that kept dialling would never exit: the deadline is the hang.
    let ended: CliResult | undefined;
    void untrusted.exited.then((result) => (ended = result));
    const result = await waitFor("the agent to exit", () => ended, START_DEADLINE_MS, 20);
    expect(result.code, result.stderr).to.equal(1);
    // The command's one line for people, among the agent's JSON log lines.
    const said = result.stderr.split("\n").filter((line) => line.startsWith("infermesh agent: "));
    expect(said, result.stderr).to.have.length(1);
    expect(said[0]).to.include(`the mesh at ${meshUrl} refused this agent`);
    expect(said[0]).to.match(/TLS certificate is not signed by a certificate authority this process trusts/);
    expect(said[0]).to.include("--ca-file");
    expect(said[0]).to.include("NODE_EXTRA_CA_CERTS");
    expect(result.stderr).not.to.include("agent ready");
    expect(result.stderr, "the API key is never logged").not.to.include(key);
  });
});
