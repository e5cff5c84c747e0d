import { createHash } from "node:crypto";
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { expect } from "chai";
import OpenAI, { APIError, toFile } from "openai";
import { request } from "undici";
import type { SimulatedModel, Simulator, SimulatorOptions, SpeechFormat } from "./simulator.js";
import {
  expectedEditedPng,
  expectedGeneratedPng,
  expectedSpeech,
  expectedTranscript,
  expectedTranscription,
  expectedTranslation,
  pngDimensions,
  SPEECH_CONTENT_TYPES,
  speechSampleCount,
  testWav,
} from "./simulator.js";
import { dig } from "./test-support/llama-captures.js";
import { createSimulatorHarness, type Reply } from "./test-support/simulator-harness.js";
import { sseEvents } from "./test-support/sse-events.js";

const MODELS: readonly SimulatedModel[] = [
  { id: "sim-llama" },
  { id: "sim-whisper", kind: "stt" },
  { id: "sim-image", kind: "image" },
  { id: "sim-tts", kind: "tts" },
];

/** MAGIC is how each speech format's bytes must start (a regular expression over their latin1 text). */
const MAGIC: Readonly<Record<SpeechFormat, RegExp>> = {
  mp3: /^ID3/,
  opus: /^OggS/,
  aac: /^\xff[\xf0\xf1\xf8\xf9]/,
  flac: /^fLaC/,
  wav: /^RIFF[\s\S]{4}WAVE/,
  pcm: /^[\s\S]/,
};

/** multipartBody writes a form by hand, for uploads the SDK cannot make (chunked, no Content-Length). */
function multipartBody(boundary: string, fields: Readonly<Record<string, string>>, file: { name: string; bytes: Buffer }): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  }
  parts.push(
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${file.name}"\r\nContent-Type: audio/wav\r\n\r\n`),
    file.bytes,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  );
  return Buffer.concat(parts);
}

/** editSize passes any WIDTHxHEIGHT, which the simulator takes, where the SDK's type lists only OpenAI's sizes. */
function editSize(size: string): NonNullable<OpenAI.Images.ImageEditParams["size"]> {
  return size as NonNullable<OpenAI.Images.ImageEditParams["size"]>;
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function errorOf(reply: Reply): Record<string, unknown> {
  return (JSON.parse(reply.text) as { error: Record<string, unknown> }).error;
}

describe("simulator media endpoints", () => {
  const simulators = createSimulatorHarness({ models: MODELS, timeToFirstTokenMs: 0, tokensPerSecond: 0 });
  const { agent, call } = simulators;
  const scratch = mkdtempSync(join(tmpdir(), "infermesh-sim-"));

  async function start(options: SimulatorOptions = {}): Promise<{ sim: Simulator; url: string; client: OpenAI }> {
    const { sim, url } = await simulators.start(options);
    return { sim, url, client: new OpenAI({ baseURL: `${url}/v1`, apiKey: "sk-test", maxRetries: 0 }) };
  }

  afterEach(() => simulators.closeStarted());
  after(async () => {
    await simulators.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  describe("models", () => {
    it("lists the models of every kind in llama-server's shape", async () => {
      const { client, url } = await start();
      expect((await client.models.list()).data.map((model) => model.id)).to.deep.equal(MODELS.map((model) => model.id));
      const res = await request(`${url}/v1/models`, { dispatcher: agent });
      const body = (await res.body.json()) as { models: unknown[]; data: Array<{ owned_by: string }> };
      expect(body.models).to.have.length(4);
      expect(body.data.map((model) => model.owned_by)).to.deep.equal(["llamacpp", "llamacpp", "llamacpp", "llamacpp"]);
    });

    it("refuses a model of another kind on every endpoint with a 400 in OpenAI's shape", async () => {
      const { sim, url, client } = await start();
      const chat = await call(url, "/v1/chat/completions", { model: "sim-tts", messages: [{ role: "user", content: "hi" }] });
      expect(chat.status).to.equal(400);
      expect(errorOf(chat)).to.include({ type: "invalid_request_error", param: "model", code: "model_not_supported" });
      expect(errorOf(chat)["message"]).to.match(/'sim-tts' is a text-to-speech \(tts\) model/);
      const image = await call(url, "/v1/images/generations", { model: "sim-whisper", prompt: "a cat" });
      expect([image.status, errorOf(image)["code"]]).to.deep.equal([400, "model_not_supported"]);
      const speech = await call(url, "/v1/audio/speech", { model: "sim-image", input: "hi", voice: "alloy" });
      expect([speech.status, errorOf(speech)["code"]]).to.deep.equal([400, "model_not_supported"]);
      const transcription = await client.audio.transcriptions
        .create({ model: "sim-llama", file: await toFile(testWav(1), "a.wav") })
        .catch((error: unknown) => error);
      expect(transcription).to.be.instanceOf(APIError);
      expect((transcription as APIError).status).to.equal(400);
      expect((transcription as APIError).code).to.equal("model_not_supported");
      const edit = await client.images
        .edit({ model: "sim-tts", prompt: "x", image: await toFile(expectedGeneratedPng("x", { width: 8, height: 8 }), "a.png") })
        .catch((error: unknown) => error);
      expect((edit as APIError).status).to.equal(400);
      expect(sim.activeGenerations).to.equal(0);
    });

    it("uses the first model of the endpoint's kind for unknown names, unless strictModels", async () => {
      const { client } = await start();
      const wav = testWav(1);
      const answer = await client.audio.transcriptions.create({ model: "whisper-1", file: await toFile(wav, "a.wav") });
      expect(answer.text).to.equal(expectedTranscript(wav));
      const strict = await start({ strictModels: true });
      const unknown = await strict.client.audio.speech
        .create({ model: "tts-1", input: "hi", voice: "alloy" })
        .catch((error: unknown) => error);
      expect((unknown as APIError).status).to.equal(404);
      expect((unknown as APIError).code).to.equal("model_not_found");
      const llmOnly = await start({ models: [{ id: "sim-llama" }] });
      const none = await llmOnly.client.images.generate({ model: "dall-e-3", prompt: "x" }).catch((error: unknown) => error);
      expect((none as APIError).status).to.equal(400);
      expect((none as APIError).message).to.match(/No image model is served here/);
    });
  });

  describe("transcriptions", () => {
    it("transcribes a toFile upload to expectedTranscript and records the file, non-ASCII name and quotes intact", async () => {
      const { sim, client } = await start();
      const wav = testWav(4.2);
      const answer = await client.audio.transcriptions.create({
        model: "sim-whisper",
        file: await toFile(wav, 'rec ü "1".wav'),
        language: "de",
        prompt: "Glossary: alpha",
        temperature: 0.2,
      });
      expect(answer.text).to.equal(expectedTranscript(wav));
      expect(answer.text.split(" ")).to.have.length(Math.round(4.2 * 2.5));
      expect(answer.usage).to.deep.equal({ type: "duration", seconds: 5 });
      const seen = await sim.waitForRequest((request) => request.path === "/v1/audio/transcriptions");
      expect(seen.body).to.equal(undefined);
      expect(seen.form?.fields).to.deep.equal({
        model: ["sim-whisper"],
        language: ["de"],
        prompt: ["Glossary: alpha"],
        temperature: ["0.2"],
      });
      expect(seen.form?.files).to.deep.equal([
        { field: "file", filename: 'rec ü "1".wav', contentType: "application/octet-stream", size: wav.length, sha256: sha256(wav) },
      ]);
    });

    it("transcribes an fs.createReadStream upload", async () => {
      const { sim, client } = await start();
      const path = join(scratch, "meeting.wav");
      const wav = testWav(2);
      writeFileSync(path, wav);
      const answer = await client.audio.transcriptions.create({ model: "sim-whisper", file: createReadStream(path) });
      expect(answer.text).to.equal(expectedTranscript(wav));
      expect(sim.requests.at(-1)?.form?.files[0]).to.include({ filename: "meeting.wav", size: wav.length, sha256: sha256(wav) });
    });

    it("parses a chunked upload without Content-Length as it streams in", async () => {
      const { sim, url } = await start();
      const wav = testWav(3);
      const boundary = "chunked-boundary-42";
      const body = multipartBody(boundary, { model: "sim-whisper", response_format: "text" }, { name: "chunked.wav", bytes: wav });
      async function* pieces(): AsyncGenerator<Buffer> {
        for (let offset = 0; offset < body.length; offset += 1000) yield body.subarray(offset, offset + 1000);
      }
      const res = await request(`${url}/v1/audio/transcriptions`, {
        method: "POST",
        headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
        body: Readable.from(pieces()),
        dispatcher: agent,
      });
      expect(res.statusCode).to.equal(200);
      expect(await res.body.text()).to.equal(expectedTranscript(wav));
      const seen = sim.requests.at(-1);
      expect(seen?.headers["content-length"]).to.equal(undefined);
      expect(seen?.headers["transfer-encoding"]).to.equal("chunked");
      expect(seen?.form?.files[0]?.sha256).to.equal(sha256(wav));
    });

    it("answers text, srt and vtt as text/plain subtitles built from the segments", async () => {
      const { url, client } = await start();
      const wav = testWav(8);
      const transcript = expectedTranscription(wav);
      expect(transcript.segments).to.have.length(3);
      const text = await client.audio.transcriptions.create({
        model: "sim-whisper",
        file: await toFile(wav, "a.wav"),
        response_format: "text",
      });
      expect(text).to.equal(transcript.text);
      const srt = await client.audio.transcriptions.create({
        model: "sim-whisper",
        file: await toFile(wav, "a.wav"),
        response_format: "srt",
      });
      const [first, second] = transcript.segments;
      const firstCue = `1\n00:00:00,000 --> 00:00:0${(first?.end ?? 0).toFixed(3).replace(".", ",")}\n${first?.text.trim()}\n\n2\n`;
      expect(srt.slice(0, firstCue.length)).to.equal(firstCue);
      expect(srt.split("\n\n")).to.have.length(3);
      const vtt = await client.audio.transcriptions.create({
        model: "sim-whisper",
        file: await toFile(wav, "a.wav"),
        response_format: "vtt",
      });
      expect(vtt.slice(0, "WEBVTT\n\n00:00:00.000 --> ".length)).to.equal("WEBVTT\n\n00:00:00.000 --> ");
      expect(vtt).to.include(`\n${second?.text.trim()}\n`);
      const boundary = "b";
      for (const format of ["text", "srt", "vtt"]) {
        const reply = await call(
          url,
          "/v1/audio/transcriptions",
          multipartBody(boundary, { response_format: format }, { name: "a.wav", bytes: wav }),
          {
            "content-type": `multipart/form-data; boundary=${boundary}`,
          },
        );
        expect([reply.status, reply.headers["content-type"]]).to.deep.equal([200, "text/plain; charset=utf-8"]);
      }
    });

    it("answers verbose_json with words and segments as timestamp_granularities ask", async () => {
      const { client } = await start();
      const wav = testWav(5);
      const transcript = expectedTranscription(wav);
      const both = await client.audio.transcriptions.create({
        model: "sim-whisper",
        file: await toFile(wav, "a.wav"),
        response_format: "verbose_json",
        timestamp_granularities: ["word", "segment"],
      });
      expect(both).to.include({ task: "transcribe", language: "english", duration: 5, text: transcript.text });
      expect(both.words).to.deep.equal(transcript.words);
      expect(both.segments?.map(({ id, start, end, text }) => ({ id, start, end, text }))).to.deep.equal(transcript.segments);
      expect(Object.keys(both.segments?.[0] ?? {})).to.include.members([
        "seek",
        "tokens",
        "temperature",
        "avg_logprob",
        "compression_ratio",
        "no_speech_prob",
      ]);
      const words = await client.audio.transcriptions.create({
        model: "sim-whisper",
        file: await toFile(wav, "a.wav"),
        response_format: "verbose_json",
        timestamp_granularities: ["word"],
      });
      expect(words.words).to.have.length(transcript.words.length);
      expect(words.segments).to.equal(undefined);
      const plain = await client.audio.transcriptions.create({
        model: "sim-whisper",
        file: await toFile(wav, "a.wav"),
        response_format: "verbose_json",
      });
      expect(plain.words).to.equal(undefined);
      expect(plain.segments).to.have.length(transcript.segments.length);
    });

    it("streams transcript.text.delta events per word, then transcript.text.done, and no [DONE]", async () => {
      const { url, client } = await start();
      const wav = testWav(3);
      const transcript = expectedTranscription(wav);
      const stream = await client.audio.transcriptions.create({ model: "sim-whisper", file: await toFile(wav, "a.wav"), stream: true });
      const events = [];
      for await (const event of stream) events.push(event);
      expect(events.map((event) => event.type)).to.deep.equal([
        ...transcript.deltas.map(() => "transcript.text.delta"),
        "transcript.text.done",
      ]);
      const last = events.at(-1);
      expect(last?.type === "transcript.text.done" ? last.text : undefined).to.equal(transcript.text);
      expect(last?.type === "transcript.text.done" ? last.usage?.output_tokens : undefined).to.equal(transcript.words.length);
      const boundary = "s";
      const raw = await call(url, "/v1/audio/transcriptions", multipartBody(boundary, { stream: "true" }, { name: "a.wav", bytes: wav }), {
        "content-type": `multipart/form-data; boundary=${boundary}`,
      });
      expect(raw.headers["content-type"]).to.equal("text/event-stream; charset=utf-8");
      expect(raw.text).to.not.include("[DONE]");
      const frames = sseEvents(raw.text);
      expect(
        frames
          .slice(0, -1)
          .map((frame) => dig(frame.data, "delta"))
          .join(""),
      ).to.equal(transcript.text);
      expect(dig(frames.at(-1)?.data, "type")).to.equal("transcript.text.done");
    });

    it("derives the duration of uploads that are not WAV files from their size", async () => {
      const { client } = await start();
      const mp3ish = Buffer.alloc(48_000, 0x5a);
      const answer = await client.audio.transcriptions.create({ model: "sim-whisper", file: await toFile(mp3ish, "talk.mp3") });
      expect(answer.text).to.equal(expectedTranscript(mp3ish));
      expect(answer.text.split(" ")).to.have.length(Math.round(3 * 2.5));
    });

    it("answers missing files, bad formats and bad granularities with 400s", async () => {
      const { client } = await start();
      const file = await toFile(testWav(1), "a.wav");
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ model: "sim-whisper" }, "file"],
        [{ model: "sim-whisper", file, response_format: "xml" }, "response_format"],
        [{ model: "sim-whisper", file, timestamp_granularities: ["char"] }, "timestamp_granularities"],
        [{ model: "sim-whisper", file, temperature: 3 }, "temperature"],
      ];
      for (const [body, param] of cases) {
        const error = await client.audio.transcriptions
          .create(body as unknown as OpenAI.Audio.TranscriptionCreateParamsNonStreaming)
          .catch((caught: unknown) => caught);
        expect(error, param).to.be.instanceOf(APIError);
        expect([(error as APIError).status, (error as APIError).param]).to.deep.equal([400, param]);
      }
    });

    it("answers uploads over maxUploadBytes with a 413 in OpenAI's shape, which the SDK does not retry", async () => {
      const { sim, url } = await start({ maxUploadBytes: 20_000 });
      const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "sk-test", maxRetries: 2 });
      const error = await client.audio.transcriptions
        .create({ model: "sim-whisper", file: await toFile(testWav(1), "a.wav") })
        .catch((caught: unknown) => caught);
      expect((error as APIError).status).to.equal(413);
      expect((error as APIError).type).to.equal("invalid_request_error");
      expect((error as APIError).message).to.match(/^413 Maximum content size limit \(20000\) exceeded/);
      expect(sim.requestCounts.get("/v1/audio/transcriptions")).to.equal(1);
      const small = await client.audio.transcriptions.create({ model: "sim-whisper", file: await toFile(testWav(0.5), "a.wav") });
      expect(small.text).to.equal(expectedTranscript(testWav(0.5)));
    });

    it("answers a body that is not multipart with a 400", async () => {
      const { url } = await start();
      const reply = await call(url, "/v1/audio/transcriptions", { model: "sim-whisper" });
      expect(reply.status).to.equal(400);
      expect(errorOf(reply)["message"]).to.match(/multipart\/form-data/);
    });

    it("fails a stream mid-way with an error event when the form's sim fields ask", async () => {
      const { client } = await start();
      const stream = await client.audio.transcriptions.create({
        model: "sim-whisper",
        file: await toFile(testWav(4), "a.wav"),
        stream: true,
        sim: { fail: "status", fail_status: 502, fail_after_tokens: 2 },
      } as OpenAI.Audio.TranscriptionCreateParamsStreaming);
      const deltas: string[] = [];
      const error = await (async () => {
        for await (const event of stream) if (event.type === "transcript.text.delta") deltas.push(event.delta);
      })().catch((caught: unknown) => caught);
      expect(deltas).to.have.length(2);
      expect(error).to.be.instanceOf(APIError);
      expect((error as APIError).message).to.match(/simulated failure \(HTTP 502\)/);
    });
  });

  describe("translations", () => {
    it("translates an upload to expectedTranslation: the transcript's length and timing, other words", async () => {
      const { sim, client } = await start();
      const wav = testWav(4);
      const translation = expectedTranslation(wav);
      const answer = await client.audio.translations.create({ model: "sim-whisper", file: await toFile(wav, "talk.wav"), prompt: "Hi" });
      expect(answer).to.deep.equal({ text: translation.text });
      expect(translation.text).to.not.equal(expectedTranscript(wav));
      expect(translation.words.map((word) => [word.start, word.end])).to.deep.equal(
        expectedTranscription(wav).words.map((word) => [word.start, word.end]),
      );
      const seen = await sim.waitForRequest((request) => request.path === "/v1/audio/translations");
      expect(seen.form?.fields).to.deep.equal({ model: ["sim-whisper"], prompt: ["Hi"] });
      expect(seen.form?.files[0]).to.include({ filename: "talk.wav", size: wav.length, sha256: sha256(wav) });
    });

    it("answers verbose_json as Whisper's translate task in English, and text, srt and vtt as text/plain", async () => {
      const { url, client } = await start();
      const wav = testWav(6);
      const translation = expectedTranslation(wav);
      // The SDK's overloads type every translation as the json one.
      const verbose = (await client.audio.translations.create({
        model: "sim-whisper",
        file: await toFile(wav, "a.wav"),
        response_format: "verbose_json",
      })) as OpenAI.Audio.Translations.TranslationVerbose;
      expect(verbose).to.include({ task: "translate", language: "english", duration: 6, text: translation.text });
      expect(verbose.segments?.map(({ id, start, end, text }) => ({ id, start, end, text }))).to.deep.equal(translation.segments);
      expect(verbose).to.not.have.property("usage");
      const text = await client.audio.translations.create({
        model: "sim-whisper",
        file: await toFile(wav, "a.wav"),
        response_format: "text",
      });
      expect(text).to.equal(translation.text);
      const boundary = "t";
      for (const format of ["srt", "vtt"]) {
        const reply = await call(
          url,
          "/v1/audio/translations",
          multipartBody(boundary, { response_format: format }, { name: "a.wav", bytes: wav }),
          {
            "content-type": `multipart/form-data; boundary=${boundary}`,
          },
        );
        expect([reply.status, reply.headers["content-type"]]).to.deep.equal([200, "text/plain; charset=utf-8"]);
        expect(reply.text).to.include(translation.segments[0]?.text.trim());
      }
    });

    it("refuses what transcriptions refuse: another kind of model, no file, an unknown format", async () => {
      const { url, client } = await start();
      const llm = await client.audio.translations
        .create({ model: "sim-llama", file: await toFile(testWav(1), "a.wav") })
        .catch((error: unknown) => error);
      expect([(llm as APIError).status, (llm as APIError).code]).to.deep.equal([400, "model_not_supported"]);
      const boundary = "r";
      const format = await call(
        url,
        "/v1/audio/translations",
        multipartBody(boundary, { response_format: "mp3" }, { name: "a.wav", bytes: testWav(1) }),
        {
          "content-type": `multipart/form-data; boundary=${boundary}`,
        },
      );
      expect([format.status, errorOf(format)["param"]]).to.deep.equal([400, "response_format"]);
      const noFile = await call(
        url,
        "/v1/audio/translations",
        `--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nsim-whisper\r\n--${boundary}--\r\n`,
        {
          "content-type": `multipart/form-data; boundary=${boundary}`,
        },
      );
      expect([noFile.status, errorOf(noFile)["code"]]).to.deep.equal([400, "missing_required_parameter"]);
    });

    it("applies injected failures and records a client that leaves as an abort", async () => {
      const { sim, client, url } = await start();
      const failed = await client.audio.translations
        .create({ model: "sim-whisper", file: await toFile(testWav(1), "a.wav"), sim: { fail: "status", fail_status: 502 } } as never)
        .catch((error: unknown) => error);
      expect((failed as APIError).status).to.equal(502);
      const controller = new AbortController();
      const boundary = "x";
      const outcome = request(`${url}/v1/audio/translations`, {
        method: "POST",
        headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
        body: multipartBody(boundary, { model: "sim-whisper", "sim[fail]": "stall" }, { name: "a.wav", bytes: testWav(1) }),
        dispatcher: agent,
        signal: controller.signal,
      }).then(
        () => "answered",
        () => "failed",
      );
      const seen = await sim.waitForRequest(
        (entry) => entry.path === "/v1/audio/translations" && entry.form?.fields["sim[fail]"]?.[0] === "stall",
      );
      controller.abort();
      const aborted = await sim.waitForAbort((entry) => entry.id === seen.id, 1000);
      expect(await outcome).to.equal("failed");
      expect(aborted).to.include({ path: "/v1/audio/translations", model: "sim-whisper", stream: false });
    });
  });

  describe("image generations", () => {
    it("answers b64_json PNGs of exactly the requested size, two for n: 2, as expectedGeneratedPng", async () => {
      const { client } = await start();
      const answer = await client.images.generate({ model: "sim-image", prompt: "a lighthouse at dusk", size: "256x256", n: 2 });
      const images = (answer.data ?? []).map((image) => Buffer.from(image.b64_json ?? "", "base64"));
      expect(images).to.have.length(2);
      expect(images.map((image) => pngDimensions(image))).to.deep.equal([
        { width: 256, height: 256 },
        { width: 256, height: 256 },
      ]);
      expect(images).to.deep.equal([
        expectedGeneratedPng("a lighthouse at dusk", { width: 256, height: 256 }, 0),
        expectedGeneratedPng("a lighthouse at dusk", { width: 256, height: 256 }, 1),
      ]);
      expect(images[0], "the two images differ").not.to.deep.equal(images[1]);
      expect(answer.usage?.output_tokens).to.equal(2 * 256);
      expect(typeof answer.created).to.equal("number");
    });

    it("answers data: URLs for response_format url, and 1024x1024 for auto", async () => {
      const { client } = await start();
      const answer = await client.images.generate({ model: "sim-image", prompt: "p", size: "auto", response_format: "url" });
      const url = answer.data?.[0]?.url ?? "";
      expect(url.slice(0, "data:image/png;base64,".length)).to.equal("data:image/png;base64,");
      expect(pngDimensions(Buffer.from(url.slice("data:image/png;base64,".length), "base64"))).to.deep.equal({ width: 1024, height: 1024 });
      const wide = await client.images.generate({ model: "sim-image", prompt: "p", size: "1536x1024" });
      expect(pngDimensions(Buffer.from(wide.data?.[0]?.b64_json ?? "", "base64"))).to.deep.equal({ width: 1536, height: 1024 });
    });

    it("streams partial images and then the completed image, each a PNG of the requested size", async () => {
      const { url, client } = await start();
      const stream = await client.images.generate({ model: "sim-image", prompt: "p", size: "512x512", stream: true, partial_images: 2 });
      const events = [];
      for await (const event of stream) events.push(event);
      expect(events.map((event) => event.type)).to.deep.equal([
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
      ]);
      expect(events.map((event) => (event.type === "image_generation.partial_image" ? event.partial_image_index : "done"))).to.deep.equal([
        0,
        1,
        "done",
      ]);
      for (const event of events) expect(pngDimensions(Buffer.from(event.b64_json, "base64"))).to.deep.equal({ width: 512, height: 512 });
      expect(Buffer.from(events.at(-1)?.b64_json ?? "", "base64")).to.deep.equal(expectedGeneratedPng("p", { width: 512, height: 512 }));
      const raw = await call(url, "/v1/images/generations", {
        model: "sim-image",
        prompt: "p",
        size: "64x64",
        stream: true,
        partial_images: 1,
      });
      expect(sseEvents(raw.text).map((event) => [event.event, dig(event.data, "type")])).to.deep.equal([
        ["image_generation.partial_image", "image_generation.partial_image"],
        ["image_generation.completed", "image_generation.completed"],
      ]);
    });

    it("answers bad sizes, counts and formats with 400s", async () => {
      const { url } = await start();
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ prompt: "p", size: "big" }, "size"],
        [{ prompt: "p", size: "0x10" }, "size"],
        [{ prompt: "p", size: "5000x10" }, "size"],
        [{ prompt: "p", n: 11 }, "n"],
        [{ prompt: "p", n: 1.5 }, "n"],
        [{ prompt: "p", response_format: "jpeg" }, "response_format"],
        [{ prompt: "p", partial_images: 4, stream: true }, "partial_images"],
        [{ size: "64x64" }, "prompt"],
      ];
      for (const [body, param] of cases) {
        const reply = await call(url, "/v1/images/generations", { model: "sim-image", ...body });
        expect([reply.status, errorOf(reply)["param"]], JSON.stringify(body)).to.deep.equal([400, param]);
      }
      const invalid = await call(url, "/v1/images/generations", "{not json");
      expect(invalid.status).to.equal(400);
      expect(errorOf(invalid)["message"]).to.match(/could not parse the JSON body/);
    });

    it("injects a status failure before the first byte", async () => {
      const { url } = await start();
      const reply = await call(url, "/v1/images/generations", {
        model: "sim-image",
        prompt: "p",
        sim: { fail: "status", fail_status: 503 },
      });
      expect(reply.status).to.equal(503);
      expect(JSON.parse(reply.text)).to.deep.equal({
        error: { message: "Loading model", type: "unavailable_error", param: null, code: null },
      });
    });
  });

  describe("image edits", () => {
    const size = { width: 128, height: 96 };

    it("edits image[] x2 with a mask into PNGs that depend on the images and the mask, and records the files", async () => {
      const { sim, client } = await start();
      const first = expectedGeneratedPng("first", { width: 32, height: 32 });
      const second = expectedGeneratedPng("second", { width: 32, height: 32 });
      const mask = expectedGeneratedPng("mask", { width: 32, height: 32 });
      const otherMask = expectedGeneratedPng("other mask", { width: 32, height: 32 });
      const edit = async (maskBytes: Buffer | undefined): Promise<Buffer> => {
        const answer = await client.images.edit({
          model: "sim-image",
          prompt: "add a hat",
          image: [await toFile(first, "first.png", { type: "image/png" }), await toFile(second, "second.png", { type: "image/png" })],
          ...(maskBytes === undefined ? {} : { mask: await toFile(maskBytes, "mask.png", { type: "image/png" }) }),
          size: editSize("128x96"),
        });
        return Buffer.from(answer.data?.[0]?.b64_json ?? "", "base64");
      };
      const masked = await edit(mask);
      expect(pngDimensions(masked)).to.deep.equal(size);
      expect(masked).to.deep.equal(expectedEditedPng({ prompt: "add a hat", images: [first, second], mask }, size));
      const seen = sim.requests.at(-1);
      expect(seen?.form?.files.map((file) => [file.field, file.filename, file.contentType, file.size, file.sha256])).to.deep.equal([
        ["image[]", "first.png", "image/png", first.length, sha256(first)],
        ["image[]", "second.png", "image/png", second.length, sha256(second)],
        ["mask", "mask.png", "image/png", mask.length, sha256(mask)],
      ]);
      expect(seen?.form?.fields).to.deep.equal({ model: ["sim-image"], prompt: ["add a hat"], size: ["128x96"] });
      const remasked = await edit(otherMask);
      const unmasked = await edit(undefined);
      expect(remasked, "another mask changes the output").not.to.deep.equal(masked);
      expect(unmasked, "no mask changes the output").not.to.deep.equal(masked);
      expect(unmasked).to.deep.equal(expectedEditedPng({ prompt: "add a hat", images: [first, second] }, size));
    });

    it("takes a single image field, streams edit events and refuses masks that are not PNGs", async () => {
      const { client } = await start();
      const image = await toFile(expectedGeneratedPng("in", { width: 16, height: 16 }), "in.png", { type: "image/png" });
      const single = await client.images.edit({ model: "sim-image", prompt: "p", image, size: editSize("64x64"), n: 2 });
      expect(single.data?.map((data) => pngDimensions(Buffer.from(data.b64_json ?? "", "base64")))).to.deep.equal([
        { width: 64, height: 64 },
        { width: 64, height: 64 },
      ]);
      const stream = await client.images.edit({
        model: "sim-image",
        prompt: "p",
        image,
        size: editSize("64x64"),
        stream: true,
        partial_images: 1,
      });
      const types = [];
      for await (const event of stream) types.push(event.type);
      expect(types).to.deep.equal(["image_edit.partial_image", "image_edit.completed"]);
      const badMask = await client.images
        .edit({ model: "sim-image", prompt: "p", image, mask: await toFile(Buffer.from("GIF89a"), "m.gif") })
        .catch((caught: unknown) => caught);
      expect([(badMask as APIError).status, (badMask as APIError).param]).to.deep.equal([400, "mask"]);
      const noImage = await client.images
        .edit({ model: "sim-image", prompt: "p" } as OpenAI.Images.ImageEditParamsNonStreaming)
        .catch((caught: unknown) => caught);
      expect([(noImage as APIError).status, (noImage as APIError).param]).to.deep.equal([400, "image"]);
    });
  });

  describe("speech", () => {
    const input = "The quick brown fox jumps over the lazy dog.";

    for (const format of ["mp3", "opus", "aac", "flac", "wav", "pcm"] as const) {
      it(`answers ${format} with its magic bytes, content type ${SPEECH_CONTENT_TYPES[format]} and the expected audio`, async () => {
        const { client } = await start();
        const response = await client.audio.speech.create({ model: "sim-tts", input, voice: "alloy", response_format: format });
        expect(response.headers.get("content-type")).to.equal(SPEECH_CONTENT_TYPES[format]);
        const bytes = Buffer.from(await response.arrayBuffer());
        expect(bytes.toString("latin1")).to.match(MAGIC[format]);
        expect(bytes).to.deep.equal(expectedSpeech(input, format));
      });
    }

    it("answers mp3 by default and audio whose length follows the input and the speed", async () => {
      const { client } = await start();
      const bytesOf = async (text: string, speed?: number, format: SpeechFormat = "wav"): Promise<Buffer> => {
        const response = await client.audio.speech.create({
          model: "sim-tts",
          input: text,
          voice: "alloy",
          response_format: format,
          ...(speed === undefined ? {} : { speed }),
        });
        return Buffer.from(await response.arrayBuffer());
      };
      const short = await bytesOf("Hello");
      const long = await bytesOf("Hello, and welcome to the simulator");
      expect(short.readUInt32LE(40)).to.equal(speechSampleCount("Hello") * 2);
      expect(long.length).to.be.greaterThan(short.length);
      expect(long.readUInt32LE(40)).to.equal(speechSampleCount("Hello, and welcome to the simulator") * 2);
      expect((await bytesOf("Hello", 2)).readUInt32LE(40)).to.equal((speechSampleCount("Hello") * 2) / 2);
      const mp3 = await client.audio.speech.create({ model: "sim-tts", input: "Hello", voice: "alloy" });
      expect(mp3.headers.get("content-type")).to.equal("audio/mpeg");
    });

    it("sends the first audio chunk before the simulator has finished the answer", async () => {
      const { sim, url } = await start({ speechChunkIntervalMs: 20 });
      const res = await request(`${url}/v1/audio/speech`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "sim-tts", input, voice: "alloy", response_format: "pcm" }),
        dispatcher: agent,
      });
      let firstByteAtMs: number | undefined;
      let reads = 0;
      const chunks: Buffer[] = [];
      for await (const chunk of res.body) {
        firstByteAtMs ??= Date.now();
        reads++;
        chunks.push(chunk as Buffer);
      }
      const finished = await sim.waitForFinish((answer) => answer.path === "/v1/audio/speech");
      expect(firstByteAtMs).to.be.a("number");
      expect(firstByteAtMs ?? Infinity).to.be.below(finished.atMs);
      expect(reads, "received in several chunks").to.be.greaterThan(1);
      expect(Buffer.concat(chunks)).to.deep.equal(expectedSpeech(input, "pcm"));
      expect(res.headers["content-length"]).to.equal(undefined);
    });

    it("streams speech.audio.delta events with base64 audio, then speech.audio.done", async () => {
      const { url } = await start();
      const reply = await call(url, "/v1/audio/speech", {
        model: "sim-tts",
        input,
        voice: "alloy",
        response_format: "wav",
        stream_format: "sse",
      });
      expect(reply.headers["content-type"]).to.equal("text/event-stream; charset=utf-8");
      const events = sseEvents(reply.text);
      expect(new Set(events.slice(0, -1).map((event) => dig(event.data, "type")))).to.deep.equal(new Set(["speech.audio.delta"]));
      const audio = Buffer.concat(events.slice(0, -1).map((event) => Buffer.from(String(dig(event.data, "audio")), "base64")));
      expect(audio).to.deep.equal(expectedSpeech(input, "wav"));
      expect(dig(events.at(-1)?.data, "type")).to.equal("speech.audio.done");
      expect(dig(events.at(-1)?.data, "usage")).to.include({ input_tokens: 9 });
    });

    it("answers bad inputs, speeds and formats with 400s", async () => {
      const { url } = await start();
      const cases: Array<[Record<string, unknown>, string]> = [
        [{}, "input"],
        [{ input: "x".repeat(4097) }, "input"],
        [{ input: "hi", speed: 5 }, "speed"],
        [{ input: "hi", speed: "fast" }, "speed"],
        [{ input: "hi", response_format: "ogg" }, "response_format"],
        [{ input: "hi", stream_format: "chunks" }, "stream_format"],
        [{ input: "hi", voice: 7 }, "voice"],
      ];
      for (const [body, param] of cases) {
        const reply = await call(url, "/v1/audio/speech", { model: "sim-tts", voice: "alloy", ...body });
        expect([reply.status, errorOf(reply)["param"]], JSON.stringify(body)).to.deep.equal([400, param]);
      }
      const longest = await call(url, "/v1/audio/speech", {
        model: "sim-tts",
        voice: "alloy",
        input: "ü".repeat(4096),
        response_format: "pcm",
      });
      expect(longest.status).to.equal(200);
    });

    it("drops the connection mid-answer on a drop failure without recording a client abort", async () => {
      const { sim, url } = await start({ speechChunkIntervalMs: 1 });
      const res = await request(`${url}/v1/audio/speech`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "sim-tts", input, response_format: "wav", sim: { fail: "drop", fail_after_tokens: 3 } }),
        dispatcher: agent,
      });
      expect(res.statusCode).to.equal(200);
      const received: Buffer[] = [];
      const error = await (async () => {
        for await (const chunk of res.body) received.push(chunk as Buffer);
      })().catch((caught: unknown) => caught);
      expect(error).to.be.instanceOf(Error);
      const full = expectedSpeech(input, "wav");
      const got = Buffer.concat(received);
      expect(got.length).to.be.greaterThan(0).and.below(full.length);
      expect(got, "the bytes before the drop are the answer's first bytes").to.deep.equal(full.subarray(0, got.length));
      expect(sim.aborted).to.deep.equal([]);
    });

    it("applies the configured failure to media requests too", async () => {
      const { client } = await start({ failure: { mode: "status", status: 500 } });
      const error = await client.audio.speech.create({ model: "sim-tts", input: "hi", voice: "alloy" }).catch((caught: unknown) => caught);
      expect((error as APIError).status).to.equal(500);
      expect((error as APIError).message).to.match(/simulated failure \(HTTP 500\)/);
    });

    it("records a client that leaves mid-answer as an abort and stops producing", async () => {
      const { sim, url } = await start({ speechChunkIntervalMs: 50 });
      const controller = new AbortController();
      const res = await request(`${url}/v1/audio/speech`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "sim-tts", input, response_format: "pcm" }),
        dispatcher: agent,
        signal: controller.signal,
      });
      const error = await (async () => {
        for await (const _ of res.body) controller.abort();
      })().catch((caught: unknown) => caught);
      expect(error).to.be.instanceOf(Error);
      const aborted = await sim.waitForAbort((record) => record.path === "/v1/audio/speech");
      expect(aborted).to.include({ model: "sim-tts", stream: true });
      expect(aborted.tokensSent).to.be.within(1, 19);
      expect(sim.activeGenerations).to.equal(0);
    });
  });
});
