import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { DEV_MODELS } from "../src/cli/dev-command.js";
import { type CliProcess, runCli, START_DEADLINE_MS, spawnCli } from "./support/cli-process.js";
import { freeLoopbackPort, missingTools, promtoolCheckConfig, promtoolCheckMetrics, queryPrometheus } from "./support/prometheus-tools.js";
import { waitFor } from "./support/wait-for.js";

// Every service's /metrics passes promtool, and a real Prometheus scrapes a real mesh (the `infermesh` commands, as
// operators run them) with the configuration `infermesh metrics-config` prints.

const MESH = "prometheus-test-mesh-token-0123";

/** families lists the metric families an exposition declares, from its # TYPE lines. */
function families(exposition: string): string[] {
  return [...exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => `${m[1]} ${m[2]}`);
}

async function scrape(address: string): Promise<string> {
  const response = await fetch(`http://${address}/metrics`);
  expect(response.status).to.equal(200);
  expect(response.headers.get("content-type")).to.match(/^text\/plain; version=0\.0\.4/);
  return response.text();
}

describe("Prometheus: /metrics of every service, promtool and a real Prometheus", function () {
  this.timeout(4 * START_DEADLINE_MS);
  const missing = missingTools("promtool", "prometheus");
  let dir: string;
  const processes: CliProcess[] = [];
  let prometheus: ChildProcess | undefined;
  const stopped = (child: ChildProcess) =>
    new Promise<void>((resolve) =>
      child.exitCode !== null || child.signalCode !== null ? resolve() : child.once("close", () => resolve()),
    );

  before(function () {
    if (missing.length > 0) {
      const message = `${missing.join(" and ")} not on PATH (Debian package 'prometheus')`;
      // CI installs it (.ci/run): there, a missing tool is a failure, not a reason to skip.
      if (process.env.CI) throw new Error(message);
      console.warn(`      skipped: ${message}`);
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), "infermesh-prometheus-"));
  });
  after(async () => {
    for (const child of [prometheus, ...processes.map((p) => p.child)]) {
      if (child && child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await stopped(child);
      }
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const start = (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const cli = spawnCli(args, { INFERMESH_LOG_LEVEL: "info", ...env });
    processes.push(cli);
    return cli;
  };

  it("scrapes gateway, registry and agent run as commands, each passing promtool, and queries counters back", async () => {
    const db = join(dir, "infermesh.db");
    const registry = start(["registry", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--db", db], {
      INFERMESH_MESH_TOKEN: MESH,
    });
    const sim = start(["sim", "--listen", "127.0.0.1:0", "--model", "sim-llama"]);
    const registryReady = await registry.waitForLog("registry ready");
    // The registry makes its database; `infermesh keys` works on one that exists.
    const apiKey = (await runCli(["keys", "create", "--user", "alice", "--db", db])).stdout.trim();
    const registryMetrics = `127.0.0.1:${registryReady.metricsPort as number}`;
    const simUrl = (await sim.waitForLog("simulator ready")).url as string;
    const gateway = start(
      [
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--grpc-listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--registry",
        registryReady.listen as string,
      ],
      { INFERMESH_MESH_TOKEN: MESH },
    );
    const gatewayReady = await gateway.waitForLog("gateway ready");
    const gatewayAddress = gatewayReady.listen as string;
    // Metrics name every user's models: the operator's port serves them, the public one does not.
    const gatewayMetrics = `127.0.0.1:${gatewayReady.metricsPort as number}`;
    expect((await fetch(`http://${gatewayAddress}/metrics`)).status).to.equal(404);
    // The agent dials the gateway's public address, as OpenAI clients use it.
    const agent = start(["agent", "--mesh", `http://${gatewayAddress}`, "--upstream", `llm=${simUrl}`, "--metrics-listen", "127.0.0.1:0"], {
      INFERMESH_API_KEY: apiKey,
    });
    const agentMetrics = `127.0.0.1:${(await agent.waitForLog("agent ready")).metricsPort as number}`;

    const headers = { authorization: `Bearer ${apiKey}`, "content-type": "application/json" };
    await waitFor(
      "the gateway to route to the agent",
      async () =>
        ((await (await fetch(`http://${gatewayAddress}/v1/models`, { headers })).json()) as { data?: unknown[] }).data?.length === 1,
      15_000,
      50,
    );
    const chat = await fetch(`http://${gatewayAddress}/v1/chat/completions`, {
      method: "POST",
      headers,
      body: JSON.stringify({ model: "sim-llama", messages: [{ role: "user", content: "hi" }], max_tokens: 4 }),
    });
    expect(chat.status).to.equal(200);
    await chat.text();

    const expositions = {
      gateway: await scrape(gatewayMetrics),
      registry: await scrape(registryMetrics),
      agent: await scrape(agentMetrics),
    };
    for (const [service, exposition] of Object.entries(expositions)) {
      const lint = await promtoolCheckMetrics(exposition);
      expect(lint, `promtool check metrics on the ${service}'s /metrics`).to.deep.equal({ code: 0, output: "" });
      expect(families(exposition), service).to.include.members(["process_cpu_seconds_total counter", "nodejs_eventloop_lag_seconds gauge"]);
    }
    expect(families(expositions.gateway)).to.include.members([
      "infermesh_gateway_requests_total counter",
      "infermesh_gateway_request_duration_seconds histogram",
      "infermesh_gateway_time_to_first_token_seconds histogram",
      "infermesh_gateway_requests_in_flight gauge",
      "infermesh_gateway_tokens_total counter",
      "infermesh_gateway_agent_heartbeats_total counter",
      "infermesh_gateway_agent_links gauge",
      "infermesh_gateway_link_frames_dropped_total counter",
    ]);
    expect(expositions.gateway).to.match(
      /^infermesh_gateway_tokens_total\{operation="chat_completion",model="sim-llama",type="input"\} [1-9]/m,
    );
    expect(expositions.gateway).to.match(
      /^infermesh_gateway_tokens_total\{operation="chat_completion",model="sim-llama",type="output"\} 4$/m,
    );
    expect(families(expositions.registry)).to.include.members([
      "infermesh_registry_providers_online gauge",
      "infermesh_registry_watch_subscribers gauge",
      "infermesh_registry_heartbeats_total counter",
      "infermesh_registry_provider_expiries_total counter",
      "infermesh_registry_rpc_duration_seconds histogram",
    ]);
    expect(families(expositions.agent)).to.include.members([
      "infermesh_agent_requests_total counter",
      "infermesh_agent_requests_in_flight gauge",
      "infermesh_agent_requests_queued gauge",
      "infermesh_agent_upstreams_up gauge",
      "infermesh_agent_models_advertised gauge",
      "infermesh_agent_upstream_headers_seconds histogram",
      "infermesh_agent_upstream_duration_seconds histogram",
      "infermesh_agent_heartbeats_total counter",
    ]);

    const printed = await runCli([
      "metrics-config",
      "--gateway",
      gatewayMetrics,
      "--registry",
      registryMetrics,
      "--agent",
      agentMetrics,
      "--scrape-interval",
      "1",
    ]);
    expect(printed.code).to.equal(0);
    const configFile = join(dir, "prometheus.yml");
    writeFileSync(configFile, printed.stdout);
    expect((await promtoolCheckConfig(configFile)).code).to.equal(0);

    const port = await freeLoopbackPort();
    const prometheusUrl = `http://127.0.0.1:${port}`;
    prometheus = spawn(
      "prometheus",
      [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, "tsdb")}`, `--web.listen-address=127.0.0.1:${port}`],
      { stdio: "ignore" },
    );
    const up = await waitFor(
      "Prometheus to scrape all three jobs",
      async () => {
        const samples = await queryPrometheus(prometheusUrl, 'up{job=~"infermesh-.*"}').catch(() => []);
        return samples.length === 3 && samples.every((s) => s.value[1] === "1") ? samples : undefined;
      },
      30_000,
      250,
    );
    expect(up.map((s) => s.metric.job).sort()).to.deep.equal(["infermesh-agent", "infermesh-gateway", "infermesh-registry"]);

    const counted = async (query: string) =>
      waitFor(
        `'${query}' in Prometheus`,
        async () => {
          const samples = await queryPrometheus(prometheusUrl, query);
          return samples.length > 0 ? samples : undefined;
        },
        15_000,
        250,
      );
    const requests = await counted('infermesh_gateway_requests_total{route="/v1/chat/completions",status_class="2xx"}');
    expect(requests.map((s) => [s.metric.model, s.metric.instance, s.value[1]])).to.deep.equal([["sim-llama", gatewayMetrics, "1"]]);
    const agentCalls = await counted('infermesh_agent_requests_total{operation="chat_completion",outcome="ok"}');
    expect(agentCalls.map((s) => s.value[1])).to.deep.equal(["1"]);
    const heartbeats = await counted('infermesh_registry_heartbeats_total{outcome="accepted"}');
    expect(Number(heartbeats[0]?.value[1])).to.be.at.least(1);
  });

  it("`infermesh dev` serves the metrics of all three services on the gateway's /metrics, passing promtool", async () => {
    const dev = start(["dev", "--port", "0", "--registry-port", "0", "--data", join(dir, "dev")]);
    const metricsLine = await waitFor(
      "dev's metrics line",
      () =>
        dev
          .stdout()
          .split("\n")
          .find((line) => line.startsWith("# Prometheus metrics")),
      START_DEADLINE_MS,
      50,
    );
    const address = /http:\/\/(127\.0\.0\.1:\d+)\/metrics/.exec(metricsLine)?.[1] as string;
    // dev's last line comes once it listens for Ctrl-C.
    await waitFor("dev's key line", () => dev.stdout().includes("OPENAI_API_KEY="), START_DEADLINE_MS, 50);
    const exposition = await scrape(address);
    expect(await promtoolCheckMetrics(exposition)).to.deep.equal({ code: 0, output: "" });
    expect(families(exposition)).to.include.members([
      "infermesh_gateway_requests_total counter",
      "infermesh_registry_providers_online gauge",
      "infermesh_agent_models_advertised gauge",
      "process_cpu_seconds_total counter",
    ]);
    expect(exposition).to.match(/^infermesh_registry_providers_online\{service_type="llm"\} 1$/m);
    expect(exposition).to.match(new RegExp(`^infermesh_agent_models_advertised ${DEV_MODELS.length}$`, "m"));
    dev.child.kill("SIGINT");
    expect((await dev.exited).code).to.equal(0);
  });
});
