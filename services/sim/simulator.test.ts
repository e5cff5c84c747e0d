import { expect } from "chai";
import OpenAI from "openai";
import { request } from "undici";
import type { ChatMessageLike } from "./simulated-text.js";
import { expectedCompletionText, promptTokenCount } from "./simulated-text.js";
import { createSimulator } from "./simulator.js";
import { capture, captureHeader, captureJson, dig, keysOf } from "./test-support/llama-captures.js";
import { createSimulatorHarness } from "./test-support/simulator-harness.js";

/** sseData splits an SSE body into its data payloads, checking llama-server's framing on the way. */
function sseData(text: string): string[] {
  expect(text.slice(-2), "stream ends with a blank line").to.equal("\n\n");
  return text
    .slice(0, -2)
    .split("\n\n")
    .map((frame) => {
      expect(frame, "one line per frame, a data line").to.match(/^data: [^\n]*$/);
      return frame.slice("data: ".length);
    });
}

function parse(text: string): unknown {
  return JSON.parse(text) as unknown;
}

describe("llama-server simulator", () => {
  const simulators = createSimulatorHarness({ tokensPerSecond: 1000, timeToFirstTokenMs: 0 });
  const { agent, start, call } = simulators;

  afterEach(() => simulators.closeStarted());
  after(() => simulators.close());

  const messages: ChatMessageLike[] = [
    { role: "system", content: "You are terse." },
    { role: "user", content: "Name three rivers of Europe" },
  ];

  describe("models and health", () => {
    it("lists models with both the Ollama-style and the OpenAI lists, shaped like llama-server's", async () => {
      const { url } = await start();
      for (const path of ["/v1/models", "/models"]) {
        const reply = await call(url, path);
        expect(reply.status).to.equal(200);
        expect(reply.headers["content-type"]).to.equal(captureHeader("models", "Content-Type"));
        expect(reply.headers["server"]).to.equal("llama.cpp");
        const body = JSON.parse(reply.text);
        const expected = captureJson("models");
        expect(keysOf(body)).to.deep.equal(keysOf(expected));
        expect(keysOf(dig(body, "models", 0))).to.deep.equal(keysOf(dig(expected, "models", 0)));
        expect(keysOf(dig(body, "data", 0))).to.deep.equal(keysOf(dig(expected, "data", 0)));
        expect(keysOf(dig(body, "data", 0, "meta"))).to.deep.equal(keysOf(dig(expected, "data", 0, "meta")));
        expect(dig(body, "models", 0, "name")).to.equal("sim-llama");
        expect(dig(body, "data", 0, "id")).to.equal("sim-llama");
        expect(dig(body, "data", 0, "aliases")).to.deep.equal(["sim-llama"]);
        expect(dig(body, "data", 0, "owned_by")).to.equal("llamacpp");
        expect(dig(body, "object")).to.equal("list");
      }
    });

    it("renames the model with aliases like --alias, in the list and in answers", async () => {
      const { url } = await start({ aliases: ["tiny-llama"], models: [{ id: "models/tiny-random.gguf", contextLength: 256 }] });
      const listed = JSON.parse((await call(url, "/v1/models")).text);
      const expected = captureJson("models_alias");
      expect(dig(listed, "models", 0)).to.deep.equal(dig(expected, "models", 0));
      // created is the start time, and meta describes the captured model file rather than the simulator.
      const comparable = (entry: unknown): object => ({ ...(entry as object), created: 0, meta: {} });
      expect(comparable(dig(listed, "data", 0))).to.deep.equal(comparable(dig(expected, "data", 0)));
      const answer = JSON.parse((await call(url, "/v1/chat/completions", { messages, max_tokens: 1 })).text);
      expect(dig(answer, "model")).to.equal("tiny-llama");
    });

    it("says each model's kind in a service_type field when it serves several kinds, and only then", async () => {
      const { url } = await start({ models: [{ id: "chat" }, { id: "ears", kind: "stt" }, { id: "voice", kind: "tts" }] });
      const listed = JSON.parse((await call(url, "/v1/models")).text);
      expect((dig(listed, "data") as unknown[]).map((entry) => [dig(entry, "id"), dig(entry, "service_type")])).to.deep.equal([
        ["chat", "llm"],
        ["ears", "stt"],
        ["voice", "tts"],
      ]);
      expect(keysOf(dig(listed, "data", 0))).to.deep.equal([...keysOf(dig(captureJson("models"), "data", 0)), "service_type"]);
      const single = await start({
        models: [
          { id: "ears", kind: "stt" },
          { id: "more-ears", kind: "stt" },
        ],
      });
      const plain = JSON.parse((await call(single.url, "/v1/models")).text);
      expect(keysOf(dig(plain, "data", 1))).to.deep.equal(keysOf(dig(captureJson("models"), "data", 0)));
    });

    it("answers /health like llama-server and a minimal /props", async () => {
      const { url } = await start();
      const health = await call(url, "/health");
      expect(health.status).to.equal(200);
      expect(health.text).to.equal(capture("health.body"));
      expect(health.headers["content-type"]).to.equal(captureHeader("health", "Content-Type"));
      const props = JSON.parse((await call(url, "/props")).text);
      expect(dig(props, "default_generation_settings", "n_ctx")).to.be.a("number");
      expect(dig(props, "model_alias")).to.equal("sim-llama");
      expect(dig(props, "build_info")).to.equal("b0-simulator");
    });

    it("answers unknown routes and wrong methods with llama-server's 404", async () => {
      const { url } = await start();
      const unknown = await call(url, "/v1/nothing");
      expect(unknown.status).to.equal(404);
      expect(unknown.text).to.equal(capture("err_404.body"));
      expect(unknown.headers["connection"]).to.equal("close");
      const wrongMethod = await call(url, "/v1/chat/completions");
      expect(wrongMethod.status).to.equal(404);
      expect(wrongMethod.text).to.equal(capture("err_get_on_post_route.body"));
    });
  });

  describe("chat completions", () => {
    it("answers a non-streamed chat with the expected text, usage and llama-server's shape", async () => {
      const { url } = await start();
      const reply = await call(url, "/v1/chat/completions", { model: "anything", messages, max_tokens: 5 });
      expect(reply.status).to.equal(200);
      expect(reply.headers["content-type"]).to.equal(captureHeader("chat_nonstream", "Content-Type"));
      expect(reply.headers["content-length"]).to.equal(String(Buffer.byteLength(reply.text)));
      const body = JSON.parse(reply.text);
      const expected = captureJson("chat_nonstream");
      expect(keysOf(body)).to.deep.equal(keysOf(expected));
      expect(keysOf(dig(body, "choices", 0))).to.deep.equal(keysOf(dig(expected, "choices", 0)));
      expect(keysOf(dig(body, "timings"))).to.deep.equal(keysOf(dig(expected, "timings")));
      expect(dig(body, "choices")).to.deep.equal([
        {
          finish_reason: "length",
          index: 0,
          message: { role: "assistant", content: expectedCompletionText(messages, 5) },
        },
      ]);
      const promptTokens = promptTokenCount(messages);
      expect(dig(body, "usage")).to.deep.equal({
        completion_tokens: 5,
        prompt_tokens: promptTokens,
        total_tokens: promptTokens + 5,
        prompt_tokens_details: { cached_tokens: 0 },
      });
      expect(dig(body, "object")).to.equal("chat.completion");
      expect(dig(body, "model")).to.equal("sim-llama");
      expect(dig(body, "system_fingerprint")).to.equal("b0-simulator");
      expect(dig(body, "id")).to.match(/^chatcmpl-[0-9A-Za-z]{32}$/);
      expect(dig(body, "created")).to.be.a("number");
    });

    it("answers the same text for the same last user message and stops by itself without max_tokens", async () => {
      const { url } = await start({ completionTokens: 7 });
      const first = JSON.parse((await call(url, "/chat/completions", { messages })).text);
      const other = [{ role: "user", content: "earlier turn" }, ...messages.slice(1)];
      const second = JSON.parse((await call(url, "/chat/completions", { messages: other })).text);
      expect(dig(first, "choices", 0, "message", "content")).to.equal(expectedCompletionText(messages, 7));
      expect(dig(second, "choices", 0, "message", "content")).to.equal(dig(first, "choices", 0, "message", "content"));
      expect(dig(first, "choices", 0, "finish_reason")).to.equal("stop");
      expect(dig(first, "usage", "completion_tokens")).to.equal(7);
    });

    it("takes max_completion_tokens and n_predict, n_predict first", async () => {
      const { url } = await start();
      const completion = JSON.parse((await call(url, "/v1/chat/completions", { messages, max_completion_tokens: 2 })).text);
      expect(dig(completion, "usage", "completion_tokens")).to.equal(2);
      const predict = JSON.parse((await call(url, "/v1/chat/completions", { messages, max_tokens: 2, n_predict: 3 })).text);
      expect(dig(predict, "usage", "completion_tokens")).to.equal(3);
    });

    it("streams a chat with a role chunk, one chunk per token, a finish chunk with timings and [DONE]", async () => {
      const { url } = await start();
      const reply = await call(url, "/v1/chat/completions", { messages, max_tokens: 4, stream: true });
      expect(reply.status).to.equal(200);
      for (const header of ["Content-Type", "X-Accel-Buffering", "Server", "Access-Control-Allow-Origin"]) {
        expect(reply.headers[header.toLowerCase()], header).to.equal(captureHeader("chat_stream", header));
      }
      expect(reply.headers["transfer-encoding"]).to.equal("chunked");
      const frames = sseData(reply.text);
      const expectedFrames = sseData(capture("chat_stream.body"));
      expect(frames).to.have.length(1 + 4 + 1 + 1);
      expect(frames.at(-1)).to.equal("[DONE]");
      const chunks = frames.slice(0, -1).map((frame) => JSON.parse(frame));
      const expectedChunks = expectedFrames.slice(0, -1).map((frame) => JSON.parse(frame));
      expect(keysOf(dig(chunks, 0))).to.deep.equal(keysOf(dig(expectedChunks, 0)));
      expect(dig(chunks, 0, "choices")).to.deep.equal([{ finish_reason: null, index: 0, delta: { role: "assistant", content: null } }]);
      const content = chunks.slice(1, 5);
      for (const chunk of content) {
        expect(keysOf(chunk)).to.deep.equal(keysOf(dig(expectedChunks, 1)));
        expect(keysOf(dig(chunk, "choices", 0))).to.deep.equal(keysOf(dig(expectedChunks, 1, "choices", 0)));
      }
      expect(content.map((chunk) => dig(chunk, "choices", 0, "delta", "content")).join("")).to.equal(expectedCompletionText(messages, 4));
      const finish = dig(chunks, 5);
      expect(keysOf(finish)).to.deep.equal(keysOf(expectedChunks.at(-1)));
      expect(dig(finish, "choices")).to.deep.equal([{ finish_reason: "length", index: 0, delta: {} }]);
      expect(keysOf(dig(finish, "timings"))).to.deep.equal(keysOf(dig(expectedChunks.at(-1), "timings")));
      expect(dig(finish, "timings", "predicted_n")).to.equal(4);
      const ids = new Set(chunks.map((chunk) => dig(chunk, "id")));
      expect(ids.size).to.equal(1);
      expect(new Set(chunks.map((chunk) => dig(chunk, "object")))).to.deep.equal(new Set(["chat.completion.chunk"]));
    });

    it("adds a choices: [] usage chunk with include_usage, and moves timings onto it", async () => {
      const { url } = await start();
      const reply = await call(url, "/v1/chat/completions", {
        messages,
        max_tokens: 3,
        stream: true,
        stream_options: { include_usage: true },
      });
      const frames = sseData(reply.text);
      const expectedFrames = sseData(capture("chat_stream_usage.body"));
      expect(frames.at(-1)).to.equal("[DONE]");
      const usageChunk = JSON.parse(frames.at(-2) ?? "");
      const expectedUsageChunk = JSON.parse(expectedFrames.at(-2) ?? "");
      expect(keysOf(usageChunk)).to.deep.equal(keysOf(expectedUsageChunk));
      expect(dig(usageChunk, "choices")).to.deep.equal([]);
      expect(dig(usageChunk, "usage")).to.deep.equal({
        completion_tokens: 3,
        prompt_tokens: promptTokenCount(messages),
        total_tokens: promptTokenCount(messages) + 3,
        prompt_tokens_details: { cached_tokens: 0 },
      });
      const finish = JSON.parse(frames.at(-3) ?? "");
      expect(keysOf(finish)).to.deep.equal(keysOf(JSON.parse(expectedFrames.at(-3) ?? "")));
      expect(dig(finish, "choices", 0, "finish_reason")).to.equal("length");
    });

    it("answers n: 2 with two different choices, streamed chunk by chunk per index", async () => {
      const { url } = await start();
      const whole = JSON.parse((await call(url, "/v1/chat/completions", { messages, max_tokens: 3, n: 2 })).text);
      expect(keysOf(whole)).to.deep.equal(keysOf(captureJson("chat_n2")));
      expect((dig(whole, "choices") as unknown[]).map((choice) => dig(choice, "message", "content"))).to.deep.equal([
        expectedCompletionText(messages, 3, 0),
        expectedCompletionText(messages, 3, 1),
      ]);
      expect(expectedCompletionText(messages, 3, 0)).to.not.equal(expectedCompletionText(messages, 3, 1));
      // llama-server reports one choice's tokens, not the sum (see the chat_n2 sample).
      expect(dig(whole, "usage", "completion_tokens")).to.equal(3);

      const frames = sseData((await call(url, "/v1/chat/completions", { messages, max_tokens: 3, n: 2, stream: true })).text);
      expect(frames.at(-1)).to.equal("[DONE]");
      const chunks = frames.slice(0, -1).map((frame) => JSON.parse(frame));
      const texts = ["", ""];
      const roles = [0, 0];
      const finishes = [0, 0];
      for (const chunk of chunks) {
        expect(dig(chunk, "choices")).to.have.length(1);
        const choice = dig(chunk, "choices", 0);
        const index = dig(choice, "index") as number;
        if (dig(choice, "delta", "role") === "assistant") roles[index] = (roles[index] ?? 0) + 1;
        else if (dig(choice, "finish_reason") !== null) finishes[index] = (finishes[index] ?? 0) + 1;
        else texts[index] += dig(choice, "delta", "content") as string;
      }
      expect(roles).to.deep.equal([1, 1]);
      expect(finishes).to.deep.equal([1, 1]);
      expect(texts).to.deep.equal([expectedCompletionText(messages, 3, 0), expectedCompletionText(messages, 3, 1)]);
    });

    it("caps max_tokens at the end of the context and rejects prompts that do not fit, like llama-server", async () => {
      const { url } = await start({ models: [{ id: "small", contextLength: 8 }] });
      const capped = JSON.parse(
        (
          await call(url, "/v1/chat/completions", {
            messages: [{ role: "user", content: "one two three" }],
            max_tokens: 100,
          })
        ).text,
      );
      expect(dig(capped, "usage", "completion_tokens")).to.equal(5);
      expect(dig(capped, "choices", 0, "finish_reason")).to.equal("length");
      const tooLong = await call(url, "/v1/chat/completions", {
        messages: [{ role: "user", content: "a b c d e f g h i j" }],
      });
      expect(tooLong.status).to.equal(400);
      const body = JSON.parse(tooLong.text);
      expect(keysOf(dig(body, "error"))).to.deep.equal(keysOf(dig(captureJson("err_ctx_exceeded"), "error")));
      expect(tooLong.text).to.equal(
        '{"error":{"code":400,"message":"request (10 tokens) exceeds the available context size (8 tokens), try increasing it",' +
          '"type":"exceed_context_size_error","n_prompt_tokens":10,"n_ctx":8}}',
      );
    });

    it("is parsed by the official openai SDK, streamed and not", async () => {
      const { url } = await start({ apiKey: "sdk-key" });
      const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "sdk-key", maxRetries: 0 });
      const stream = await client.chat.completions.create({
        model: "sim-llama",
        messages: [{ role: "user", content: "Stream to me" }],
        max_tokens: 6,
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = "";
      let finishReason: string | null | undefined;
      let completionTokens: number | undefined;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? "";
        finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
        completionTokens = chunk.usage?.completion_tokens ?? completionTokens;
      }
      expect(text).to.equal(expectedCompletionText("Stream to me", 6));
      expect(finishReason).to.equal("length");
      expect(completionTokens).to.equal(6);
      const whole = await client.completions.create({ model: "sim-llama", prompt: "Once upon", max_tokens: 2 });
      expect(whole.choices[0]?.text).to.equal(expectedCompletionText("Once upon", 2));
      const models = await client.models.list();
      expect(models.data.map((model) => model.id)).to.deep.equal(["sim-llama"]);
    });
  });

  describe("completions", () => {
    it("answers a non-streamed completion shaped like llama-server's", async () => {
      const { url } = await start();
      const reply = await call(url, "/v1/completions", { prompt: "The quick brown fox", max_tokens: 4 });
      expect(reply.headers["content-type"]).to.equal(captureHeader("completions", "Content-Type"));
      const body = JSON.parse(reply.text);
      const expected = captureJson("completions");
      expect(keysOf(body)).to.deep.equal(keysOf(expected));
      expect(dig(body, "choices")).to.deep.equal([
        { text: expectedCompletionText("The quick brown fox", 4), index: 0, logprobs: null, finish_reason: "length" },
      ]);
      expect(dig(body, "object")).to.equal("text_completion");
      expect(dig(body, "usage", "prompt_tokens")).to.equal(4);
      expect(dig(body, "id")).to.match(/^chatcmpl-[0-9A-Za-z]{32}$/);
    });

    it("streams a completion whose last chunk carries usage even when not asked for", async () => {
      const { url } = await start();
      const reply = await call(url, "/completions", { prompt: "The quick brown fox", max_tokens: 3, stream: true });
      expect(reply.headers["content-type"]).to.equal(captureHeader("completions_stream", "Content-Type"));
      const frames = sseData(reply.text);
      const expectedFrames = sseData(capture("completions_stream_nousage.body"));
      expect(frames).to.have.length(3 + 1 + 1);
      expect(frames.at(-1)).to.equal("[DONE]");
      const chunks = frames.slice(0, -1).map((frame) => JSON.parse(frame));
      const expectedChunks = expectedFrames.slice(0, -1).map((frame) => JSON.parse(frame));
      expect(keysOf(dig(chunks, 0))).to.deep.equal(keysOf(dig(expectedChunks, 0)));
      expect(keysOf(dig(chunks, 0, "choices", 0))).to.deep.equal(keysOf(dig(expectedChunks, 0, "choices", 0)));
      expect(
        chunks
          .slice(0, 3)
          .map((chunk) => dig(chunk, "choices", 0, "text"))
          .join(""),
      ).to.equal(expectedCompletionText("The quick brown fox", 3));
      const last = dig(chunks, 3);
      expect(keysOf(last)).to.deep.equal(keysOf(expectedChunks.at(-1)));
      expect(dig(last, "choices")).to.deep.equal([{ text: "", index: 0, logprobs: null, finish_reason: "length" }]);
      expect(dig(last, "usage", "completion_tokens")).to.equal(3);
    });
  });

  describe("errors", () => {
    it("answers invalid JSON with llama-server's 500 and nlohmann's message", async () => {
      const { url } = await start();
      const truncated = '{"model":"sim-llama-xy","stream":false,"n":1,';
      expect(truncated).to.have.length(45);
      const reply = await call(url, "/v1/chat/completions", truncated);
      expect(reply.status).to.equal(500);
      expect(reply.text).to.equal(capture("err_invalid_json.body"));
      expect(reply.headers["content-type"]).to.equal(captureHeader("err_invalid_json", "Content-Type"));
      expect(reply.headers["connection"]).to.equal("close");
      const empty = await call(url, "/v1/chat/completions", "");
      expect(empty.status).to.equal(500);
      expect(empty.text).to.equal(capture("err_empty_body.body"));
    });

    const invalidBodies: ReadonlyArray<readonly [string, unknown]> = [
      ["err_missing_messages", { model: "x" }],
      ["err_messages_string", { messages: "hello" }],
      ["err_stream_invalid", { messages: "hello", stream: true }],
      ["err_content_number", { messages: [{ role: "user", content: 5 }] }],
      ["err_max_tokens_string", { messages: [{ role: "user", content: "hi" }], max_tokens: "5" }],
      [
        "err_image_unsupported",
        { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } }] }] },
      ],
    ];
    for (const [name, body] of invalidBodies) {
      it(`answers ${name} exactly as llama-server did`, async () => {
        const { url } = await start();
        const reply = await call(url, "/v1/chat/completions", body);
        expect(reply.status).to.equal(Number(capture(`${name}.status`)));
        expect(reply.text).to.equal(capture(`${name}.body`));
      });
    }

    it("ignores the model name unless strictModels, then answers llama-server's router error", async () => {
      const lenient = await start();
      expect((await call(lenient.url, "/v1/chat/completions", { model: "nope", messages, max_tokens: 1 })).status).to.equal(200);
      const strict = await start({ strictModels: true, models: [{ id: "a", aliases: ["b"] }] });
      const unknown = await call(strict.url, "/v1/chat/completions", { model: "nope", messages });
      expect(unknown.status).to.equal(400);
      expect(unknown.text).to.equal('{"error":{"code":400,"message":"model \'nope\' not found","type":"invalid_request_error"}}');
      const byAlias = JSON.parse((await call(strict.url, "/v1/chat/completions", { model: "b", messages, max_tokens: 1 })).text);
      expect(dig(byAlias, "model")).to.equal("a");
    });
  });

  describe("api key", () => {
    it("answers missing and wrong keys with llama-server's exact 401 and lets /health through", async () => {
      const { url } = await start({ apiKey: "secret" });
      const missing = await call(url, "/v1/chat/completions", { messages });
      expect(missing.status).to.equal(401);
      expect(missing.text).to.equal(capture("auth_missing.body"));
      expect(missing.headers["content-type"]).to.equal(captureHeader("auth_missing", "Content-Type"));
      const wrong = await call(url, "/v1/chat/completions", { messages }, { authorization: "Bearer nope" });
      expect(wrong.status).to.equal(401);
      expect(wrong.text).to.equal(capture("auth_wrong.body"));
      const models = await call(url, "/v1/models");
      expect(models.status).to.equal(401);
      expect(models.text).to.equal(capture("auth_missing_models.body"));
      expect((await call(url, "/health")).status).to.equal(200);
      const bearer = await call(url, "/v1/chat/completions", { messages, max_tokens: 1 }, { authorization: "Bearer secret" });
      expect(bearer.status).to.equal(200);
      const apiKeyHeader = await call(url, "/v1/models", undefined, { "x-api-key": "secret" });
      expect(apiKeyHeader.status).to.equal(200);
    });
  });

  describe("pacing", () => {
    it("waits for the first token, then paces tokens at tokensPerSecond", async () => {
      const { url } = await start({ tokensPerSecond: 50, timeToFirstTokenMs: 30 });
      const startedMs = performance.now();
      const reply = await call(url, "/v1/chat/completions", { messages, max_tokens: 6, stream: true });
      const elapsedMs = performance.now() - startedMs;
      expect(sseData(reply.text)).to.have.length(1 + 6 + 1 + 1);
      // 30 ms to the first token, then 5 gaps of 20 ms; a lower bound only, since a busy machine is slower.
      expect(elapsedMs).to.be.at.least(120);
      const timings = JSON.parse(sseData(reply.text).at(-2) ?? "");
      expect(dig(timings, "timings", "prompt_ms")).to.be.at.least(29);
    });

    it("honours per-request tokens_per_second and ttft_ms overrides", async () => {
      const { url } = await start({ tokensPerSecond: 1, timeToFirstTokenMs: 5000 });
      const reply = await call(url, "/v1/completions", {
        prompt: "fast please",
        max_tokens: 3,
        sim: { tokens_per_second: 0, ttft_ms: 0 },
      });
      expect(dig(parse(reply.text), "choices", 0, "text")).to.equal(expectedCompletionText("fast please", 3));
    });
  });

  describe("failures and aborts", () => {
    it("injects a status failure from the options, which a request can turn off", async () => {
      const { url } = await start({ failure: { mode: "status", status: 503 } });
      const failed = await call(url, "/v1/chat/completions", { messages, stream: true });
      expect(failed.status).to.equal(503);
      expect(failed.text).to.equal('{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}');
      expect(failed.headers["content-type"]).to.equal("application/json; charset=utf-8");
      const spared = await call(url, "/v1/chat/completions", { messages, max_tokens: 1, sim: { fail: "none" } });
      expect(spared.status).to.equal(200);
    });

    it("fails a share of requests with failure.probability, drawing from the injected random", async () => {
      const draws = [0.1, 0.9];
      const { url } = await start({ failure: { mode: "status", probability: 0.5 }, random: () => draws.shift() ?? 0 });
      expect((await call(url, "/v1/chat/completions", { messages, max_tokens: 1 })).status).to.equal(500);
      expect((await call(url, "/v1/chat/completions", { messages, max_tokens: 1 })).status).to.equal(200);
    });

    it("ends a begun stream with an error frame and no [DONE] on a mid-stream status failure", async () => {
      const { url } = await start();
      const reply = await call(url, "/v1/chat/completions", {
        messages,
        max_tokens: 10,
        stream: true,
        sim: { fail: "status", fail_status: 500, fail_after_tokens: 2 },
      });
      expect(reply.status).to.equal(200);
      const frames = sseData(reply.text);
      expect(frames).to.have.length(1 + 2 + 1);
      expect(frames.at(-1)).to.equal('{"error":{"code":500,"message":"simulated failure (HTTP 500)","type":"server_error"}}');
      expect(frames).to.not.include("[DONE]");
    });

    it("records a stalled request as aborted when its client gives up", async () => {
      const { sim, url } = await start();
      const controller = new AbortController();
      const outcome = call(
        url,
        "/v1/chat/completions",
        { model: "m1", messages, stream: true, sim: { fail: "stall" } },
        {},
        controller.signal,
      ).then(
        () => "answered",
        () => "failed",
      );
      const seen = await sim.waitForRequest((request) => request.path === "/v1/chat/completions", 1000);
      expect(sim.activeGenerations).to.equal(1);
      controller.abort();
      const aborted = await sim.waitForAbort((entry) => entry.id === seen.id, 1000);
      expect(await outcome).to.equal("failed");
      expect(aborted).to.include({ path: "/v1/chat/completions", model: "m1", stream: true, tokensSent: 0 });
      expect(aborted.atMs).to.be.a("number");
      expect(sim.activeGenerations).to.equal(0);
    });

    it("records a client abort mid-stream within a second and stops generating", async () => {
      const { sim, url } = await start({ tokensPerSecond: 20 });
      const controller = new AbortController();
      const res = await request(`${url}/v1/chat/completions`, {
        method: "POST",
        body: JSON.stringify({ messages, max_tokens: 1000, stream: true }),
        dispatcher: agent,
        signal: controller.signal,
      });
      const body = res.body[Symbol.asyncIterator]();
      const first = await body.next();
      expect(String(first.value)).to.include('"role":"assistant"');
      const abortedAtMs = Date.now();
      controller.abort();
      const aborted = await sim.waitForAbort(undefined, 1000);
      expect(aborted.atMs - abortedAtMs).to.be.below(1000);
      expect(aborted).to.include({ path: "/v1/chat/completions", model: undefined, stream: true });
      expect(aborted.tokensSent).to.be.below(1000);
      expect(sim.activeGenerations).to.equal(0);
      expect(sim.aborted).to.have.length(1);
    });

    it("drops the connection after N tokens without counting it as a client abort", async () => {
      const { sim, url } = await start();
      let received = "";
      const res = await request(`${url}/v1/chat/completions`, {
        method: "POST",
        body: JSON.stringify({ messages, max_tokens: 10, stream: true, sim: { fail: "drop", fail_after_tokens: 2 } }),
        dispatcher: agent,
      });
      let failure: unknown;
      try {
        for await (const chunk of res.body) received += String(chunk);
      } catch (error) {
        failure = error;
      }
      expect(failure, "the stream broke").to.be.instanceOf(Error);
      expect(received).to.include(expectedCompletionText(messages, 2).split(" ").at(-1));
      expect(received).to.not.include("[DONE]");
      await waitUntil(() => sim.openConnections === 0, 1000);
      expect(sim.aborted).to.deep.equal([]);
    });

    it("drops an unstreamed request before any header", async () => {
      const { url } = await start();
      let failure: unknown;
      try {
        await call(url, "/v1/completions", { prompt: "x", sim: { fail: "drop" } });
      } catch (error) {
        failure = error;
      }
      expect(failure).to.be.instanceOf(Error);
    });

    it("closes with stalled requests and keep-alive connections open", async () => {
      const sim = createSimulator({ timeToFirstTokenMs: 0 });
      const { url } = await sim.listen();
      await call(url, "/health");
      const outcome = call(url, "/v1/chat/completions", { messages, sim: { fail: "stall" } }).then(
        () => "answered",
        () => "failed",
      );
      await sim.waitForRequest((request) => request.path === "/v1/chat/completions", 1000);
      await sim.close();
      expect(await outcome).to.equal("failed");
      expect(sim.openConnections).to.equal(0);
      expect(sim.activeGenerations).to.equal(0);
      expect(sim.aborted, "closing is not a client abort").to.deep.equal([]);
    });
  });

  describe("records", () => {
    it("records requests with headers and parsed bodies, and counts them by path", async () => {
      const { sim, url } = await start();
      await call(url, "/v1/chat/completions", { messages, max_tokens: 1 }, { "x-trace": "t1" });
      await call(url, "/v1/models?x=1");
      await call(url, "/v1/models");
      expect(sim.requestCounts.get("/v1/chat/completions")).to.equal(1);
      expect(sim.requestCounts.get("/v1/models")).to.equal(2);
      const chat = sim.requests.find((request) => request.path === "/v1/chat/completions");
      expect(chat?.method).to.equal("POST");
      expect(chat?.headers["x-trace"]).to.equal("t1");
      expect(chat?.body).to.deep.equal({ messages, max_tokens: 1 });
      sim.reset();
      expect(sim.requests).to.deep.equal([]);
      expect(sim.requestCounts.size).to.equal(0);
    });

    it("keeps only the most recent maxRecordedRequests", async () => {
      const { sim, url } = await start({ maxRecordedRequests: 2 });
      for (let index = 0; index < 5; index++) await call(url, `/health?i=${index}`);
      expect(sim.requests).to.have.length(2);
      expect(sim.requestCounts.get("/health")).to.equal(5);
    });
  });
});

/** waitUntil polls condition until it holds, failing after timeoutMs. */
async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadlineMs = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadlineMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
