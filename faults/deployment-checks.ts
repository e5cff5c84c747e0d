import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { type Agent, request } from "undici";
import type { Deployment } from "./deployment-mesh.js";
import type { ReplicaWatch } from "./deployment-watch.js";
import { FAULT_MODEL } from "./fault-mesh.js";
import { chatBody } from "./load-driver.js";
import type { Check } from "./mesh-checks.js";

/** METRICS_TIMEOUT_MS bounds one read of a gateway's metrics: a frozen gateway does not answer at all. */
const METRICS_TIMEOUT_MS = 500;
/** USAGE_SETTLE_MS bounds the wait for the gateways' last usage batches to reach PostgreSQL. */
const USAGE_SETTLE_MS = 15_000;
/** USAGE_QUIET_MS is how long the usage rows must stay the same to count as settled. */
const USAGE_QUIET_MS = 2_500;
const CHECK_TIMEOUT_MS = 10_000;

/** agentLinks reads each gateway's open agent links from its metrics; undefined for a gateway that did not answer. */
export async function agentLinks(deployment: Deployment): Promise<(number | undefined)[]> {
  return Promise.all(
    deployment.metricsUrls.map(async (url) => {
      try {
        const response = await request(`${url}/metrics`, { signal: AbortSignal.timeout(METRICS_TIMEOUT_MS) });
        const text = await response.body.text();
        const match = /^infermesh_gateway_agent_links(?:\{[^}]*\})?\s+(\S+)/m.exec(text);
        return match ? Number(match[1]) : undefined;
      } catch {
        return undefined;
      }
    }),
  );
}

/** everyoneOnline tells whether both replicas' watches list every agent online. */
export function everyoneOnline(watches: readonly ReplicaWatch[], agentIds: readonly string[]): boolean {
  return watches.every((watch) => agentIds.every((id) => watch.online().has(id)));
}

/** UsageTally compares what the clients saw succeed with the usage rows PostgreSQL holds for the load's keys. */
export interface UsageTally {
  /** succeeded is the number of requests the clients saw succeed. */
  readonly succeeded: number;
  /** rowsByStatus counts the load keys' usage rows by the status they record. */
  readonly rowsByStatus: ReadonlyMap<number, number>;
  /** okRows is rowsByStatus' 200. */
  readonly okRows: number;
  /** missingTokens and extraTokens are the completion-token counts of successes without a row, and of rows without one. */
  readonly missingTokens: readonly number[];
  readonly extraTokens: readonly number[];
}

/**
 * tallyUsage waits until the load keys' usage rows stop changing (the gateways send theirs every second), then
 * matches the rows of answered requests (status 200) against the successful requests, by completion tokens: usage
 * rows carry the gateway's own record id, not the client's request id, so each success is matched to one row of its
 * length, and what is left on either side is missing or extra.
 */
export async function tallyUsage(deployment: Deployment, succeededTokens: readonly number[]): Promise<UsageTally> {
  const client = new pg.Client({ connectionString: deployment.databaseUrl });
  await client.connect();
  try {
    const keyIds = [...deployment.keys.loadKeyIds];
    const count = async () => {
      const result = await client.query<{ n: string }>("SELECT count(*) AS n FROM usage WHERE key_id = ANY($1)", [keyIds]);
      return Number(result.rows[0]?.n ?? 0);
    };
    const deadline = Date.now() + USAGE_SETTLE_MS;
    let last = await count();
    let quietSince = Date.now();
    while (Date.now() < deadline && Date.now() - quietSince < USAGE_QUIET_MS) {
      await sleep(250);
      const now = await count();
      if (now !== last) {
        last = now;
        quietSince = Date.now();
      }
    }
    const byStatus = await client.query<{ status: number; n: string }>(
      "SELECT status, count(*) AS n FROM usage WHERE key_id = ANY($1) GROUP BY status ORDER BY status",
      [keyIds],
    );
    const rowsByStatus = new Map(byStatus.rows.map((row) => [row.status, Number(row.n)]));
    const tokens = await client.query<{ completion_tokens: string }>(
      "SELECT completion_tokens FROM usage WHERE key_id = ANY($1) AND status = 200",
      [keyIds],
    );
    const rows = new Map<number, number>();
    for (const row of tokens.rows) rows.set(Number(row.completion_tokens), (rows.get(Number(row.completion_tokens)) ?? 0) + 1);
    const missingTokens: number[] = [];
    for (const t of succeededTokens) {
      const left = rows.get(t) ?? 0;
      if (left > 0) rows.set(t, left - 1);
      else missingTokens.push(t);
    }
    const extraTokens = [...rows].flatMap(([t, n]) => Array<number>(n).fill(t));
    return {
      succeeded: succeededTokens.length,
      rowsByStatus,
      okRows: rowsByStatus.get(200) ?? 0,
      missingTokens: missingTokens.sort((a, b) => a - b),
      extraTokens: extraTokens.sort((a, b) => a - b),
    };
  } finally {
    await client.end();
  }
}

/**
 * checkRateLimit spends the rate-check key's per-minute inference budget through nginx, which spreads the requests
 * over both gateways: exactly rpm requests may pass, whichever gateway takes them, and the rest get 429. The
 * requests name a model nobody serves, so each is answered at once (404) and still counts against the budget.
 */
export async function checkRateLimit(deployment: Deployment, dispatcher: Agent, rpm: number): Promise<Check> {
  const extra = 4;
  const statuses: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < rpm + extra) {
      next++;
      const response = await request(`${deployment.url}/v1/chat/completions`, {
        method: "POST",
        dispatcher,
        headers: { authorization: `Bearer ${deployment.keys.rate}`, "content-type": "application/json" },
        body: chatBody("no-such-model", false, 1, 1000, "rate check"),
        signal: AbortSignal.timeout(CHECK_TIMEOUT_MS),
      });
      await response.body.dump();
      statuses.push(response.statusCode);
    }
  };
  try {
    await Promise.all(Array.from({ length: 8 }, worker));
  } catch (error) {
    return { name: "rate limit across both gateways", ok: false, detail: `a request failed: ${(error as Error).message}` };
  }
  const limited = statuses.filter((s) => s === 429).length;
  const passed = statuses.length - limited;
  const others = [...new Set(statuses.filter((s) => s !== 429))].join(", ");
  return {
    name: "rate limit across both gateways",
    ok: passed === rpm && limited === extra,
    detail: `${rpm + extra} requests of one key at ${rpm}/min through nginx: ${passed} passed (status ${others}), ${limited} got 429`,
  };
}

/**
 * checkStreamLimit opens the stream-check key's most concurrent streams through nginx (one after the other, so that
 * nginx's round robin puts them on both gateways), then one more, which must get 429 wherever it lands.
 */
export async function checkStreamLimit(deployment: Deployment, dispatcher: Agent, maxStreams: number): Promise<Check> {
  const name = "concurrent-stream limit across both gateways";
  const controller = new AbortController();
  const open = async () =>
    request(`${deployment.url}/v1/chat/completions`, {
      method: "POST",
      dispatcher,
      headers: { authorization: `Bearer ${deployment.keys.streams}`, "content-type": "application/json" },
      body: chatBody(FAULT_MODEL, true, 200, 20, "stream limit check"),
      signal: controller.signal,
    });
  const held: Awaited<ReturnType<typeof open>>[] = [];
  try {
    for (let i = 0; i < maxStreams; i++) {
      const response = await open();
      held.push(response);
      if (response.statusCode !== 200) return { name, ok: false, detail: `stream ${i + 1} of ${maxStreams} got ${response.statusCode}` };
    }
    const over = await open();
    const text = await over.body.text();
    const ok = over.statusCode === 429 && text.includes("concurrent_streams_exceeded");
    return { name, ok, detail: `${maxStreams} streams open, the next got ${over.statusCode}: ${text.slice(0, 160)}` };
  } catch (error) {
    return { name, ok: false, detail: `a request failed: ${(error as Error).message}` };
  } finally {
    controller.abort();
    await Promise.all(held.map((r) => r.body.dump().catch(() => {})));
  }
}

/**
 * checkGatewaysServe asks each gateway directly (not through nginx) for its models and a chat completion: each must
 * route to every agent and answer.
 */
export async function checkGatewaysServe(deployment: Deployment): Promise<Check[]> {
  const headers = { authorization: `Bearer ${deployment.keys.probe}`, "content-type": "application/json" };
  return Promise.all(
    deployment.gatewayUrls.map(async (url, i): Promise<Check> => {
      const name = `gateway-${i + 1} routes to every agent and answers`;
      try {
        const models = await request(`${url}/v1/models`, { headers, signal: AbortSignal.timeout(CHECK_TIMEOUT_MS) });
        const list = (await models.body.json()) as { data?: { id: string; owned_by: string }[] };
        const owners = list.data?.find((m) => m.id === FAULT_MODEL)?.owned_by.split(",") ?? [];
        const chat = await request(`${url}/v1/chat/completions`, {
          method: "POST",
          headers,
          body: chatBody(FAULT_MODEL, false, 4, 200, "serve check"),
          signal: AbortSignal.timeout(CHECK_TIMEOUT_MS),
        });
        await chat.body.dump();
        const ok = owners.length === deployment.agentIds.length && chat.statusCode === 200;
        return { name, ok, detail: `${owners.length} of ${deployment.agentIds.length} agents listed; chat ${chat.statusCode}` };
      } catch (error) {
        return { name, ok: false, detail: (error as Error).message };
      }
    }),
  );
}
