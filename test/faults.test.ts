import { expect } from "chai";
import { AGENT_RETURN_LIMIT_MS } from "../faults/agent-return.js";
import { classifyAnswer } from "../faults/answer-classifier.js";
import type { InjectedFault } from "../faults/fault-injector.js";
import { FAULT_KINDS, isGatewayFault, isKill, planFaults } from "../faults/fault-schedule.js";
import { type FaultSuiteResult, removeRunDir, runFaultSuite, SHORT_FORM } from "../faults/fault-suite.js";
import { attributeGatewayCuts, GATEWAY_CUT_SLACK_MS } from "../faults/gateway-cuts.js";
import type { RequestRecord } from "../faults/load-driver.js";
import { createRandom } from "../faults/seeded-random.js";

// The fault suite's short form: real processes (a registry, a gateway, three agents attached to it each with its own
// simulator), a bounded load of streamed and plain chat completions, and every fault kind once while it runs.

describe("the fault suite (short form)", function () {
  // Eight processes start at once through tsx, the gateway restarts once, and the load lasts about half a minute.
  this.timeout(240_000);
  let result: FaultSuiteResult;

  before(async () => {
    result = await runFaultSuite({ ...SHORT_FORM, seed: 7 });
  });

  after(() => {
    // A failed run keeps its folder (processes' logs and requests.json) for diagnosis; the report names it.
    if (result?.passed) removeRunDir(result.runDir);
  });

  it("strikes every fault kind: agents, simulators, the registry and the gateway, SIGKILLed and SIGSTOPped", () => {
    const struck = result.faults.filter((f) => f.injectedAtMs !== undefined && f.healedAtMs !== undefined);
    expect(new Set(struck.map((f) => f.kind)), result.report).to.have.keys(...FAULT_KINDS);
  });

  it("has every agent back on a link within 5 s of the gateway's restart and of its SIGCONT", () => {
    const gatewayFaults = result.faults.filter((f) => isGatewayFault(f.kind) && f.healedAtMs !== undefined);
    expect(
      result.summary.returns.map((back) => back.fault.id),
      result.report,
    ).to.deep.equal(gatewayFaults.map((f) => f.id));
    for (const back of result.summary.returns) {
      expect(
        back.agents.map((agent) => [agent.name, agent.backAfterMs !== undefined && agent.backAfterMs <= AGENT_RETURN_LIMIT_MS]),
        `#${back.fault.id} ${back.fault.kind}\n${result.report}`,
      ).to.deep.equal(Array.from({ length: SHORT_FORM.agents }, (_, i) => [`agent-${i + 1}`, true]));
    }
  });

  it("loses nothing and hangs nothing: every request succeeded or failed with a clean error", () => {
    const { summary } = result;
    expect(summary.sent, result.report).to.be.above(50);
    expect(summary.counts.succeeded, result.report).to.be.above(0);
    expect({ hung: summary.counts.hung, lostStreams: summary.lostStreams, lostBodies: summary.lostBodies }, result.report).to.deep.equal({
      hung: 0,
      lostStreams: 0,
      lostBodies: 0,
    });
    expect(summary.counts.succeeded + summary.counts.clean_error).to.equal(summary.sent);
  });

  it("leaves every process serving, none crashed, and the gateway's in-flight gauge at 0", () => {
    const failed = result.summary.checks.filter((check) => !check.ok);
    expect(failed, result.report).to.deep.equal([]);
    expect(result.summary.crashes, result.report).to.deep.equal([]);
    expect(result.summary.checks.map((c) => c.name)).to.include("the gateway's infermesh_gateway_requests_in_flight is back at 0");
  });
});

describe("the fault suite's classifier", () => {
  const stream = (body: string, ending: "complete" | "reset" | "timeout" = "complete") =>
    classifyAnswer({
      stream: true,
      status: 200,
      contentType: "text/event-stream; charset=utf-8",
      body,
      ending,
      failure: ending === "complete" ? undefined : "x",
    });
  const chunk = 'data: {"choices":[{"delta":{"content":"a"}}]}\n\n';
  const errorFrame = 'data: {"error":{"message":"the provider is unreachable","type":"upstream_error","param":null,"code":null}}\n\n';

  it("tells a complete stream, one that ends with one error frame, and the ways to lose one", () => {
    expect(stream(`${chunk}${chunk}data: [DONE]\n\n`)).to.include({ outcome: "succeeded", events: 2 });
    expect(stream(`${chunk}${errorFrame}`)).to.include({
      outcome: "clean_error",
      phase: "mid-stream",
      error: "stream error frame upstream_error",
    });
    expect(stream(`${chunk}${chunk}`)).to.include({ outcome: "lost", phase: "mid-stream" });
    expect(stream(`${chunk}`, "reset")).to.include({ outcome: "lost", phase: "mid-stream" });
    expect(stream(`${chunk}data: {"choi`, "reset")).to.include({ outcome: "lost" });
    expect(stream(`${errorFrame}${chunk}`)).to.include({ outcome: "lost" });
    expect(stream(": keep-alive\n\n", "timeout")).to.include({ outcome: "hung", phase: "before the first event" });
  });

  it("tells a clean HTTP error from an error without OpenAI's envelope, a truncated body and a reset", () => {
    const plain = (status: number | undefined, body: string, ending: "complete" | "reset" | "timeout" = "complete") =>
      classifyAnswer({
        stream: false,
        status,
        contentType: "application/json",
        body,
        ending,
        failure: ending === "complete" ? undefined : "ECONNRESET",
      });
    expect(plain(502, '{"error":{"message":"m","type":"upstream_error","param":null,"code":null}}')).to.include({
      outcome: "clean_error",
      error: "502 upstream_error",
    });
    expect(plain(502, "Bad Gateway")).to.include({ outcome: "lost" });
    expect(plain(200, '{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}]}')).to.include({ outcome: "succeeded" });
    expect(plain(200, '{"choices":[{"message":{"content":"hi"')).to.include({ outcome: "lost", phase: "reading the body" });
    expect(plain(undefined, "", "reset")).to.include({ outcome: "lost", phase: "before headers" });
    expect(plain(undefined, "", "timeout")).to.include({ outcome: "hung", phase: "before headers" });
  });

  it("draws the same schedule from the same seed, and covers every kind in the short form's time", () => {
    const plan = (seed: number) =>
      planFaults(createRandom(seed).fork("schedule"), {
        agents: 3,
        kinds: FAULT_KINDS,
        startMs: 1_500,
        endMs: SHORT_FORM.loadMs - SHORT_FORM.settleMs,
        gapMs: SHORT_FORM.gapMs,
        killDownMs: SHORT_FORM.killDownMs,
        agentStallMs: SHORT_FORM.agentStallMs,
        simStallMs: SHORT_FORM.simStallMs,
        registryStallMs: SHORT_FORM.registryStallMs,
        gatewayStallMs: SHORT_FORM.gatewayStallMs,
        soloTailMs: AGENT_RETURN_LIMIT_MS,
        restartAllowanceMs: 3_000,
        maxConcurrent: SHORT_FORM.maxConcurrentFaults,
      });
    expect(plan(7)).to.deep.equal(plan(7));
    for (const seed of [1, 2, 3, 7, 42, 99, 1234]) {
      const faults = plan(seed);
      expect(new Set(faults.map((f) => f.kind)), `seed ${seed}`).to.have.keys(...FAULT_KINDS);
      // A gateway fault has the mesh alone: nothing else active when it strikes, nothing new until the agents are back.
      for (const g of faults.filter((f) => isGatewayFault(f.kind))) {
        const soloUntil = g.atMs + g.downMs + (isKill(g.kind) ? 3_000 : 0) + AGENT_RETURN_LIMIT_MS;
        const overlapping = faults.filter(
          (f) => f !== g && f.atMs < soloUntil && f.atMs + f.downMs + (isKill(f.kind) ? 3_000 : 0) > g.atMs,
        );
        expect(overlapping, `seed ${seed}, #${g.id} ${g.kind}`).to.deep.equal([]);
      }
    }
  });
});

describe("the fault suite's reading of a killed gateway", () => {
  const kill: InjectedFault = {
    id: 4,
    kind: "gateway-kill",
    target: "gateway",
    atMs: 10_000,
    downMs: 1_000,
    injectedAtMs: 10_000,
    healedAtMs: 14_000,
    pid: 1,
    note: "restarted as pid 2",
  };
  const record = (over: Partial<RequestRecord>): RequestRecord => ({
    outcome: "lost",
    phase: "mid-stream",
    detail: "the connection broke after 3 events without an error frame",
    events: 3,
    error: undefined,
    anomalies: [],
    id: "r",
    stream: true,
    maxTokens: 20,
    startMs: 9_000,
    endMs: 10_001,
    headersMs: 9_100,
    maxGapMs: 50,
    status: 200,
    ending: "reset",
    failure: "UND_ERR_SOCKET other side closed",
    tail: "",
    ...over,
  });

  it("counts a connection refused or cut while the gateway was dead as a clean error, and nothing else", () => {
    const [cut, refused, late, silent, early] = attributeGatewayCuts(
      [
        record({}),
        record({ startMs: 12_000, endMs: 12_001, headersMs: undefined, status: undefined, failure: "ECONNREFUSED connect ECONNREFUSED" }),
        record({ endMs: 14_000 + GATEWAY_CUT_SLACK_MS + 1 }),
        record({ ending: "complete", failure: undefined }),
        record({ endMs: 9_999 }),
      ],
      [kill],
    );
    expect([cut?.outcome, cut?.error]).to.deep.equal(["clean_error", "gateway killed: UND_ERR_SOCKET"]);
    expect([refused?.outcome, refused?.error]).to.deep.equal(["clean_error", "gateway killed: ECONNREFUSED"]);
    expect(late?.outcome, "a break after the restart and its slack").to.equal("lost");
    expect(silent?.outcome, "an answer that ended without [DONE] on an intact connection").to.equal("lost");
    expect(early?.outcome, "a break before the kill").to.equal("lost");
    expect(attributeGatewayCuts([record({})], [{ ...kill, kind: "gateway-stop" }])[0]?.outcome, "a frozen gateway cuts nothing").to.equal(
      "lost",
    );
  });
});
