import Anthropic from "@anthropic-ai/sdk";
import { expect } from "chai";
import OpenAI from "openai";
import { request } from "undici";
import type { ChatMessageLike } from "./simulated-text.js";
import { expectedCompletionText, promptTokenCount } from "./simulated-text.js";
import type { Simulator } from "./simulator.js";
import { createSimulator, EMBEDDING_DIMENSIONS } from "./simulator.js";
import { capture, captureHeader, captureJson, captureStatus, dig, keysOf, shapeOf } from "./test-support/llama-captures.js";
import { createSimulatorHarness, type Reply } from "./test-support/simulator-harness.js";
import { eventNames, type SseEvent, sseEvents } from "./test-support/sse-events.js";

/** firstByEvent maps each event name of a stream to the data of its first event. */
function firstByEvent(events: readonly SseEvent[]): Map<string | undefined, unknown> {
  const first = new Map<string | undefined, unknown>();
  for (const event of events) if (!first.has(event.event)) first.set(event.event, event.data);
  return first;
}

/** expectHeadersLike checks the headers a client reads against a capture's. */
function expectHeadersLike(reply: Reply, name: string): void {
  for (const header of ["Content-Type", "X-Accel-Buffering", "Server", "Connection"]) {
    if (header === "Connection" && captureHeader(name, header) === undefined) continue;
    expect(reply.headers[header.toLowerCase()], header).to.equal(captureHeader(name, header));
  }
}

describe("simulator protocol routes: /v1/responses, /v1/messages and count_tokens", () => {
  const simulators = createSimulatorHarness({ tokensPerSecond: 1000, timeToFirstTokenMs: 0 });
  const { agent, start, call } = simulators;

  /** abortMidStream starts a slow stream, reads its first bytes, leaves, and returns the recorded abort. */
  async function abortMidStream(sim: Simulator, url: string, path: string, body: unknown): Promise<Simulator["aborted"][number]> {
    const controller = new AbortController();
    const res = await request(`${url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      dispatcher: agent,
      signal: controller.signal,
    });
    expect(res.statusCode).to.equal(200);
    const first = await res.body[Symbol.asyncIterator]().next();
    expect(String(first.value)).to.match(/^event: /);
    controller.abort();
    return sim.waitForAbort((aborted) => aborted.path === path, 1000);
  }

  afterEach(() => simulators.closeStarted());
  after(() => simulators.close());

  const question = "Name three rivers of Europe";
  const instructions = "You are terse.";
  const chatOfResponse: ChatMessageLike[] = [
    { role: "system", content: instructions },
    { role: "user", content: question },
  ];

  describe("/v1/responses", () => {
    it("answers a response with the expected text and usage, shaped key for key like llama-server's", async () => {
      const { sim, url } = await start();
      const reply = await call(url, "/v1/responses", { model: "any", instructions, input: question, max_output_tokens: 5 });
      expect(reply.status).to.equal(captureStatus("responses"));
      expectHeadersLike(reply, "responses");
      expect(reply.headers["content-length"]).to.equal(String(Buffer.byteLength(reply.text)));
      const body = JSON.parse(reply.text) as unknown;
      expect(shapeOf(body)).to.deep.equal(shapeOf(captureJson("responses")));
      expect(dig(body, "id")).to.match(/^resp_[0-9A-Za-z]{32}$/);
      expect(dig(body, "output", 0, "id")).to.match(/^msg_[0-9A-Za-z]{32}$/);
      expect(dig(body, "output", 0, "content", 0, "text")).to.equal(expectedCompletionText(question, 5));
      expect(dig(body, "status")).to.equal("completed");
      expect(dig(body, "model")).to.equal("sim-llama");
      const inputTokens = promptTokenCount(chatOfResponse);
      expect(dig(body, "usage")).to.deep.equal({
        input_tokens: inputTokens,
        output_tokens: 5,
        total_tokens: inputTokens + 5,
        input_tokens_details: { cached_tokens: 0 },
      });
      const seen = await sim.waitForRequest((entry) => entry.path === "/v1/responses");
      expect(seen.id).to.equal(dig(body, "id"));
      expect(seen.body).to.deep.equal({ model: "any", instructions, input: question, max_output_tokens: 5 });
    });

    it("streams llama-server's named events, one delta per token, usage and timings on response.completed, no [DONE]", async () => {
      const { url } = await start();
      const reply = await call(url, "/v1/responses", { instructions, input: question, max_output_tokens: 6, stream: true });
      expect(reply.status).to.equal(captureStatus("responses_stream"));
      expectHeadersLike(reply, "responses_stream");
      const events = sseEvents(reply.text);
      const captured = sseEvents(capture("responses_stream.body"));
      expect(eventNames(events)).to.deep.equal(eventNames(captured));
      for (const event of events) expect(dig(event.data, "type"), "each event's data names it").to.equal(event.event);
      const ours = firstByEvent(events);
      for (const [name, data] of firstByEvent(captured)) expect(shapeOf(ours.get(name)), String(name)).to.deep.equal(shapeOf(data));
      const deltas = events.filter((event) => event.event === "response.output_text.delta").map((event) => dig(event.data, "delta"));
      const text = expectedCompletionText(question, 6);
      expect(deltas.join("")).to.equal(text);
      expect(deltas).to.have.length(6);
      const completed = events.at(-1)?.data;
      expect(dig(completed, "response", "output", 0, "content", 0, "text")).to.equal(text);
      expect(dig(ours.get("response.output_text.done"), "text")).to.equal(text);
      const itemId = dig(ours.get("response.output_item.added"), "item", "id");
      expect(
        events.every(
          (event) =>
            ["response.created", "response.in_progress", "response.completed"].includes(String(event.event)) ||
            dig(event.data, "item_id") === itemId ||
            dig(event.data, "item", "id") === itemId,
        ),
      ).to.equal(true);
      expect(dig(completed, "response", "usage", "output_tokens")).to.equal(6);
      expect(dig(completed, "timings", "predicted_n")).to.equal(6);
      expect(reply.text).to.not.include("[DONE]");
    });

    it("reads input as a list of messages, each content a string or input_text parts, as llama-server converts them", async () => {
      const { url } = await start();
      const asParts = await call(url, "/v1/responses", {
        input: [
          { role: "developer", content: instructions },
          { role: "user", content: [{ type: "input_text", text: question }] },
        ],
        max_output_tokens: 4,
      });
      const asString = await call(url, "/v1/responses", { input: [{ role: "user", content: question }], max_output_tokens: 4 });
      expect(dig(JSON.parse(asParts.text), "output", 0, "content", 0, "text")).to.equal(expectedCompletionText(question, 4));
      expect(dig(JSON.parse(asString.text), "output", 0, "content", 0, "text")).to.equal(expectedCompletionText(question, 4));
      expect(dig(JSON.parse(asParts.text), "usage", "input_tokens")).to.equal(promptTokenCount(chatOfResponse));
    });

    it("stops by itself without max_output_tokens and is read by the official openai SDK", async () => {
      const { url } = await start({ completionTokens: 7 });
      const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "sk-test", maxRetries: 0 });
      const response = await client.responses.create({ model: "sim-llama", input: question });
      expect(response.output_text).to.equal(expectedCompletionText(question, 7));
      const stream = await client.responses.create({ model: "sim-llama", input: question, stream: true });
      const types: string[] = [];
      for await (const event of stream) types.push(event.type);
      expect(types.at(0)).to.equal("response.created");
      expect(types.at(-1)).to.equal("response.completed");
      expect(types.filter((type) => type === "response.output_text.delta")).to.have.length(7);
    });

    it("refuses a request without input, or with input of another type, with llama-server's 400", async () => {
      const { sim, url } = await start();
      for (const [body, message] of [
        [{ model: "m" }, "'input' is required"],
        [{ input: 42 }, "'input' must be a string or array of objects"],
        [{ input: [{ role: "user", content: [{ type: "input_file" }] }] }, "'input_file' is not supported by llamacpp at this moment"],
        [{ input: "hi", previous_response_id: "resp_1" }, "llama.cpp does not support 'previous_response_id'."],
      ] as const) {
        const reply = await call(url, "/v1/responses", body);
        expect(reply.status, message).to.equal(400);
        expect(JSON.parse(reply.text)).to.deep.equal({ error: { code: 400, message, type: "invalid_request_error" } });
        expect(reply.headers["connection"]).to.equal("close");
      }
      expect(sim.activeGenerations).to.equal(0);
    });

    it("paces a streamed response at tokens_per_second", async () => {
      const { url } = await start();
      const startedAt = performance.now();
      const reply = await call(url, "/v1/responses", {
        input: question,
        max_output_tokens: 6,
        stream: true,
        sim: { tokens_per_second: 50 },
      });
      const elapsedMs = performance.now() - startedAt;
      expect(sseEvents(reply.text).filter((event) => event.event === "response.output_text.delta")).to.have.length(6);
      // Six tokens at 50 per second: the last one is due 100 ms after the first.
      expect(elapsedMs).to.be.at.least(95);
    });

    it("ends a begun stream with llama-server's data-only error frame on a mid-stream failure", async () => {
      const { url } = await start();
      const reply = await call(url, "/v1/responses", {
        input: question,
        max_output_tokens: 8,
        stream: true,
        sim: { fail: "status", fail_status: 500, fail_after_tokens: 2 },
      });
      expect(reply.status).to.equal(200);
      const events = sseEvents(reply.text);
      expect(events.filter((event) => event.event === "response.output_text.delta")).to.have.length(2);
      expect(events.at(-1)).to.deep.equal({
        event: undefined,
        data: { error: { code: 500, message: "simulated failure (HTTP 500)", type: "server_error" } },
      });
      const before = await call(url, "/v1/responses", { input: question, sim: { fail: "status", fail_status: 503 } });
      expect([before.status, before.text]).to.deep.equal([
        503,
        '{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}',
      ]);
    });

    it("records a client that leaves a streamed response as an abort, under the response's id", async () => {
      const { sim, url } = await start({ tokensPerSecond: 20 });
      const aborted = await abortMidStream(sim, url, "/v1/responses", {
        model: "m1",
        input: question,
        max_output_tokens: 1000,
        stream: true,
      });
      expect(aborted).to.include({ path: "/v1/responses", model: "m1", stream: true });
      expect(aborted.id).to.match(/^resp_/);
      expect(aborted.tokensSent).to.be.below(1000);
      expect(sim.activeGenerations).to.equal(0);
    });
  });

  describe("/v1/messages", () => {
    const system = "You are terse.";
    const messages = [{ role: "user" as const, content: question }];
    const chatOfMessages: ChatMessageLike[] = [{ role: "system", content: system }, ...messages];

    it("answers a message with the expected text, stop_reason max_tokens and usage, shaped like llama-server's", async () => {
      const { sim, url } = await start();
      const reply = await call(url, "/v1/messages", { model: "claude", system, messages, max_tokens: 5 });
      expect(reply.status).to.equal(captureStatus("messages"));
      expectHeadersLike(reply, "messages");
      const body = JSON.parse(reply.text) as unknown;
      expect(shapeOf(body)).to.deep.equal(shapeOf(captureJson("messages")));
      expect(body).to.deep.include({
        type: "message",
        role: "assistant",
        content: [{ type: "text", text: expectedCompletionText(question, 5) }],
        model: "sim-llama",
        stop_reason: "max_tokens",
        stop_sequence: null,
        usage: { cache_read_input_tokens: 0, input_tokens: promptTokenCount(chatOfMessages), output_tokens: 5 },
      });
      expect(dig(body, "id")).to.match(/^chatcmpl-[0-9A-Za-z]{32}$/);
      expect((await sim.waitForRequest((entry) => entry.path === "/v1/messages")).id).to.equal(dig(body, "id"));
    });

    it("accepts a request without max_tokens, as llama-server does, and ends the turn by itself", async () => {
      const { url } = await start({ completionTokens: 9 });
      const reply = await call(url, "/v1/messages", { model: "claude", messages });
      expect(reply.status).to.equal(captureStatus("messages_missing_max_tokens"));
      const body = JSON.parse(reply.text) as unknown;
      expect(shapeOf(body)).to.deep.equal(shapeOf(captureJson("messages_missing_max_tokens")));
      expect(dig(body, "stop_reason"))
        .to.equal(dig(captureJson("messages_missing_max_tokens"), "stop_reason"))
        .and.to.equal("end_turn");
      expect(dig(body, "usage", "output_tokens")).to.equal(9);
    });

    it("streams message_start to message_stop with llama-server's events, output_tokens on message_delta", async () => {
      const { url } = await start();
      const reply = await call(url, "/v1/messages", { system, messages, max_tokens: 6, stream: true });
      expect(reply.status).to.equal(captureStatus("messages_stream"));
      expectHeadersLike(reply, "messages_stream");
      const events = sseEvents(reply.text);
      const captured = sseEvents(capture("messages_stream.body"));
      expect(eventNames(events)).to.deep.equal(eventNames(captured));
      for (const event of events) expect(dig(event.data, "type")).to.equal(event.event);
      const ours = firstByEvent(events);
      for (const [name, data] of firstByEvent(captured)) expect(shapeOf(ours.get(name)), String(name)).to.deep.equal(shapeOf(data));
      const deltas = events.filter((event) => event.event === "content_block_delta").map((event) => dig(event.data, "delta", "text"));
      expect(deltas.join("")).to.equal(expectedCompletionText(question, 6));
      expect(dig(ours.get("message_start"), "message", "usage")).to.deep.equal({
        cache_read_input_tokens: 0,
        input_tokens: promptTokenCount(chatOfMessages),
        output_tokens: 0,
      });
      expect(ours.get("message_delta")).to.deep.equal({
        type: "message_delta",
        delta: { stop_reason: "max_tokens", stop_sequence: null },
        usage: { output_tokens: 6 },
      });
      expect(reply.text).to.not.include("[DONE]");
    });

    it("reads system and content as text blocks as it reads them as strings, and is read by the Anthropic SDK", async () => {
      const { url } = await start({ apiKey: "sim-key" });
      const client = new Anthropic({ baseURL: url, apiKey: "sim-key", maxRetries: 0 });
      const message = await client.messages.create({
        model: "claude",
        max_tokens: 4,
        system: [
          { type: "text", text: "You are " },
          { type: "text", text: "terse." },
        ],
        messages: [{ role: "user", content: [{ type: "text", text: question }] }],
      });
      expect(message.content).to.deep.equal([{ type: "text", text: expectedCompletionText(question, 4) }]);
      expect(message.usage.input_tokens).to.equal(promptTokenCount(chatOfMessages));
      const streamed = await client.messages.stream({ model: "claude", max_tokens: 4, messages }).finalMessage();
      expect(streamed.content).to.deep.equal([{ type: "text", text: expectedCompletionText(question, 4) }]);
      expect([streamed.stop_reason, streamed.usage.output_tokens]).to.deep.equal(["max_tokens", 4]);
    });

    it("answers what llama-server answers for bad messages: 500 without them, 400 for a message without content", async () => {
      const { url } = await start();
      const missing = await call(url, "/v1/messages", { max_tokens: 5 });
      expect([missing.status, missing.text]).to.deep.equal([
        500,
        '{"error":{"code":500,"message":"\'messages\' is required","type":"server_error"}}',
      ]);
      const empty = await call(url, "/v1/messages", { max_tokens: 5, messages: [{ role: "user" }] });
      expect([empty.status, JSON.parse(empty.text)]).to.deep.equal([
        400,
        { error: { code: 400, message: "All non-assistant messages must contain 'content'", type: "invalid_request_error" } },
      ]);
      const notJson = await call(url, "/v1/messages", "{not json");
      expect(notJson.status).to.equal(500);
      expect(dig(JSON.parse(notJson.text), "error", "type")).to.equal("server_error");
    });

    it("ends a begun stream with an Anthropic error event carrying llama-server's error object", async () => {
      const { url } = await start();
      const reply = await call(url, "/v1/messages", {
        messages,
        max_tokens: 8,
        stream: true,
        sim: { fail: "status", fail_status: 500, fail_after_tokens: 3 },
      });
      const events = sseEvents(reply.text);
      expect(events.filter((event) => event.event === "content_block_delta")).to.have.length(3);
      expect(events.at(-1)).to.deep.equal({
        event: "error",
        data: { code: 500, message: "simulated failure (HTTP 500)", type: "server_error" },
      });
    });

    it("records a client that leaves a streamed message as an abort", async () => {
      const { sim, url } = await start({ tokensPerSecond: 20 });
      const aborted = await abortMidStream(sim, url, "/v1/messages", { model: "claude", messages, max_tokens: 1000, stream: true });
      expect(aborted).to.include({ path: "/v1/messages", model: "claude", stream: true });
      expect(aborted.id).to.match(/^chatcmpl-/);
      expect(aborted.tokensSent).to.be.below(1000);
    });
  });

  describe("/v1/messages/count_tokens", () => {
    it("answers {input_tokens} at once, counting the system prompt and every message", async () => {
      const { sim, url } = await start({ timeToFirstTokenMs: 5000, failure: { mode: "status" } });
      const messages = [
        { role: "user", content: "one two three" },
        { role: "assistant", content: [{ type: "text", text: "four five" }] },
        { role: "user", content: "six" },
      ];
      const reply = await call(url, "/v1/messages/count_tokens", { model: "claude", system: "seven eight", messages });
      expect(reply.status).to.equal(captureStatus("messages_count_tokens"));
      expectHeadersLike(reply, "messages_count_tokens");
      expect(keysOf(JSON.parse(reply.text))).to.deep.equal(keysOf(captureJson("messages_count_tokens")));
      expect(reply.text).to.equal('{"input_tokens":8}');
      expect(sim.requests.at(-1)?.body).to.deep.include({ system: "seven eight" });
    });
  });

  describe("older llama-servers and unserved routes", () => {
    it("answers every protocol route left out of protocols with llama-server's 404, and still chats", async () => {
      const { url } = await start({ protocols: [] });
      for (const path of ["/v1/responses", "/v1/messages", "/v1/messages/count_tokens", "/responses"]) {
        const reply = await call(url, path, { input: "hi", messages: [{ role: "user", content: "hi" }], max_tokens: 1 });
        expect([reply.status, reply.text], path).to.deep.equal([captureStatus("err_404"), capture("err_404.body")]);
        expect(reply.headers["connection"]).to.equal("close");
      }
      const chat = await call(url, "/v1/chat/completions", { messages: [{ role: "user", content: "hi" }], max_tokens: 1 });
      expect(chat.status).to.equal(200);
      const some = await start({ protocols: ["messages"] });
      const body = { input: "hi", messages: [{ role: "user", content: "hi" }], max_tokens: 1 };
      expect((await call(some.url, "/v1/messages", body)).status).to.equal(200);
      expect((await call(some.url, "/v1/responses", body)).status).to.equal(404);
      expect((await call(some.url, "/v1/messages/count_tokens", body)).status).to.equal(404);
    });

    it("imitates an older llama-server with legacyRoutes, the same as protocols: []", async () => {
      const { sim, url } = await start({ legacyRoutes: true });
      expect(sim.config.protocols).to.deep.equal([]);
      const reply = await call(url, "/v1/messages", { messages: [{ role: "user", content: "hi" }], max_tokens: 1 });
      expect([reply.status, reply.text]).to.deep.equal([404, capture("err_404.body")]);
      expect(() => createSimulator({ legacyRoutes: true, protocols: ["messages"] })).to.throw(/give one or the other/);
    });

    it("refuses a protocol it does not know", () => {
      expect(() => createSimulator({ protocols: ["chat" as never] })).to.throw(
        "simulator option protocols[0]: expected one of responses, messages, count_tokens, got 'chat'",
      );
    });

    it("answers GET /v1/models/{id} with llama-server's 404, which serves no such route", async () => {
      const { url } = await start();
      const reply = await call(url, "/v1/models/sim-llama");
      expect(reply.status).to.equal(captureStatus("models_retrieve"));
      expect(reply.text).to.equal(capture("models_retrieve.body"));
      expectHeadersLike(reply, "models_retrieve");
    });
  });

  describe("an embeddings server", () => {
    it("lists its model like llama-server started with --embeddings, with no hint that it embeds", async () => {
      const { url } = await start({ models: [{ id: "tiny-embed", kind: "embedding" }] });
      const listed = JSON.parse((await call(url, "/v1/models")).text) as unknown;
      const captured = captureJson("models_embed");
      expect(shapeOf(listed)).to.deep.equal(shapeOf(captured));
      expect(dig(listed, "models", 0)).to.deep.equal(dig(captured, "models", 0));
      expect(dig(listed, "data", 0, "meta", "n_embd"))
        .to.equal(EMBEDDING_DIMENSIONS)
        .and.to.equal(dig(captured, "data", 0, "meta", "n_embd"));
    });

    it("still answers chat with its one model, as llama-server does", async () => {
      const { url } = await start({ models: [{ id: "tiny-embed", kind: "embedding" }] });
      const reply = await call(url, "/v1/chat/completions", {
        model: "tiny-embed",
        messages: [{ role: "user", content: question }],
        max_tokens: 4,
      });
      expect(reply.status).to.equal(captureStatus("chat_on_embed_server"));
      const body = JSON.parse(reply.text) as unknown;
      expect(shapeOf(body)).to.deep.equal(shapeOf(captureJson("chat_on_embed_server")));
      expect([dig(body, "model"), dig(body, "choices", 0, "message", "content")]).to.deep.equal([
        "tiny-embed",
        expectedCompletionText(question, 4),
      ]);
    });
  });
});
