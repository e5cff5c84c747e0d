import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { ServiceType } from "../../gen/infermesh/v1/capabilities_pb.js";
import type { StockClient } from "../../test/support/stock-grpc-client.js";
import type { Agent } from "./agent.js";
import { type AgentFixture, startAgentFixture } from "./test-support/agent-fixture.js";
import { type FakeUpstream, startFakeUpstream } from "./test-support/fake-upstream.js";
import { type InferResult, infer, type StockCall, type StockMediaFile } from "./test-support/infer-client.js";
import { automatic1111Server, generatedPng, type NativeRecord, whisperCppServer } from "./test-support/native-servers.js";
import { recordedFile, sha256 } from "./test-support/recorded-form.js";
import { tinyPng } from "./test-support/tiny-png.js";
import { WHISPER_CPP_SRT } from "./test-support/whisper-cpp-samples.js";

const WHISPER_MODEL = "whisper-large-v3";
const SD_MODEL = "v1-5-pruned-emaonly";
const TRICKY_NAME = 'rec ü "1".wav';
const TRANSCRIPT = "And so my fellow Americans, ask not.";
const AUDIO: StockMediaFile = {
  role: "MEDIA_ROLE_AUDIO",
  filename: TRICKY_NAME,
  contentType: "audio/wav",
  data: Buffer.from("RIFF....WAVEfmt data"),
};

function kinds(result: InferResult): string[] {
  return result.parts.map((part) => part.part);
}

function bodyOf(result: InferResult): Buffer {
  return Buffer.concat(result.parts.filter((part) => part.part === "data").map((part) => part.data as Buffer));
}

function jsonOf(result: InferResult): unknown {
  return JSON.parse(bodyOf(result).toString("utf8"));
}

describe("agent Infer against native servers: whisper.cpp and AUTOMATIC1111", () => {
  let fixture: AgentFixture;
  let whisper: FakeUpstream;
  let webui: FakeUpstream;
  let record: NativeRecord;
  let agent: Agent;
  let client: StockClient;
  let token: string;

  function transcription(fields: Record<string, string | string[]>, media = [AUDIO], extra: Partial<StockCall> = {}): Promise<InferResult> {
    const body = Buffer.from(JSON.stringify({ model: WHISPER_MODEL, ...fields }));
    return infer(client, { operation: "OPERATION_TRANSCRIPTION", model: WHISPER_MODEL, body, media, ...extra }, token);
  }

  function generation(body: Record<string, unknown>, extra: Partial<StockCall> = {}): Promise<InferResult> {
    const bytes = Buffer.from(JSON.stringify({ model: SD_MODEL, ...body }));
    return infer(client, { operation: "OPERATION_IMAGE_GENERATION", model: SD_MODEL, body: bytes, ...extra }, token);
  }

  function edit(fields: Record<string, string>, media: StockMediaFile[]): Promise<InferResult> {
    const body = Buffer.from(JSON.stringify({ model: SD_MODEL, ...fields }));
    return infer(client, { operation: "OPERATION_IMAGE_EDIT", model: SD_MODEL, body, media }, token);
  }

  before(async () => {
    record = { forms: [], payloads: [] };
    whisper = await startFakeUpstream(whisperCppServer(record));
    webui = await startFakeUpstream(automatic1111Server(record));
    fixture = await startAgentFixture({
      user: "dave",
      upstreams: [
        { type: "stt", kind: "whispercpp", url: whisper.url, declare: [WHISPER_MODEL] },
        { type: "image", kind: "automatic1111", url: webui.url },
      ],
      servers: [whisper, webui],
      agent: { hostname: "native-host" },
      mediaClient: true,
    });
    ({ agent, client, token } = fixture);
  });

  after(() => fixture.close());

  beforeEach(() => {
    record.forms.length = 0;
    record.payloads.length = 0;
    whisper.requests.length = 0;
    webui.requests.length = 0;
  });

  it("advertises whisper.cpp's declared model and the WebUI's checkpoints, with their types and engines", () => {
    expect(agent.models().map((m) => [m.id, m.serviceType, m.engine])).to.deep.equal([
      [WHISPER_MODEL, ServiceType.STT, "whispercpp"],
      [SD_MODEL, ServiceType.IMAGE, "automatic1111"],
      ["sd_xl_base_1.0", ServiceType.IMAGE, "automatic1111"],
    ]);
  });

  describe("whisper.cpp", () => {
    it("receives /inference's own fields and the file, and answers OpenAI's json", async () => {
      const result = await transcription({ prompt: "JFK speech", temperature: "0.2", temperature_inc: "0.0", stream: "false" });
      expect(kinds(result)).to.deep.equal(["head", "data", "trailer"]);
      expect(result.parts[0]?.head).to.deep.include({ status: 200, contentType: "application/json" });
      expect(jsonOf(result)).to.deep.equal({ text: TRANSCRIPT });
      expect(whisper.requests.map((r) => [r.method, r.path])).to.deep.equal([["POST", "/inference"]]);
      expect(record.forms).to.deep.equal([
        [
          ["response_format", "json"],
          ["language", "auto"],
          ["translate", "false"],
          ["prompt", "JFK speech"],
          ["temperature", "0.2"],
          ["temperature_inc", "0.0"],
          ["file", recordedFile(TRICKY_NAME, "audio/wav", AUDIO.data)],
        ],
      ]);
    });

    it("translates on /inference with translate=true, answering OpenAI's json", async () => {
      const body = Buffer.from(JSON.stringify({ model: WHISPER_MODEL, prompt: "JFK speech" }));
      const result = await infer(client, { operation: "OPERATION_TRANSLATION", model: WHISPER_MODEL, body, media: [AUDIO] }, token);
      expect(kinds(result)).to.deep.equal(["head", "data", "trailer"]);
      expect(jsonOf(result)).to.deep.equal({ text: TRANSCRIPT });
      expect(whisper.requests.map((r) => [r.method, r.path])).to.deep.equal([["POST", "/inference"]]);
      expect(record.forms).to.deep.equal([
        [
          ["response_format", "json"],
          ["language", "auto"],
          ["translate", "true"],
          ["prompt", "JFK speech"],
          ["file", recordedFile(TRICKY_NAME, "audio/wav", AUDIO.data)],
        ],
      ]);
    });

    it("answers verbose_json in OpenAI's shape with the word and segment timestamps asked for", async () => {
      const result = await transcription({
        language: "en",
        response_format: "verbose_json",
        "timestamp_granularities[]": ["word", "segment"],
      });
      const answer = jsonOf(result) as { text: string; language: string; words: unknown[]; segments: { seek: number }[]; usage: unknown };
      expect(record.forms[0]?.slice(0, 2)).to.deep.equal([
        ["response_format", "verbose_json"],
        ["language", "en"],
      ]);
      expect(answer.text).to.equal(TRANSCRIPT);
      expect(answer.language).to.equal("english");
      expect(answer.words).to.have.length(7);
      expect(answer.words[4]).to.deep.equal({ word: "Americans", start: 1.1, end: 2 });
      expect(answer.segments.map((s) => s.seek)).to.deep.equal([0, 200]);
      expect(answer.usage).to.deep.equal({ type: "duration", seconds: 4 });
    });

    it("answers text, srt and vtt as text/plain", async () => {
      const text = await transcription({ response_format: "text" });
      expect(text.parts[0]?.head).to.deep.include({ status: 200, contentType: "text/plain; charset=utf-8" });
      expect(bodyOf(text).toString()).to.equal(`${TRANSCRIPT}\n`);
      const srt = await transcription({ response_format: "srt" });
      expect(srt.parts[0]?.head).to.deep.include({ contentType: "text/plain; charset=utf-8" });
      expect(bodyOf(srt).toString()).to.equal(WHISPER_CPP_SRT);
      const vtt = await transcription({ response_format: "vtt" });
      expect(bodyOf(vtt).toString()).to.match(/^WEBVTT\n\n00:00:00\.000 --> 00:00:02\.000\n/);
    });

    it("streams the transcript as OpenAI's delta and done events to a client that asked to stream", async () => {
      const result = await transcription({ stream: "true" }, [AUDIO], { stream: true });
      expect(kinds(result)).to.deep.equal(["head", "event", "event", "trailer"]);
      expect(result.parts[0]?.head).to.deep.include({ contentType: "text/event-stream" });
      expect(result.parts.filter((p) => p.part === "event").map((p) => JSON.parse(p.event?.data.toString() ?? ""))).to.deep.equal([
        { type: "transcript.text.delta", delta: TRANSCRIPT },
        { type: "transcript.text.done", text: TRANSCRIPT },
      ]);
      expect(
        record.forms[0]?.map(([name]) => name),
        "stream means nothing to whisper.cpp",
      ).not.to.include("stream");
    });

    it("answers audio whisper.cpp cannot read (its HTTP 200 {error}) with the client's 400", async () => {
      const result = await transcription({}, [{ ...AUDIO, data: Buffer.from("bad-audio") }]);
      expect(result.parts[0]?.head).to.deep.include({ status: 400, contentType: "application/json" });
      expect(jsonOf(result)).to.deep.equal({
        error: {
          message: "whisper.cpp could not transcribe the audio: failed to read audio data",
          type: "invalid_request_error",
          param: "file",
          code: null,
        },
      });
    });
  });

  describe("AUTOMATIC1111", () => {
    it("generates through txt2img with its own fields and answers OpenAI's images, the PNG bytes unchanged", async () => {
      const before = Math.floor(Date.now() / 1000);
      const result = await generation({
        prompt: "a lighthouse",
        n: 2,
        size: "48x32",
        response_format: "b64_json",
        quality: "hd",
        steps: 12,
        seed: 7,
      });
      expect(kinds(result)).to.deep.equal(["head", "data", "trailer"]);
      expect(result.parts[0]?.head).to.deep.include({ status: 200, contentType: "application/json" });
      expect(webui.requests.filter((r) => r.method === "POST").map((r) => [r.path, r.headers["content-type"]])).to.deep.equal([
        ["/sdapi/v1/txt2img", "application/json"],
      ]);
      expect(record.payloads).to.deep.equal([
        {
          prompt: "a lighthouse",
          steps: 12,
          seed: 7,
          batch_size: 2,
          width: 48,
          height: 32,
          override_settings: { sd_model_checkpoint: SD_MODEL },
          override_settings_restore_afterwards: false,
        },
      ]);
      const answer = jsonOf(result) as { created: number; data: { b64_json: string }[] };
      expect(answer.created).to.be.within(before, Math.ceil(Date.now() / 1000));
      expect(Object.keys(answer)).to.deep.equal(["created", "data"]);
      expect(answer.data.map((image) => sha256(Buffer.from(image.b64_json, "base64")))).to.deep.equal([
        sha256(generatedPng(48, 32, 0)),
        sha256(generatedPng(48, 32, 1)),
      ]);
    });

    it("answers url as a data: URL, the mesh having nowhere to host files", async () => {
      const result = await generation({ prompt: "a fox", size: "16x16", response_format: "url" });
      expect(jsonOf(result)).to.deep.nested.include({
        "data[0].url": `data:image/png;base64,${generatedPng(16, 16, 0).toString("base64")}`,
      });
    });

    it("edits through img2img: init image and mask in base64, OpenAI's transparent-means-edit mask inverted", async () => {
      const image = tinyPng({ width: 40, height: 24, seed: 5 });
      const mask = tinyPng({ width: 40, height: 24, alpha: true });
      const result = await edit({ prompt: "add a boat", denoising_strength: "0.55" }, [
        { role: "MEDIA_ROLE_IMAGE", filename: "harbour.png", contentType: "image/png", data: image },
        { role: "MEDIA_ROLE_MASK", filename: "mask.png", contentType: "image/png", data: mask },
      ]);
      expect(kinds(result)).to.deep.equal(["head", "data", "trailer"]);
      expect(webui.requests.filter((r) => r.method === "POST").map((r) => r.path)).to.deep.equal(["/sdapi/v1/img2img"]);
      expect(record.payloads).to.deep.equal([
        {
          mask: mask.toString("base64"),
          inpainting_mask_invert: 1,
          inpainting_fill: 1,
          denoising_strength: "0.55",
          prompt: "add a boat",
          init_images: [image.toString("base64")],
          batch_size: 1,
          width: 40,
          height: 24,
          override_settings: { sd_model_checkpoint: SD_MODEL },
          override_settings_restore_afterwards: false,
        },
      ]);
      const answer = jsonOf(result) as { data: { b64_json: string }[] };
      expect(sha256(Buffer.from(answer.data[0]?.b64_json ?? "", "base64"))).to.equal(sha256(generatedPng(40, 24, 0)));
    });

    it("answers what the WebUI refuses, or cannot do, as the client's 400 in OpenAI's envelope", async () => {
      const invalid = await generation({ prompt: "x", steps: "many" });
      expect(invalid.parts[0]?.head).to.deep.include({ status: 400, contentType: "application/json" });
      expect(jsonOf(invalid)).to.deep.nested.include({
        "error.message": "the image server refused the request: steps: value is not a valid integer",
      });
      const png = tinyPng({ width: 8, height: 8 });
      const two = await edit({ prompt: "x" }, [
        { role: "MEDIA_ROLE_IMAGE", filename: "a.png", contentType: "image/png", data: png },
        { role: "MEDIA_ROLE_IMAGE", filename: "b.png", contentType: "image/png", data: png },
      ]);
      expect(two.parts[0]?.head).to.deep.include({ status: 400 });
      expect(jsonOf(two)).to.deep.nested.include({ "error.param": "image" });
      expect(record.payloads, "the refused edit never reached the WebUI").to.have.length(1);
    });

    it("turns a WebUI exception (HTTP 500) into one upstream_error part naming it", async () => {
      const result = await generation({ prompt: "explode" });
      expect(result.status.code).to.equal(grpc.status.OK);
      expect(kinds(result)).to.deep.equal(["error"]);
      expect(result.parts[0]?.error).to.deep.include({
        type: "upstream_error",
        httpStatus: 502,
        message: "the local image server answered HTTP 500: RuntimeError: CUDA out of memory",
      });
    });

    it("streams each image as an image_generation.completed event to a client that asked to stream", async () => {
      const result = await generation({ prompt: "a fox", size: "8x8", stream: true }, { stream: true });
      expect(kinds(result)).to.deep.equal(["head", "event", "trailer"]);
      const event = result.parts[1]?.event;
      expect(event?.event).to.equal("image_generation.completed");
      expect(JSON.parse(event?.data.toString() ?? "")).to.deep.include({
        type: "image_generation.completed",
        b64_json: generatedPng(8, 8, 0).toString("base64"),
      });
    });
  });
});
