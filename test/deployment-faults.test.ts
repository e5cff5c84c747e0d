import { expect } from "chai";
import { DEPLOYMENT_SHORT_FORM, type DeploymentResult, runDeploymentSuite } from "../faults/deployment-suite.js";
import { removeRunDir } from "../faults/fault-suite.js";
import { skipWithoutNginx } from "./support/nginx-fixture.js";
import { skipWithoutPostgres } from "./support/postgres-fixture.js";
import { skipWithoutRedis } from "./support/redis-fixture.js";

/**
 * RECONNECT_LIMIT_MS bounds how long the agents may be away after a gateway's SIGKILL (from the signal) or nginx's
 * (from its restart): the issue's "loses no agent for longer than its reconnect (under 5 s)", the agents' backoff
 * being capped at 3 s.
 */
const RECONNECT_LIMIT_MS = 5_000;

describe("a whole deployment under faults: nginx, 2 gateways, 2 registries, PostgreSQL, Redis", function () {
  // Each target is down 5 s twice, the deployment heals in between, and the processes start on a loaded machine.
  this.timeout(230_000);
  let result: DeploymentResult | undefined;

  before(async function () {
    skipWithoutNginx(this);
    skipWithoutPostgres(this);
    skipWithoutRedis(this);
    result = await runDeploymentSuite({ ...DEPLOYMENT_SHORT_FORM });
    console.log(result.report.replace(/^/gm, "      "));
  });

  after(() => {
    if (result?.passed) removeRunDir(result.runDir);
  });

  const check = (name: string) => {
    const found = result?.checks.find((c) => c.name === name);
    expect(found, `check '${name}'`).to.not.equal(undefined);
    return found as { ok: boolean; detail: string };
  };
  const expectOk = (name: string) => {
    const found = check(name);
    expect(found.ok, `${name}: ${found.detail}`).to.equal(true);
  };

  it("struck each target with SIGKILL and SIGSTOP, under load", () => {
    const phases = result?.phases ?? [];
    expect(phases.map((p) => p.label.replace(/-\d /, "-N "))).to.deep.equal([
      "gateway-N SIGKILL",
      "gateway-N SIGSTOP",
      "registry-N SIGKILL",
      "registry-N SIGSTOP",
      "redis SIGKILL",
      "redis SIGSTOP",
      "nginx SIGKILL",
      "nginx SIGSTOP",
    ]);
    for (const figures of result?.figures ?? []) expect(figures.sent, figures.label).to.be.greaterThan(0);
  });

  it("recovered from every fault, with the agents attached again after each gateway and nginx fault", () => {
    for (const phase of result?.phases ?? []) expectOk(`${phase.label}: the deployment recovered`);
    for (const phase of (result?.phases ?? []).filter((p) => (p.target === "gateway" && p.kind === "kill") || p.target === "nginx")) {
      expect(phase.agentsBackAfterMs, phase.label).to.be.a("number");
    }
  });

  // Only the SIGKILLs: a gateway SIGSTOPped for 5 s keeps its agents away longer (they notice its silence after
  // 3.5 s, and may dial it again through nginx while it is still frozen); the report shows that figure.
  it("had the agents back within their reconnect after a gateway's SIGKILL, and after nginx's restart", () => {
    const kills = (result?.phases ?? []).filter((p) => p.kind === "kill");
    const gateway = kills.find((p) => p.target === "gateway");
    const nginx = kills.find((p) => p.target === "nginx");
    expect(gateway?.agentsBackAfterMs, "gateway SIGKILL, from the signal").to.be.a("number").below(RECONNECT_LIMIT_MS);
    expect(nginx?.agentsBackAfterHealMs, "nginx SIGKILL, from its restart").to.be.a("number").below(RECONNECT_LIMIT_MS);
  });

  it("struck the registry replica a gateway's link used, which moved to the other", () => {
    for (const phase of (result?.phases ?? []).filter((p) => p.target === "registry")) {
      expect(Math.max(...phase.moves), phase.label).to.be.greaterThan(0);
    }
  });

  it("left no request hung", () => expectOk("0 hung"));

  it("lost no request: every failure was a clean error", () => expectOk("0 lost: every failure was a clean error"));

  // Reported on every run, not asserted: a gateway SIGSTOPped for longer than the links' silence limit (3.5 s) is dead
  // to its agents as a killed one is, and the requests in flight on it end cleanly when it wakes (counted as its).
  // But in the few hundred milliseconds after it wakes, before its agents' new links are known everywhere, a request
  // can draw two agents whose routes are in flux ("not attached to this gateway", "not online") and fail, cleanly,
  // with the one failover it is allowed. The next test bounds those failures to that window.
  it.skip("failed only requests in flight on the killed or stopped gateway, or cut by nginx's death", () =>
    expectOk("failures only in flight on the killed or stopped gateway, or cut by nginx's death"));

  // nginx's faults cut every client off: requests in flight through it when it dies break (a connection error, never
  // a hang), it refuses new ones until it is back, and then none finds an agent until they have dialled it again.
  it("failed other requests only, cleanly, between a gateway's or nginx's fault and its agents' return", () =>
    expectOk("other failures only between a gateway's or nginx's fault and its agents' return"));

  // Each gateway runs with --usage-spool: a record is on disk before its request is done with, so the gateway that
  // restarts after a SIGKILL sends what the killed one had not, under the same ids.
  it("counted every successful request's usage once in PostgreSQL", () =>
    expectOk("usage rows in PostgreSQL == successful requests, each once"));

  it("counted no usage twice, and lost usage only of successes just before a gateway's SIGKILL", () => {
    expectOk("no usage row counted twice or without a request");
    expectOk("usage rows missing only for successes just before a gateway's SIGKILL");
  });

  it("kept every provider online on both replicas through the registry and Redis faults", () => {
    expectOk("no provider went offline during the registry and Redis faults");
    expectOk("both replicas list every agent online");
  });

  // Not asserted: agents attached to a gateway frozen for longer than the links' silence limit are unreachable until
  // they attach again, and nginx may hand their new link to that same frozen gateway (its kernel still accepts the
  // connection), so some stay away until it wakes and are offline for that while. The report prints this check's
  // outcome on every run; a late heartbeat from a link they left can no longer bring them back there (link sequence).
  it.skip("kept every provider online through the gateway faults", () => expectOk("no provider went offline during the gateway faults"));

  it("serves on both gateways and still enforces the per-key limits across them after recovery", () => {
    expectOk("gateway-1 routes to every agent and answers");
    expectOk("gateway-2 routes to every agent and answers");
    expectOk("rate limit across both gateways");
    expectOk("concurrent-stream limit across both gateways");
  });

  it("had no process exit by itself", () => expectOk("no process exited by itself"));
});
