import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect } from "chai";
import { Operation } from "../../gen/infermesh/v1/inference_pb.js";
import { expectedSpeech, SPEECH_SAMPLE_RATE, speechSampleCount } from "../sim/simulator.js";
import { BodySummary, MAX_SUMMARIZED_BYTES, StreamSummary, summarizeJsonAnswer } from "./answer-summary.js";
import { SseParser } from "./sse-parser.js";

const CHAT = { operation: Operation.CHAT_COMPLETION, body: new Uint8Array(0) };
const SAMPLES = fileURLToPath(new URL("../../test/fixtures/llama-server", import.meta.url));

function summarizeStream(name: string, operation = Operation.CHAT_COMPLETION): ReturnType<StreamSummary["trailer"]> {
  const summary = new StreamSummary({ ...CHAT, operation });
  for (const event of new SseParser().push(readFileSync(`${SAMPLES}/${name}`))) summary.observe(event.data);
  return summary.trailer();
}

describe("answer summaries", () => {
  it("reads usage and finish reasons from a non-streamed llama-server answer", () => {
    const body: unknown = JSON.parse(readFileSync(`${SAMPLES}/chat_nonstream.body`, "utf8"));
    expect(summarizeJsonAnswer(body, Operation.CHAT_COMPLETION)).to.deep.equal({
      usage: { promptTokens: 52, completionTokens: 8, totalTokens: 60, cachedPromptTokens: 8, reasoningTokens: 0 },
      finishReasons: ["length"],
    });
  });

  it("orders finish reasons by choice index", () => {
    const body: unknown = JSON.parse(readFileSync(`${SAMPLES}/chat_n2.body`, "utf8"));
    const trailer = summarizeJsonAnswer(body, Operation.CHAT_COMPLETION);
    expect(trailer.finishReasons).to.have.length(2);
    expect(
      summarizeJsonAnswer(
        {
          choices: [
            { index: 1, finish_reason: "stop" },
            { index: 0, finish_reason: "length" },
          ],
        },
        Operation.CHAT_COMPLETION,
      ),
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
    const summary = new StreamSummary(CHAT);
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
    expect(summarizeJsonAnswer("text", Operation.CHAT_COMPLETION)).to.deep.equal({ finishReasons: [] });
    expect(summarizeJsonAnswer({ usage: { prompt_tokens: -1, completion_tokens: "9" } }, Operation.COMPLETION).usage).to.deep.equal({
      promptTokens: 0,
      completionTokens: 0,
      totalTokens: 0,
      cachedPromptTokens: 0,
      reasoningTokens: 0,
    });
  });

  it("reads the input and output tokens of audio and image answers, and no token usage from a duration", () => {
    expect(
      summarizeJsonAnswer(
        {
          data: [],
          usage: { input_tokens: 50, output_tokens: 272, total_tokens: 322, input_tokens_details: { cached_tokens: 4 } },
        },
        Operation.IMAGE_GENERATION,
      ),
    ).to.deep.equal({
      usage: { promptTokens: 50, completionTokens: 272, totalTokens: 322, cachedPromptTokens: 4, reasoningTokens: 0 },
      finishReasons: [],
    });
    expect(summarizeJsonAnswer({ text: "hi", usage: { type: "duration", seconds: 3 } }, Operation.CHAT_COMPLETION)).to.deep.equal({
      finishReasons: [],
    });
  });

  describe("embeddings, rerank, responses, messages and count_tokens", () => {
    const sample = (name: string): unknown => JSON.parse(readFileSync(`${SAMPLES}/${name}.body`, "utf8"));
    const tokens = (promptTokens: number, completionTokens: number, cachedPromptTokens = 0, reasoningTokens = 0) => ({
      promptTokens,
      completionTokens,
      totalTokens: promptTokens + completionTokens,
      cachedPromptTokens,
      reasoningTokens,
    });

    it("reads the prompt tokens of llama-server's embeddings and of a rerank answer", () => {
      expect(summarizeJsonAnswer(sample("embeddings"), Operation.EMBEDDING)).to.deep.equal({ usage: tokens(13, 0), finishReasons: [] });
      const rerank = {
        model: "tiny-rerank",
        object: "list",
        usage: { prompt_tokens: 21, total_tokens: 21 },
        results: [{ index: 0, relevance_score: 0.9 }],
      };
      expect(summarizeJsonAnswer(rerank, Operation.RERANK)).to.deep.equal({ usage: tokens(21, 0), finishReasons: [] });
    });

    it("reads a response's usage and status, non-streamed and from a stream's response.completed", () => {
      expect(summarizeJsonAnswer(sample("responses"), Operation.RESPONSE)).to.deep.equal({
        usage: tokens(18, 12),
        finishReasons: ["stop"],
      });
      expect(summarizeStream("responses_stream.body", Operation.RESPONSE)).to.deep.equal({
        usage: tokens(18, 6, 17),
        finishReasons: ["stop"],
      });
      const incomplete = {
        object: "response",
        status: "incomplete",
        incomplete_details: { reason: "max_output_tokens" },
        usage: { input_tokens: 9, output_tokens: 64, total_tokens: 73, output_tokens_details: { reasoning_tokens: 60 } },
      };
      expect(summarizeJsonAnswer(incomplete, Operation.RESPONSE)).to.deep.equal({ usage: tokens(9, 64, 0, 60), finishReasons: ["length"] });
      const called = { object: "response", status: "completed", output: [{ type: "function_call", name: "f", arguments: "{}" }] };
      expect(summarizeJsonAnswer(called, Operation.RESPONSE)).to.deep.equal({ finishReasons: ["tool_calls"] });
      const stream = new StreamSummary({ ...CHAT, operation: Operation.RESPONSE });
      stream.observe(Buffer.from(JSON.stringify({ type: "response.created", response: { status: "in_progress", usage: null } })));
      stream.observe(Buffer.from(JSON.stringify({ type: "response.output_text.delta", delta: 'say ".completed"' })));
      expect(stream.trailer(), "nothing before the response ends").to.deep.equal({ finishReasons: [] });
      const filtered = { status: "incomplete", incomplete_details: { reason: "content_filter" } };
      stream.observe(Buffer.from(JSON.stringify({ type: "response.incomplete", response: filtered })));
      expect(stream.trailer()).to.deep.equal({ finishReasons: ["content_filter"] });
    });

    it("adds the cache's tokens to a message's prompt, and spells its stop reason as chat's, non-streamed and streamed", () => {
      expect(summarizeJsonAnswer(sample("messages"), Operation.MESSAGE)).to.deep.equal({
        usage: tokens(18, 12, 17),
        finishReasons: ["length"],
      });
      expect(summarizeJsonAnswer(sample("messages_missing_max_tokens"), Operation.MESSAGE)).to.deep.equal({
        usage: tokens(16, 133, 8),
        finishReasons: ["stop"],
      });
      expect(summarizeStream("messages_stream.body", Operation.MESSAGE)).to.deep.equal({
        usage: tokens(18, 6, 17),
        finishReasons: ["length"],
      });
      const stream = new StreamSummary({ ...CHAT, operation: Operation.MESSAGE });
      const start = { type: "message_start", message: { stop_reason: null, usage: { input_tokens: 5, output_tokens: 1 } } };
      stream.observe(Buffer.from(JSON.stringify(start)));
      const delta = {
        type: "message_delta",
        delta: { stop_reason: "tool_use", stop_sequence: null },
        usage: { output_tokens: 30, input_tokens: 5, cache_creation_input_tokens: 100, cache_read_input_tokens: 0 },
      };
      stream.observe(Buffer.from(JSON.stringify(delta)));
      expect(stream.trailer(), "message_delta's input fields, when it has them, count too").to.deep.equal({
        usage: tokens(105, 30),
        finishReasons: ["tool_calls"],
      });
    });

    it("counts no usage for count_tokens: the tokens it counts are its answer", () => {
      expect(summarizeJsonAnswer(sample("messages_count_tokens"), Operation.COUNT_TOKENS)).to.deep.equal({ finishReasons: [] });
      expect(summarizeJsonAnswer({ input_tokens: 5, usage: { input_tokens: 5 } }, Operation.COUNT_TOKENS)).to.deep.equal({
        finishReasons: [],
      });
    });
  });

  describe("media", () => {
    const call = (operation: Operation, body: unknown = {}) => ({ operation, body: Buffer.from(JSON.stringify(body)) });

    it("reads a transcription's reported length: usage seconds in any format, else verbose_json's duration", () => {
      const transcription = (body: unknown) => summarizeJsonAnswer(body, Operation.TRANSCRIPTION);
      expect(transcription({ text: "hi", usage: { type: "duration", seconds: 4 } })).to.deep.equal({
        usage: { audioSeconds: 4 },
        finishReasons: [],
      });
      expect(
        transcription({ task: "transcribe", duration: 3.52, text: "hi", usage: { type: "duration", seconds: 4 } }).usage,
      ).to.deep.equal({
        audioSeconds: 4,
      });
      expect(transcription({ task: "transcribe", duration: 3.52, text: "hi" }).usage).to.deep.equal({ audioSeconds: 3.52 });
      expect(
        summarizeJsonAnswer({ task: "translate", duration: 2.5, text: "hi" }, Operation.TRANSLATION).usage,
        "a translation",
      ).to.deep.equal({
        audioSeconds: 2.5,
      });
      const tokens = { type: "tokens", input_tokens: 14, output_tokens: 3, total_tokens: 17 };
      expect(transcription({ text: "hi", usage: tokens }).usage, "gpt-4o-transcribe counts tokens, not seconds").to.deep.equal({
        promptTokens: 14,
        completionTokens: 3,
        totalTokens: 17,
        cachedPromptTokens: 0,
        reasoningTokens: 0,
      });
      for (const unreported of [{ text: "hi" }, { text: "hi", duration: "3" }, { duration: -1 }, { usage: { type: "duration" } }]) {
        expect(transcription(unreported), JSON.stringify(unreported)).to.deep.equal({ finishReasons: [] });
      }
    });

    it("takes a duration for a transcription's only, and counts images for image answers only", () => {
      expect(summarizeJsonAnswer({ duration: 3, data: [{}], choices: [] }, Operation.CHAT_COMPLETION)).to.deep.equal({ finishReasons: [] });
      expect(summarizeJsonAnswer({ duration: 3, data: [{}] }, Operation.SPEECH)).to.deep.equal({ finishReasons: [] });
      expect(summarizeJsonAnswer({ duration: 3, data: [{}, {}] }, Operation.IMAGE_EDIT)).to.deep.equal({
        usage: { images: 2 },
        finishReasons: [],
      });
    });

    it("reads a streamed transcription's usage from transcript.text.done", () => {
      const summary = new StreamSummary(call(Operation.TRANSCRIPTION));
      summary.observe(Buffer.from('{"type":"transcript.text.delta","delta":"Hi"}'));
      summary.observe(Buffer.from('{"type":"transcript.text.done","text":"Hi","usage":{"type":"duration","seconds":2.5}}'));
      expect(summary.trailer()).to.deep.equal({ usage: { audioSeconds: 2.5 }, finishReasons: [] });
    });

    it("counts a streamed image answer's completed events, not its partial images, and keeps their token usage", () => {
      const summary = new StreamSummary(call(Operation.IMAGE_GENERATION));
      const partial = { type: "image_generation.partial_image", b64_json: "AAAA", partial_image_index: 0 };
      summary.observe(Buffer.from(JSON.stringify(partial)));
      summary.observe(Buffer.from(JSON.stringify({ type: "image_generation.completed", b64_json: "AAAA" })));
      const usage = { input_tokens: 10, output_tokens: 20, total_tokens: 30 };
      summary.observe(Buffer.from(JSON.stringify({ type: "image_generation.completed", b64_json: "BBBB", usage })));
      expect(summary.trailer()).to.deep.equal({
        usage: { promptTokens: 10, completionTokens: 20, totalTokens: 30, cachedPromptTokens: 0, reasoningTokens: 0, images: 2 },
        finishReasons: [],
      });
      const edits = new StreamSummary(call(Operation.IMAGE_EDIT));
      edits.observe(Buffer.from(JSON.stringify({ type: "image_edit.completed", b64_json: "AAAA" })));
      expect(edits.trailer().usage).to.deep.equal({ images: 1 });
    });

    it("measures the audio a speech stream's deltas carry, in the format the call asked for", () => {
      const pcm = new StreamSummary(call(Operation.SPEECH, { input: "hi", response_format: "pcm", stream_format: "sse" }));
      for (let delta = 0; delta < 3; delta++) {
        pcm.observe(Buffer.from(JSON.stringify({ type: "speech.audio.delta", audio: Buffer.alloc(24_000).toString("base64") })));
      }
      pcm.observe(
        Buffer.from(JSON.stringify({ type: "speech.audio.done", usage: { input_tokens: 2, output_tokens: 5, total_tokens: 7 } })),
      );
      expect(pcm.trailer().usage).to.deep.equal({
        promptTokens: 2,
        completionTokens: 5,
        totalTokens: 7,
        cachedPromptTokens: 0,
        reasoningTokens: 0,
        audioSeconds: 1.5,
      });
      const unknown = new StreamSummary(call(Operation.SPEECH, { input: "hi", stream_format: "sse" }));
      unknown.observe(Buffer.from(JSON.stringify({ type: "speech.audio.delta", audio: Buffer.alloc(24_000).toString("base64") })));
      expect(unknown.trailer(), "raw samples nobody declared are not guessed at").to.deep.equal({ finishReasons: [] });
    });

    /** bodyTrailer reads body, in pieces of size bytes, as relayBody does an answer of contentType to call. */
    function bodyTrailer(summarized: ReturnType<typeof call>, contentType: string, body: Uint8Array, size = 1000) {
      const summary = new BodySummary(summarized, contentType);
      for (let at = 0; at < body.length; at += size) summary.add(body.subarray(at, at + size));
      return summary.trailer();
    }

    it("reads a relayed JSON body for its usage and images, and leaves other bodies unread", () => {
      const images = Buffer.from(
        JSON.stringify({ created: 1, data: [{ b64_json: "AAAA" }, { b64_json: "BBBB" }], usage: { input_tokens: 3 } }),
      );
      expect(bodyTrailer(call(Operation.IMAGE_GENERATION), "application/json; charset=utf-8", images, 7).usage).to.deep.include({
        promptTokens: 3,
        images: 2,
      });
      expect(bodyTrailer(call(Operation.IMAGE_GENERATION), "image/png", Buffer.from("\x89PNG"))).to.deep.equal({ finishReasons: [] });
      const transcript = Buffer.from(JSON.stringify({ text: "hi", usage: { type: "duration", seconds: 7 } }));
      expect(bodyTrailer(call(Operation.TRANSCRIPTION), "application/json", transcript, 5).usage).to.deep.equal({ audioSeconds: 7 });
      expect(bodyTrailer(call(Operation.TRANSCRIPTION), "text/plain", Buffer.from("hi"))).to.deep.equal({ finishReasons: [] });
    });

    it("counts the images of a JSON answer too large to keep aside as they pass, whatever their strings hold", () => {
      const image = "A".repeat(4 * 1024 * 1024);
      const tricky = 'a \\"data\\": [{}, {}] and a backslash \\\\';
      const body = Buffer.from(
        JSON.stringify({
          created: 1,
          metadata: [{}, {}],
          data: [
            { b64_json: image, revised_prompt: tricky },
            { b64_json: image, data: [{}, {}] },
            { url: "data:image/png;base64,AAAA", "[{": "}]" },
          ],
          "data ": [{}],
          usage: { input_tokens: 3 },
        }),
      );
      expect(body.length).to.be.above(MAX_SUMMARIZED_BYTES);
      for (const size of [1 + 64 * 1024, 3 * 1024 * 1024]) {
        expect(bodyTrailer(call(Operation.IMAGE_EDIT), "application/json", body, size), `pieces of ${size}`).to.deep.equal({
          usage: { images: 3 },
          finishReasons: [],
        });
      }
      const small = Buffer.from(JSON.stringify({ metadata: [{}], data: [{ revised_prompt: tricky }] }));
      for (const size of [1, 2, 3])
        expect(bodyTrailer(call(Operation.IMAGE_EDIT), "application/json", small, size).usage).to.deep.equal({ images: 1 });
    });

    it("measures relayed speech from its bytes, told pcm by the content type or the request, a container's own type winning", () => {
      const exact = speechSampleCount("hello there") / SPEECH_SAMPLE_RATE;
      const asked = (format: string) => call(Operation.SPEECH, { input: "hello there", response_format: format });
      for (const [format, contentType] of [
        ["wav", "audio/wav"],
        ["flac", "audio/flac"],
        ["opus", "audio/ogg"],
        ["pcm", "audio/pcm"],
        ["pcm", "application/octet-stream"],
      ] as const) {
        const trailer = bodyTrailer(asked(format), contentType, expectedSpeech("hello there", format), 333);
        expect(trailer.usage?.audioSeconds, `${format} as ${contentType}`).to.be.closeTo(exact, 1e-9);
      }
      const mp3 = expectedSpeech("hello there", "mp3");
      const mp3Seconds = (Math.ceil(speechSampleCount("hello there") / 576) * 576) / SPEECH_SAMPLE_RATE;
      expect(bodyTrailer(asked("pcm"), "audio/mpeg", mp3).usage?.audioSeconds, "a server that sent mp3 when asked for pcm").to.be.closeTo(
        mp3Seconds,
        1e-9,
      );
      expect(bodyTrailer(asked("mp3"), "application/octet-stream", Buffer.alloc(48_000)), "undeclared raw bytes").to.deep.equal({
        finishReasons: [],
      });
    });
  });
});
