import { expect } from "chai";
import OpenAI, { type APIError } from "openai";
import { type GatewayFixture, startGateway } from "./support/gateway-fixture.js";
import { type RegistryFixture, startRegistry } from "./support/registry-fixture.js";
import { attachScriptedAgent, type Script, type ScriptedAgent } from "./support/scripted-agent.js";
import { waitFor } from "./support/wait-for.js";

// Per-key rate limits, concurrent streams and request-size guardrails.

const encode = (text: string) => new TextEncoder().encode(text);

const answer: Script = async function* (call) {
  const stream = call.stream;
  yield { part: { part: { case: "head", value: { status: 200, contentType: stream ? "text/event-stream" : "application/json" } } } };
  if (stream) yield { part: { part: { case: "event", value: { data: encode("[DONE]") } } } };
  else yield { part: { part: { case: "data", value: encode('{"choices":[]}') } } };
};

describe("rate limits and guardrails", function () {
  this.timeout(30_000);
  let registry: RegistryFixture;
  let gateway: GatewayFixture;
  const agents: ScriptedAgent[] = [];
  /** script answers the calls of every user's agent. */
  let script: Script = answer;
  let aliceKey: string;
  let bobKey: string;

  const chat = (key: string, body: Record<string, unknown> = {}) =>
    fetch(`${gateway.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], ...body }),
    });

  before(async () => {
    registry = await startRegistry();
    aliceKey = await registry.keyFor("alice");
    bobKey = await registry.keyFor("bob");
    gateway = await startGateway(registry.address, {
      rateLimits: { inferencePerMinute: 3, modelsPerMinute: 2, concurrentStreams: 1 },
      guardrails: { maxMessages: 3, maxInputChars: 50, maxTokens: 100 },
    });
    await attach("alice-box", aliceKey);
    await attach("bob-box", bobKey);
    await waitFor("providers", () => gateway.gateway.table.provider("alice-box") && gateway.gateway.table.provider("bob-box"));
  });

  after(async () => {
    for (const agent of agents) await agent.close();
    await gateway?.stop();
    await registry?.stop();
  });

  /** attach attaches an agent for key's user as providerId, serving "m" by the shared script. */
  const attach = async (providerId: string, key: string) => {
    const agent = await attachScriptedAgent(
      gateway.baseUrl,
      key,
      providerId,
      [{ id: "m", serviceType: "SERVICE_TYPE_LLM" }],
      (call, signal) => script(call, signal),
    );
    agents.push(agent);
    return agent;
  };

  it("limits inference per key per minute: 429 with Retry-After and X-RateLimit-* headers, other keys unaffected", async () => {
    const first = await chat(aliceKey);
    expect(first.status).to.equal(200);
    expect(first.headers.get("x-ratelimit-limit")).to.equal("3");
    expect(first.headers.get("x-ratelimit-remaining")).to.equal("2");
    expect(Number(first.headers.get("x-ratelimit-reset"))).to.be.within(1, 60);
    await (await chat(aliceKey)).text();
    await (await chat(aliceKey)).text();
    const limited = await chat(aliceKey);
    expect(limited.status).to.equal(429);
    expect(Number(limited.headers.get("retry-after"))).to.be.within(1, 60);
    expect(limited.headers.get("x-ratelimit-remaining")).to.equal("0");
    const { error } = (await limited.json()) as { error: Record<string, unknown> };
    expect(error).to.include({ type: "rate_limit_exceeded", code: "rate_limit_exceeded" });
    expect((await chat(bobKey)).status, "bob has his own budget").to.equal(200);
    const models = await fetch(`${gateway.baseUrl}/v1/models`, { headers: { authorization: `Bearer ${aliceKey}` } });
    expect(models.status, "/v1/models has its own budget").to.equal(200);
    expect(models.headers.get("x-ratelimit-limit")).to.equal("2");
  });

  it("is answered by the OpenAI SDK as a rate limit error", async () => {
    const client = new OpenAI({ baseURL: `${gateway.baseUrl}/v1`, apiKey: aliceKey, maxRetries: 0 });
    const error = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] }).catch((e: unknown) => e);
    expect(error).to.be.instanceOf(OpenAI.RateLimitError);
    expect((error as APIError).status).to.equal(429);
  });

  it("bounds a key's concurrent streams", async () => {
    const key = await registry.keyFor("bob");
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    script = async function* (call) {
      yield { part: { part: { case: "head", value: { status: 200, contentType: "text/event-stream" } } } };
      if (call.requestId === "hold") await released;
      yield { part: { part: { case: "event", value: { data: encode("[DONE]") } } } };
    };
    const held = await fetch(`${gateway.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "x-request-id": "hold" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], stream: true }),
    });
    expect(held.status).to.equal(200);
    const second = await chat(key, { stream: true });
    expect(second.status).to.equal(429);
    expect(second.headers.get("retry-after")).to.equal("1");
    expect(((await second.json()) as { error: { code: string } }).error.code).to.equal("concurrent_streams_exceeded");
    release();
    await held.text();
    expect((await chat(key, { stream: true })).status).to.equal(200);
    script = answer;
  });

  it("answers too many messages or too much input with 413 request_too_large, and clamps max_tokens", async () => {
    const key = await registry.keyFor("carol-key-owner");
    const carols = await attach("carol-box", key);
    await waitFor("carol's provider", () => gateway.gateway.table.provider("carol-box"));
    const many = await chat(key, { messages: Array.from({ length: 4 }, () => ({ role: "user", content: "x" })) });
    expect(many.status).to.equal(413);
    expect(((await many.json()) as { error: Record<string, unknown> }).error).to.include({ code: "request_too_large", param: "messages" });
    const long = await chat(key, { messages: [{ role: "user", content: [{ type: "text", text: "y".repeat(51) }] }] });
    expect(long.status).to.equal(413);
    await (await chat(key, { max_tokens: 100_000, max_completion_tokens: 50 })).text();
    const sent = JSON.parse(new TextDecoder().decode(carols.calls.at(-1)?.body)) as Record<string, unknown>;
    expect(sent).to.include({ max_tokens: 100, max_completion_tokens: 50 });
  });
});
