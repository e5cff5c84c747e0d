import { expect } from "chai";
import { classifyAnswer } from "../faults/answer-classifier.js";
import { FAULT_KINDS, planFaults } from "../faults/fault-schedule.js";
import { type FaultSuiteResult, removeRunDir, runFaultSuite, SHORT_FORM } from "../faults/fault-suite.js";
import { createRandom } from "../faults/seeded-random.js";

// The fault suite's short form: real processes (a registry, a gateway, three agents each with its own simulator),
// a bounded load of streamed and plain chat completions, and every fault kind once while it runs.

describe("the fault suite (short form)", function () {
  this.timeout(120_000);
  let result: FaultSuiteResult;

  before(async () => {
    result = await runFaultSuite({ ...SHORT_FORM, seed: 7 });
  });

  after(() => {
    // A failed run keeps its folder (processes' logs and requests.json) for diagnosis; the report names it.
    if (result?.passed) removeRunDir(result.runDir);
  });

  it("strikes every fault kind: agents, simulators and the registry, SIGKILLed and SIGSTOPped", () => {
    const struck = result.faults.filter((f) => f.injectedAtMs !== undefined && f.healedAtMs !== undefined);
    expect(new Set(struck.map((f) => f.kind)), result.report).to.have.keys(...FAULT_KINDS);
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
        restartAllowanceMs: 3_000,
        maxConcurrent: SHORT_FORM.maxConcurrentFaults,
      });
    expect(plan(7)).to.deep.equal(plan(7));
    for (const seed of [1, 2, 3, 7, 42, 99, 1234])
      expect(new Set(plan(seed).map((f) => f.kind)), `seed ${seed}`).to.have.keys(...FAULT_KINDS);
  });
});
