import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect } from "chai";
import { StreamSummary, summarizeJsonAnswer } from "./answer-summary.js";
import { SseParser } from "./sse-parser.js";

const SAMPLES = fileURLToPath(new URL("../../test/fixtures/llama-server", import.meta.url));

function summarizeStream(name: string): ReturnType<StreamSummary["trailer"]> {
  const summary = new StreamSummary();
  for (const event of new SseParser().push(readFileSync(`${SAMPLES}/${name}`))) summary.observe(event.data);
  return summary.trailer();
}

describe("answer summaries", () => {
  it("reads usage and finish reasons from a non-streamed llama-server answer", () => {
    const body: unknown = JSON.parse(readFileSync(`${SAMPLES}/chat_nonstream.body`, "utf8"));
    expect(summarizeJsonAnswer(body)).to.deep.equal({
      usage: { promptTokens: 52, completionTokens: 8, totalTokens: 60, cachedPromptTokens: 8, reasoningTokens: 0 },
      finishReasons: ["length"],
    });
  });

  it("orders finish reasons by choice index", () => {
    const body: unknown = JSON.parse(readFileSync(`${SAMPLES}/chat_n2.body`, "utf8"));
    const trailer = summarizeJsonAnswer(body);
    expect(trailer.finishReasons).to.have.length(2);
    expect(
      summarizeJsonAnswer({
        choices: [
          { index: 1, finish_reason: "stop" },
          { index: 0, finish_reason: "length" },
        ],
      }),
    ).to.deep.equal({ finishReasons: ["length", "stop"] });
  });

  it("finds the finish reason in a stream without usage, and the usage chunk when asked for", () => {
    expect(summarizeStream("chat_stream.body")).to.deep.equal({ finishReasons: ["length"] });
    expect(summarizeStream("chat_stream_usage.body")).to.deep.equal({
      usage: { promptTokens: 31, completionTokens: 5, totalTokens: 36, cachedPromptTokens: 30, reasoningTokens: 0 },
      finishReasons: ["length"],
    });
    expect(summarizeStream("completions_stream.body").usage).to.include({ promptTokens: 5, completionTokens: 4 });
  });

  it("accepts spaced JSON and reasoning tokens, and is not fooled by keys quoted inside generated text", () => {
    const summary = new StreamSummary();
    summary.observe(
      Buffer.from(
        '{"choices": [{"index": 0, "delta": {"content": "say \\"usage\\": {\\"finish_reason\\": \\"x\\""}, "finish_reason": null}]}',
      ),
    );
    expect(summary.trailer()).to.deep.equal({ finishReasons: [] });
    summary.observe(
      Buffer.from(
        '{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "completion_tokens_details": {"reasoning_tokens": 2}}}',
      ),
    );
    summary.observe(Buffer.from("[DONE]"));
    expect(summary.trailer()).to.deep.equal({
      usage: { promptTokens: 3, completionTokens: 4, totalTokens: 7, cachedPromptTokens: 0, reasoningTokens: 2 },
      finishReasons: ["stop"],
    });
  });

  it("ignores malformed usage and non-object bodies", () => {
    expect(summarizeJsonAnswer("text")).to.deep.equal({ finishReasons: [] });
    expect(summarizeJsonAnswer({ usage: { prompt_tokens: -1, completion_tokens: "9" } }).usage).to.deep.equal({
      promptTokens: 0,
      completionTokens: 0,
      totalTokens: 0,
      cachedPromptTokens: 0,
      reasoningTokens: 0,
    });
  });

  it("reads the input and output tokens of audio and image answers, and no usage from a duration", () => {
    expect(
      summarizeJsonAnswer({
        data: [],
        usage: { input_tokens: 50, output_tokens: 272, total_tokens: 322, input_tokens_details: { cached_tokens: 4 } },
      }),
    ).to.deep.equal({
      usage: { promptTokens: 50, completionTokens: 272, totalTokens: 322, cachedPromptTokens: 4, reasoningTokens: 0 },
      finishReasons: [],
    });
    expect(summarizeJsonAnswer({ text: "hi", usage: { type: "duration", seconds: 3 } })).to.deep.equal({ finishReasons: [] });
  });
});
