import { request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { Metadata } from "@grpc/grpc-js";
import { expect } from "chai";
import { ServiceType } from "../../gen/infermesh/v1/capabilities_pb.js";
import {
  ErrorKind,
  type InferenceCall,
  type InferencePart,
  InferencePartSchema,
  InferenceServiceInferRequestSchema,
  Operation,
} from "../../gen/infermesh/v1/inference_pb.js";
import { Visibility } from "../../gen/infermesh/v1/registry_pb.js";
import { type Gate, gate } from "../../test/support/gate.js";
import { waitFor } from "../../test/support/wait-for.js";
import type { CallContext } from "../shared/grpc/server.js";
import type { UsageRecordData } from "../shared/usage-record.js";
import type { DispatcherOptions } from "./dispatcher.js";
import { DEFAULT_GUARDRAILS } from "./guardrails.js";
import { ALICE_KEY, createInMemoryGateway, type InMemoryGateway, type ProviderInit } from "./test-support/in-memory-gateway.js";
import { AnswerTally, MAX_RECORDED_MODEL_CHARS } from "./usage-capture.js";

/** PartInit is one part as written in a script: which case, and its value. */
type PartInit = NonNullable<Exclude<MessageInitShape<typeof InferencePartSchema>, InferencePart>["part"]>;
type UsageInit = NonNullable<Extract<PartInit, { case: "trailer" }>["value"]["usage"]>;
const part = (init: PartInit) => create(InferencePartSchema, { part: init });
const head = (contentType = "application/json", status = 200) => part({ case: "head", value: { status, contentType } });
const data = (text: string) => part({ case: "data", value: Buffer.from(text) });
const event = (text: string) => part({ case: "event", value: { data: Buffer.from(text), event: "" } });
const trailer = (usage: UsageInit) => part({ case: "trailer", value: { usage } });
const errorPart = (httpStatus: number, message: string) =>
  part({ case: "error", value: { kind: ErrorKind.UPSTREAM, httpStatus, type: "invalid_request_error", message } });

/** Script is a provider's answer: parts to yield, Gates to wait for. */
type Script = readonly (InferencePart | Gate)[];

/** ScriptedAgents answers every call with the current script. */
class ScriptedAgents implements Pick<DispatcherOptions["agents"], "infer" | "reachable"> {
  script: Script = [];
  calls = 0;

  infer(_provider: unknown, _call: InferenceCall, signal: AbortSignal): AsyncIterable<InferencePart> {
    this.calls++;
    const script = this.script;
    return (async function* () {
      for (const step of script) {
        if ("opened" in step) await Promise.race([step.opened, aborted(signal)]);
        else yield step;
      }
    })();
  }

  reachable(): boolean {
    return true;
  }
}

function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => signal.addEventListener("abort", () => reject(new ConnectError("cancelled", Code.Canceled))));
}

const bobsGpu: ProviderInit = {
  id: "p-bob",
  name: "bobs-gpu",
  ownerUserId: "u-bob",
  online: true,
  gatewayId: "gateway-1",
  sharing: { visibility: Visibility.PUBLIC },
  models: [
    { id: "Sim-Llama", serviceType: ServiceType.LLM },
    { id: "sim-image", serviceType: ServiceType.IMAGE },
  ],
};

/** Stack is the gateway's request path over scripted agents: the HTTP façade, the gRPC face, and the usage they record. */
interface Stack extends InMemoryGateway {
  readonly agents: ScriptedAgents;
  /** metricsInFlight is the gateway's in-flight gauge, summed over routes: 0 once every response closed. */
  metricsInFlight(): Promise<number>;
}

function stack(): Stack {
  const agents = new ScriptedAgents();
  const gateway = createInMemoryGateway({
    providers: [bobsGpu],
    agents,
    failureThreshold: 3,
    cooldownMs: 1_000,
    failoverAttempts: 0,
    bodyLimitBytes: 1 << 20,
    guardrails: DEFAULT_GUARDRAILS,
  });
  return {
    ...gateway,
    agents,
    async metricsInFlight() {
      return (await gateway.metrics.inFlight.get()).values.reduce((sum, v) => sum + v.value, 0);
    },
  };
}

/** Timing is a record's measured times, checked apart from the rest: ttfb within the duration, or 0 when no byte went out. */
function timing(record: UsageRecordData | undefined, nowMs: number): { time: string; ttfb: string } {
  if (!record) return { time: "no record", ttfb: "no record" };
  const arrivedAgo = nowMs - record.timeMs;
  return {
    time: arrivedAgo >= 0 && Math.abs(arrivedAgo - record.durationMs) <= 1 && record.durationMs > 0 ? "arrival" : `off: ${arrivedAgo}`,
    ttfb: record.ttfbMs === 0 ? "none" : record.ttfbMs > 0 && record.ttfbMs <= record.durationMs ? "within" : `off: ${record.ttfbMs}`,
  };
}

/** fields are a record without its id and times, for whole-shape comparisons. */
function fields(record: UsageRecordData | undefined): Partial<UsageRecordData> | undefined {
  if (!record) return undefined;
  const { id: _id, timeMs: _time, ttfbMs: _ttfb, durationMs: _duration, ...rest } = record;
  return rest;
}

const byBob = { providerId: "p-bob", providerOwnerId: "u-bob", providerName: "bobs-gpu" };
const noProvider = { providerId: "", providerOwnerId: "", providerName: "" };
const asAlice = { userId: "u-alice", keyId: "key-alice" };
const noUsage = { promptTokens: 0, completionTokens: 0, audioSeconds: 0, images: 0 };
const auth = { authorization: `Bearer ${ALICE_KEY}`, "content-type": "application/json" };
const chat = (extra: object = {}) => JSON.stringify({ model: "sim-llama", messages: [{ role: "user", content: "hi" }], ...extra });

describe("usage capture (services/gateway/usage-capture.ts)", () => {
  it("keeps at most 256 characters of a model name a client made up, so that one record cannot weigh megabytes", () => {
    expect(new AnswerTally("m".repeat(10 * 1024 * 1024)).model).to.equal("m".repeat(MAX_RECORDED_MODEL_CHARS));
    expect(new AnswerTally("sim-llama").model).to.equal("sim-llama");
  });

  it("records an answered chat request: the caller, the provider and its owner, the served model, the usage, the times", async () => {
    const s = stack();
    s.agents.script = [head(), data('{"choices":[]}'), trailer({ promptTokens: 3, completionTokens: 5, totalTokens: 8 })];
    const response = await s.app.inject({ method: "POST", url: "/v1/chat/completions", headers: auth, payload: chat() });
    expect(response.statusCode).to.equal(200);
    const [record, more] = await s.records();
    expect({ record: fields(record), more, timing: timing(record, s.clock.now()) }).to.deep.equal({
      record: {
        ...asAlice,
        ...byBob,
        model: "Sim-Llama",
        operation: "chat_completion",
        status: 200,
        ...noUsage,
        promptTokens: 3,
        completionTokens: 5,
      },
      more: undefined,
      timing: { time: "arrival", ttfb: "within" },
    });
  });

  it("waits for a stream's trailer that comes after its [DONE], when the client already has the whole answer", async () => {
    const s = stack();
    const late = gate();
    s.agents.script = [
      head("text/event-stream"),
      event('{"choices":[{"delta":{"content":"hi"}}]}'),
      event("[DONE]"),
      late,
      trailer({ promptTokens: 7, completionTokens: 11, totalTokens: 18 }),
    ];
    // A real socket: the response must really have finished, as it has for a client, before the trailer comes.
    const baseUrl = await s.app.listen({ host: "127.0.0.1", port: 0 });
    try {
      const response = await fetch(`${baseUrl}/v1/chat/completions`, { method: "POST", headers: auth, body: chat({ stream: true }) });
      expect((await response.text()).endsWith("data: [DONE]\n\n")).to.equal(true);
      await waitFor("the response to close", async () => (await s.metricsInFlight()) === 0);
      expect(await s.records()).to.deep.equal([]);
      late.open();
      const record = await waitFor("the stream's usage record", async () => (await s.records())[0]);
      expect({ record: fields(record), timing: timing(record, s.clock.now()) }).to.deep.equal({
        record: {
          ...asAlice,
          ...byBob,
          model: "Sim-Llama",
          operation: "chat_completion",
          status: 200,
          ...noUsage,
          promptTokens: 7,
          completionTokens: 11,
        },
        timing: { time: "arrival", ttfb: "within" },
      });
    } finally {
      late.open();
      await s.app.close();
    }
  });

  it("records images and audio seconds from the trailer's usage", async () => {
    const s = stack();
    s.agents.script = [head(), data('{"data":[{},{}]}'), trailer({ images: 2 })];
    await s.app.inject({
      method: "POST",
      url: "/v1/images/generations",
      headers: auth,
      payload: JSON.stringify({ model: "sim-image", prompt: "a cat", n: 2 }),
    });
    const [record] = await s.records();
    expect(fields(record)).to.deep.equal({
      ...asAlice,
      ...byBob,
      model: "sim-image",
      operation: "image_generation",
      status: 200,
      ...noUsage,
      images: 2,
    });
  });

  it("records a request no provider could take with the model as asked, no provider and its error status", async () => {
    const s = stack();
    const response = await s.app.inject({
      method: "POST",
      url: "/v1/chat/completions",
      headers: auth,
      payload: JSON.stringify({ model: "no-such-model", messages: [{ role: "user", content: "hi" }] }),
    });
    expect(response.statusCode).to.equal(404);
    const [record] = await s.records();
    expect({ record: fields(record), timing: timing(record, s.clock.now()) }).to.deep.equal({
      record: { ...asAlice, ...noProvider, model: "no-such-model", operation: "chat_completion", status: 404, ...noUsage },
      timing: { time: "arrival", ttfb: "none" },
    });
  });

  it("records a provider's refusal under that provider, and a body refused by the schema with no model", async () => {
    const s = stack();
    s.agents.script = [errorPart(400, "bad temperature")];
    const refused = await s.app.inject({ method: "POST", url: "/v1/chat/completions", headers: auth, payload: chat() });
    const invalid = await s.app.inject({ method: "POST", url: "/v1/chat/completions", headers: auth, payload: "{}" });
    expect([refused.statusCode, invalid.statusCode]).to.deep.equal([400, 400]);
    expect((await s.records()).map(fields)).to.deep.equal([
      { ...asAlice, ...byBob, model: "Sim-Llama", operation: "chat_completion", status: 400, ...noUsage },
      { ...asAlice, ...noProvider, model: "", operation: "chat_completion", status: 400, ...noUsage },
    ]);
  });

  it("records nothing for a request without a valid API key", async () => {
    const s = stack();
    const response = await s.app.inject({
      method: "POST",
      url: "/v1/chat/completions",
      headers: { ...auth, authorization: "Bearer sk-wrong" },
      payload: chat(),
    });
    expect(response.statusCode).to.equal(401);
    expect(await s.records()).to.deep.equal([]);
  });

  it("records 499 for a client that left before the answer began", async () => {
    const s = stack();
    const never = gate();
    s.agents.script = [never];
    await s.app.listen({ host: "127.0.0.1", port: 0 });
    try {
      const { port } = s.app.server.address() as AddressInfo;
      const client = httpRequest({ host: "127.0.0.1", port, method: "POST", path: "/v1/chat/completions", headers: auth });
      client.on("error", () => {});
      client.end(chat());
      await waitFor("the call to reach the provider", () => s.agents.calls > 0);
      client.destroy();
      const record = await waitFor("the usage record", async () => (await s.records())[0]);
      expect({ record: fields(record), timing: timing(record, s.clock.now()) }).to.deep.equal({
        record: { ...asAlice, ...noProvider, model: "sim-llama", operation: "chat_completion", status: 499, ...noUsage },
        timing: { time: "arrival", ttfb: "none" },
      });
    } finally {
      await s.app.close();
    }
  });

  describe("on the gRPC face", () => {
    function context(signal = new AbortController().signal, key = ALICE_KEY): CallContext {
      const metadata = new Metadata();
      metadata.set("authorization", `Bearer ${key}`);
      return { metadata, signal, peer: "test", method: "Infer", abort: () => {} };
    }
    const call = (model: string, body: object = { model, messages: [{ role: "user", content: "hi" }] }) =>
      create(InferenceServiceInferRequestSchema, {
        call: { operation: Operation.CHAT_COMPLETION, model, body: Buffer.from(JSON.stringify(body)) },
      });

    async function drain(parts: AsyncIterable<unknown>): Promise<string> {
      try {
        for await (const _ of parts);
        return "OK";
      } catch (error) {
        return error instanceof ConnectError ? Code[error.code] : String(error);
      }
    }

    it("records an answered call like an HTTP request, with the head's status", async () => {
      const s = stack();
      s.agents.script = [head(), data("{}"), trailer({ promptTokens: 2, completionTokens: 4, totalTokens: 6 })];
      expect(await drain(s.infer(call("sim-llama"), context()))).to.equal("OK");
      const [record] = await s.records();
      expect({ record: fields(record), timing: timing(record, s.clock.now()) }).to.deep.equal({
        record: {
          ...asAlice,
          ...byBob,
          model: "Sim-Llama",
          operation: "chat_completion",
          status: 200,
          ...noUsage,
          promptTokens: 2,
          completionTokens: 4,
        },
        timing: { time: "arrival", ttfb: "within" },
      });
    });

    it("records failures with the HTTP status their code maps to, and nothing for a caller without a valid key", async () => {
      const s = stack();
      s.agents.script = [errorPart(400, "bad temperature")];
      const outcomes = [
        await drain(s.infer(call("sim-llama"), context())),
        await drain(s.infer(call(""), context())),
        await drain(s.infer(call("no-such-model"), context())),
        await drain(s.infer(call("sim-llama"), context(undefined, "sk-wrong"))),
      ];
      expect(outcomes).to.deep.equal(["OK", "InvalidArgument", "NotFound", "Unauthenticated"]);
      expect((await s.records()).map(fields)).to.deep.equal([
        { ...asAlice, ...byBob, model: "Sim-Llama", operation: "chat_completion", status: 400, ...noUsage },
        { ...asAlice, ...noProvider, model: "", operation: "chat_completion", status: 400, ...noUsage },
        { ...asAlice, ...noProvider, model: "no-such-model", operation: "chat_completion", status: 404, ...noUsage },
      ]);
    });

    it("records 499 for a caller that cancelled", async () => {
      const s = stack();
      const never = gate();
      s.agents.script = [never];
      const controller = new AbortController();
      const outcome = drain(s.infer(call("sim-llama"), context(controller.signal)));
      await new Promise((resolve) => setImmediate(resolve));
      controller.abort();
      expect(await outcome).to.equal("Canceled");
      const [record] = await s.records();
      expect(fields(record)).to.deep.equal({
        ...asAlice,
        ...noProvider,
        model: "sim-llama",
        operation: "chat_completion",
        status: 499,
        ...noUsage,
      });
    });
  });
});
