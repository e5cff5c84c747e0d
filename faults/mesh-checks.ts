import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Agent, request } from "undici";
import { type Principal, type Provider, RegistryService } from "../gen/infermesh/v1/registry_pb.js";
import { type LinkProbe, probeLink } from "./agent-return.js";
import type { FaultMesh } from "./fault-mesh.js";
import { chatBody, sendChat } from "./load-driver.js";

/** CHECK_SETTLE_MS bounds the wait for every agent to be back in the registry after the last fault healed. */
const CHECK_SETTLE_MS = 20_000;
/** GAUGE_SETTLE_MS bounds the wait for the gateway's in-flight gauge to fall back to zero. */
const GAUGE_SETTLE_MS = 5_000;
const CHECK_TIMEOUT_MS = 10_000;

/** Check is one end-of-run check: a process serves, or a gauge is back where it belongs. */
export interface Check {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
  /**
   * reported marks a check stricter than what the suite promises: it is printed with its figures on every run, and a
   * failure of it does not fail the run.
   */
  readonly reported?: true;
}

/** callerOf asks the registry (mesh token) whose the run's API key is, for the calls made down the agents' links. */
export async function callerOf(mesh: FaultMesh): Promise<Principal | undefined> {
  const registry = createClient(RegistryService, createGrpcTransport({ baseUrl: mesh.registryUrl }));
  return registry
    .authenticate({ apiKey: mesh.apiKey }, { headers: { authorization: `Bearer ${mesh.meshToken}` }, timeoutMs: CHECK_TIMEOUT_MS })
    .then((response) => response.principal)
    .catch(() => undefined);
}

/**
 * checkMesh runs after the load: every process still alive must serve. The registry lists every agent online (mesh
 * token) and attached to one gateway, each agent answers a chat completion sent down its link (AgentService.Infer at
 * the gateway, as a peer gateway calls it: so the link, the agent and its simulator serve), each simulator lists its
 * model, the gateway answers a streamed and a plain chat completion, and its in-flight gauge is back at 0.
 */
export async function checkMesh(mesh: FaultMesh, now: () => number, probe: LinkProbe): Promise<Check[]> {
  const checks: Check[] = [];
  const transport = createGrpcTransport({ baseUrl: mesh.registryUrl });
  const registry = createClient(RegistryService, transport);
  const headers = { authorization: `Bearer ${mesh.meshToken}` };
  const providers = new Map<string, Provider>();
  const settleBy = Date.now() + CHECK_SETTLE_MS;
  let registryError = "";
  while (Date.now() < settleBy) {
    try {
      const listed = await registry.listProviders({}, { headers, timeoutMs: CHECK_TIMEOUT_MS });
      providers.clear();
      for (const provider of listed.providers) if (provider.online) providers.set(provider.id, provider);
      registryError = "";
      if (mesh.agentIds.every((id) => providers.has(id))) break;
    } catch (error) {
      registryError = error instanceof Error ? error.message : String(error);
    }
    await sleep(200);
  }
  checks.push({
    name: "registry lists every agent online",
    ok: registryError === "" && mesh.agentIds.every((id) => providers.has(id)),
    detail: registryError || `online: ${[...providers.keys()].sort().join(", ") || "none"}`,
  });
  // One gateway: every agent's record says its link is there, at the gateway's internal address.
  const attachments = new Set(mesh.agentIds.map((id) => `${providers.get(id)?.gatewayId ?? "?"} at ${providers.get(id)?.endpoint ?? "?"}`));
  checks.push({
    name: "registry records every agent attached to the gateway",
    ok: attachments.size === 1 && mesh.agentIds.every((id) => providers.get(id)?.endpoint === mesh.gatewayGrpc),
    detail: [...attachments].join("; "),
  });

  for (const [i, id] of mesh.agentIds.entries()) {
    const name = `agent-${i + 1} (${id}) and sim-${i + 1} serve a call sent down the agent's link`;
    if (!providers.has(id)) {
      checks.push({ name, ok: false, detail: "not online in the registry" });
      continue;
    }
    checks.push({ name, ...(await probeLink(probe, id, `fault-check-${id}`, CHECK_TIMEOUT_MS)) });
  }

  for (const [i, url] of mesh.simUrls.entries()) {
    const name = `sim-${i + 1} lists its model`;
    try {
      const response = await request(`${url}/v1/models`, { signal: AbortSignal.timeout(CHECK_TIMEOUT_MS) });
      const text = await response.body.text();
      checks.push({ name, ok: response.statusCode === 200 && text.includes("sim-llama"), detail: `HTTP ${response.statusCode}` });
    } catch (error) {
      checks.push({ name, ok: false, detail: error instanceof Error ? error.message : String(error) });
    }
  }

  const dispatcher = new Agent({ headersTimeout: 0, bodyTimeout: 0 });
  try {
    const target = { gatewayUrl: mesh.gatewayUrl, apiKey: mesh.apiKey, now, clientTimeoutMs: CHECK_TIMEOUT_MS };
    for (const stream of [true, false]) {
      const record = await sendChat(
        dispatcher,
        target,
        `fault-check-${stream ? "stream" : "plain"}`,
        chatBody("sim-llama", stream, 8, 200, "check"),
        stream,
        8,
      );
      checks.push({
        name: `the gateway answers a ${stream ? "streamed" : "plain"} chat completion`,
        ok: record.outcome === "succeeded",
        detail: `${record.outcome}: ${record.detail}`,
      });
    }
    let inFlight = Number.NaN;
    let gaugeError = "";
    const gaugeBy = Date.now() + GAUGE_SETTLE_MS;
    do {
      try {
        const response = await request(`${mesh.metricsUrl}/metrics`, { dispatcher, signal: AbortSignal.timeout(CHECK_TIMEOUT_MS) });
        inFlight = gaugeSum(await response.body.text(), "infermesh_gateway_requests_in_flight");
        gaugeError = "";
      } catch (error) {
        gaugeError = error instanceof Error ? error.message : String(error);
      }
      if (inFlight === 0) break;
      await sleep(200);
    } while (Date.now() < gaugeBy);
    checks.push({
      name: "the gateway's infermesh_gateway_requests_in_flight is back at 0",
      ok: inFlight === 0,
      detail: gaugeError || `value ${inFlight}`,
    });
  } finally {
    await dispatcher.close();
  }
  for (const process of mesh.all()) {
    checks.push({ name: `${process.name} is running`, ok: process.state === "running", detail: `${process.state}, pid ${process.pid}` });
  }
  return checks;
}

/** gaugeSum adds up every series of a metric in a Prometheus text exposition. */
export function gaugeSum(exposition: string, metric: string): number {
  let sum = 0;
  for (const line of exposition.split("\n")) {
    if (!line.startsWith(`${metric}{`) && !line.startsWith(`${metric} `)) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}
