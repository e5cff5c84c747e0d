import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect } from "chai";
import { Operation } from "../../gen/infermesh/v1/inference_pb.js";
import { expectedSpeech, SPEECH_SAMPLE_RATE, speechSampleCount } from "../sim/simulator.js";
import { BodySummary, MAX_SUMMARIZED_BYTES, StreamSummary, summarizeJsonAnswer } from "./answer-summary.js";
import { SseParser } from "./sse-parser.js";

const CHAT = { operation: Operation.CHAT_COMPLETION, body: new Uint8Array(0) };
const SAMPLES = fileURLToPath(new URL("../../test/fixtures/llama-server", import.meta.url));

function summarizeStream(name: string): ReturnType<StreamSummary["trailer"]> {
  const summary = new StreamSummary(CHAT);
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
