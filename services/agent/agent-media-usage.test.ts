import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import type { StockClient } from "../../test/support/stock-grpc-client.js";
import {
  createSimulator,
  expectedSpeech,
  expectedTranscription,
  SPEECH_SAMPLE_RATE,
  speechSampleCount,
  testWav,
} from "../sim/simulator.js";
import { type AgentFixture, startAgentFixture } from "./test-support/agent-fixture.js";
import { type FakeUpstream, startFakeUpstream } from "./test-support/fake-upstream.js";
import { type InferResult, infer, type StockCall, type StockMediaFile, type StockPart } from "./test-support/infer-client.js";
import { automatic1111Server, type NativeRecord, whisperCppServer } from "./test-support/native-servers.js";
import { tinyPng } from "./test-support/tiny-png.js";

const SPOKEN = "Usage counts what was said, not what was asked.";
const SAMPLES = speechSampleCount(SPOKEN);
const UPLOAD = testWav(2.5);

/** StockUsage is a trailer's usage as the stock client decodes it (proto3 JSON names, defaults filled in). */
interface StockUsage {
  promptTokens: number;
  completionTokens: number;
  audioSeconds: number;
  images: number;
}

function kinds(result: InferResult): string[] {
  return result.parts.map((part) => part.part);
}

function dataOf(parts: readonly StockPart[]): Buffer {
  return Buffer.concat(parts.filter((part) => part.part === "data").map((part) => part.data as Buffer));
}

/** usageOf is the usage of the answer's trailer, which must end it; undefined when it has none (the stock client's null). */
function usageOf(result: InferResult): StockUsage | undefined {
  expect(result.status.code, result.status.details).to.equal(grpc.status.OK);
  expect(result.parts.at(-1)?.part, JSON.stringify(result.parts.at(-1))).to.equal("trailer");
  return (result.parts.at(-1)?.trailer as { usage?: StockUsage | null } | undefined)?.usage ?? undefined;
}

describe("agent trailers of media answers: the audio's seconds and the images' count", () => {
  let fixture: AgentFixture;
  let whisper: FakeUpstream;
  let webui: FakeUpstream;
  let client: StockClient;
  let token: string;

  function call(operation: string, model: string, fields: Record<string, unknown>, extra: Partial<StockCall> = {}): Promise<InferResult> {
    const body = Buffer.from(JSON.stringify({ model, ...fields }));
    return infer(client, { operation: `OPERATION_${operation}`, model, body, requestId: "req-usage", ...extra }, token);
  }

  function transcribe(model: string, fields: Record<string, string>, extra: Partial<StockCall> = {}): Promise<InferResult> {
    const media: StockMediaFile[] = [{ role: "MEDIA_ROLE_AUDIO", filename: "talk.wav", contentType: "audio/wav", data: UPLOAD }];
    return call("TRANSCRIPTION", model, fields, { media, ...extra });
  }

  before(async () => {
    const simulator = createSimulator({
      models: [
        { id: "sim-whisper", kind: "stt" },
        { id: "sim-image", kind: "image" },
        { id: "sim-voice", kind: "tts" },
      ],
      timeToFirstTokenMs: 0,
      speechChunkIntervalMs: 0,
    });
    const { url } = await simulator.listen();
    const record: NativeRecord = { forms: [], payloads: [] };
    whisper = await startFakeUpstream(whisperCppServer(record));
    webui = await startFakeUpstream(automatic1111Server(record));
    fixture = await startAgentFixture({
      user: "frank",
      upstreams: [
        { type: "stt", url, expose: ["sim-whisper"] },
        { type: "image", url, expose: ["sim-image"] },
        { type: "tts", url, expose: ["sim-voice"] },
        { type: "stt", kind: "whispercpp", url: whisper.url, declare: ["whisper-large-v3"] },
        { type: "image", kind: "automatic1111", url: webui.url },
      ],
      servers: [simulator, whisper, webui],
      mediaClient: true,
    });
    ({ client, token } = fixture);
  });

  after(() => fixture.close());

  describe("speech: the length of the audio relayed, measured from its bytes", () => {
    const exact = SAMPLES / SPEECH_SAMPLE_RATE;
    const lengths: Record<string, number> = {
      wav: exact,
      pcm: exact,
      flac: exact,
      opus: exact,
      mp3: (Math.ceil(SAMPLES / 576) * 576) / SPEECH_SAMPLE_RATE,
      aac: (Math.ceil(SAMPLES / 1024) * 1024) / SPEECH_SAMPLE_RATE,
    };
    for (const [format, seconds] of Object.entries(lengths)) {
      it(`measures ${format} relayed in pieces`, async () => {
        const result = await call("SPEECH", "sim-voice", { input: SPOKEN, voice: "alloy", response_format: format });
        const usage = usageOf(result);
        expect(result.parts.filter((part) => part.part === "data").length, "relayed as it came, in several parts").to.be.above(1);
        expect(dataOf(result.parts)).to.deep.equal(expectedSpeech(SPOKEN, format as "wav"));
        expect(usage?.audioSeconds).to.be.closeTo(seconds, 1e-9);
        expect(usage?.promptTokens, "a speech body reports no tokens").to.equal(0);
      });
    }

    it("measures the audio of a speech event stream's deltas, beside the tokens its done event reports", async () => {
      const result = await call("SPEECH", "sim-voice", { input: SPOKEN, response_format: "opus", stream_format: "sse" }, { stream: true });
      const usage = usageOf(result);
      expect(kinds(result).filter((kind) => kind === "event").length).to.be.above(2);
      expect(usage?.audioSeconds).to.be.closeTo(exact, 1e-9);
      expect(usage?.completionTokens).to.equal(Math.ceil(SAMPLES / 480));
    });
  });

  describe("transcription: the length the server reports, nothing when it reports none", () => {
    const transcript = expectedTranscription(UPLOAD);

    it("takes usage seconds from json and verbose_json alike", async () => {
      expect(transcript.durationSeconds).to.equal(2.5);
      for (const format of ["json", "verbose_json"]) {
        const result = await transcribe("sim-whisper", { response_format: format });
        const answer = JSON.parse(dataOf(result.parts).toString()) as { usage: unknown; duration?: number };
        expect(answer.usage).to.deep.equal({ type: "duration", seconds: 3 });
        expect(answer.duration).to.equal(format === "verbose_json" ? 2.5 : undefined);
        expect(usageOf(result)?.audioSeconds, `${format}: the usage, the same whatever the format`).to.equal(3);
      }
    });

    it("has no seconds for text and subtitles, nor for a stream that counts tokens; never a guess from the upload's size", async () => {
      for (const format of ["text", "srt", "vtt"]) {
        expect(usageOf(await transcribe("sim-whisper", { response_format: format })), format).to.equal(undefined);
      }
      const streamed = usageOf(await transcribe("sim-whisper", { stream: "true" }, { stream: true }));
      expect(streamed?.audioSeconds).to.equal(0);
      expect(streamed?.promptTokens).to.equal(25);
    });

    it("reads whisper.cpp's verbose_json duration through the adapter, and nothing from its json", async () => {
      expect(usageOf(await transcribe("whisper-large-v3", { response_format: "verbose_json" }))?.audioSeconds).to.equal(4);
      expect(usageOf(await transcribe("whisper-large-v3", { response_format: "json" }))).to.equal(undefined);
      expect(usageOf(await transcribe("whisper-large-v3", { stream: "true" }, { stream: true }))).to.equal(undefined);
    });
  });

  describe("images: how many the answer returned", () => {
    it("counts data of a JSON answer, beside its tokens", async () => {
      const result = await call("IMAGE_GENERATION", "sim-image", { prompt: "a fox", size: "32x32", n: 3 });
      expect(JSON.parse(dataOf(result.parts).toString()).data).to.have.length(3);
      expect(usageOf(result)).to.deep.include({ images: 3 });
      expect(usageOf(result)?.promptTokens).to.be.above(0);
    });

    it("counts the completed events of a stream, not its partial images", async () => {
      const fields = { prompt: "a fox", size: "32x32", n: 2, stream: true, partial_images: 2 };
      const result = await call("IMAGE_GENERATION", "sim-image", fields, { stream: true });
      expect(kinds(result).filter((kind) => kind === "event")).to.have.length(6);
      expect(usageOf(result)?.images).to.equal(2);
    });

    it("counts an edit's images", async () => {
      const media: StockMediaFile[] = [
        { role: "MEDIA_ROLE_IMAGE", filename: "in.png", contentType: "image/png", data: tinyPng({ width: 8, height: 8 }) },
      ];
      const result = await call("IMAGE_EDIT", "sim-image", { prompt: "add a hat", size: "32x32", n: "2" }, { media });
      expect(usageOf(result)?.images).to.equal(2);
    });

    it("counts AUTOMATIC1111's images as the adapter returns them, whole or streamed", async () => {
      const fields = { prompt: "a fox", size: "64x64", n: 2 };
      expect(usageOf(await call("IMAGE_GENERATION", "v1-5-pruned-emaonly", fields))).to.deep.include({ images: 2 });
      const streamed = await call("IMAGE_GENERATION", "v1-5-pruned-emaonly", { ...fields, stream: true }, { stream: true });
      expect(usageOf(streamed)).to.deep.include({ images: 2 });
    });

    it("counts none in a refusal", async () => {
      const result = await call("IMAGE_GENERATION", "sim-image", { prompt: "a fox", size: "huge" });
      expect(result.parts[0]?.head?.status).to.equal(400);
      expect(usageOf(result)).to.equal(undefined);
    });
  });
});
