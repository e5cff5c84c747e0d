import { createHash } from "node:crypto";
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import OpenAI, { type APIError, toFile } from "openai";
import { SpeechRender, speechSampleCount } from "../services/sim/simulated-speech.js";
import {
  expectedEditedPng,
  expectedGeneratedPng,
  expectedSpeech,
  expectedTranscription,
  pngDimensions,
  SPEECH_CONTENT_TYPES,
  SPEECH_FORMATS,
  type SpeechFormat,
  testWav,
} from "../services/sim/simulator.js";
import { type Mesh, type MeshAgent, startMesh } from "./support/mesh-fixture.js";

// Audio and images end to end: the official openai SDK -> gateway -> agent -> the simulator's media models.

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

/** MEDIA_LIMIT_BYTES is the media size the mesh carries both ways: 25 MiB. */
const MEDIA_LIMIT_BYTES = 25 * 1024 * 1024;

/**
 * LONGEST_SPEECH is the longest input the simulator speaks (4,096 characters), varied so that every part of the audio
 * differs; at LONGEST_SPEECH_SPEED its 16-bit pcm is exactly 25 MiB.
 */
const LONGEST_SPEECH = Array.from({ length: 4096 }, (_, i) => String.fromCharCode(97 + ((i * 7) % 26))).join("");
const LONGEST_SPEECH_SPEED = (speechSampleCount(LONGEST_SPEECH) * 2) / MEDIA_LIMIT_BYTES;

/** expectedSpeechDigest hashes the simulator's audio for input chunk by chunk, never holding all of it. */
function expectedSpeechDigest(input: string, format: SpeechFormat, speed: number): { sha256: string; bytes: number } {
  const render = new SpeechRender(input, format, speed);
  const hash = createHash("sha256");
  let bytes = 0;
  for (let index = 0; index < render.chunkCount; index++) {
    const chunk = render.chunk(index);
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { sha256: hash.digest("hex"), bytes };
}

/** readDigest hashes a response body as it arrives, noting when its first bytes came. */
async function readDigest(body: ReadableStream<Uint8Array>): Promise<{ sha256: string; bytes: number; firstByteAtMs: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  let firstByteAtMs = 0;
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    if (bytes === 0) firstByteAtMs = Date.now();
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { sha256: hash.digest("hex"), bytes, firstByteAtMs };
}

const MAGIC: Readonly<Record<SpeechFormat, (bytes: Buffer) => boolean>> = {
  wav: (b) => b.toString("latin1", 0, 4) === "RIFF" && b.toString("latin1", 8, 12) === "WAVE",
  flac: (b) => b.toString("latin1", 0, 4) === "fLaC",
  opus: (b) => b.toString("latin1", 0, 4) === "OggS",
  mp3: (b) => b.toString("latin1", 0, 3) === "ID3" || (b[0] === 0xff && ((b[1] ?? 0) & 0xe0) === 0xe0),
  aac: (b) => b[0] === 0xff && ((b[1] ?? 0) & 0xf6) === 0xf0,
  pcm: (b) => b.length > 0,
};

describe("audio and images through the mesh (openai SDK)", function () {
  this.timeout(60_000);
  let mesh: Mesh;
  let media: MeshAgent;
  let chat: MeshAgent;
  let client: OpenAI;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "infermesh-media-e2e-"));
    mesh = await startMesh();
    const key = await mesh.registry.keyFor("alice");
    media = await mesh.addAgent({
      user: "alice",
      apiKey: key,
      sim: {
        models: [
          { id: "sim-whisper", kind: "stt" },
          { id: "sim-diffusion", kind: "image" },
          { id: "sim-voice", kind: "tts" },
        ],
      },
    });
    chat = await mesh.addAgent({ user: "alice", apiKey: key, sim: { models: [{ id: "sim-llama" }] } });
    client = new OpenAI({ baseURL: `${mesh.gateway.baseUrl}/v1`, apiKey: key, maxRetries: 2 });
  });

  after(async () => {
    await mesh.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    media.simulator.reset();
    chat.simulator.reset();
  });

  describe("transcriptions", () => {
    const audio = testWav(2);
    const expected = expectedTranscription(audio);

    it("uploads with toFile and a quoted, non-ASCII name, and returns the transcript", async () => {
      const result = await client.audio.transcriptions.create({ model: "sim-whisper", file: await toFile(audio, 'rec ü "1".wav') });
      expect(result.text).to.equal(expected.text);
      const seen = media.simulator.requests.find((r) => r.path === "/v1/audio/transcriptions");
      expect(seen?.form?.files[0]).to.deep.include({ filename: 'rec ü "1".wav', sha256: sha256(audio), size: audio.length });
    });

    it("uploads a file streamed from disk (chunked, no content length)", async () => {
      const path = join(dir, "speech.wav");
      writeFileSync(path, audio);
      const result = await client.audio.transcriptions.create({ model: "sim-whisper", file: createReadStream(path) });
      expect(result.text).to.equal(expected.text);
    });

    it("answers every response_format, text ones as text/plain", async () => {
      const file = () => toFile(audio, "a.wav");
      const text = await client.audio.transcriptions.create({ model: "sim-whisper", file: await file(), response_format: "text" });
      expect(String(text).trim()).to.equal(expected.text);
      const srt = await client.audio.transcriptions.create({ model: "sim-whisper", file: await file(), response_format: "srt" });
      expect(String(srt)).to.match(/^1\n00:00:00,000 --> /);
      const vtt = await client.audio.transcriptions.create({ model: "sim-whisper", file: await file(), response_format: "vtt" });
      expect(String(vtt)).to.match(/^WEBVTT/);
      const json = await client.audio.transcriptions.create({ model: "sim-whisper", file: await file(), response_format: "json" });
      expect(json.text).to.equal(expected.text);
      const verbose = await client.audio.transcriptions.create({
        model: "sim-whisper",
        file: await file(),
        response_format: "verbose_json",
        timestamp_granularities: ["word", "segment"],
      });
      expect(verbose.text).to.equal(expected.text);
      expect(verbose.words?.map((w) => w.word)).to.deep.equal(expected.words.map((w) => w.word));
      expect(verbose.segments?.length).to.equal(expected.segments.length);
      const response = await fetch(`${mesh.gateway.baseUrl}/v1/audio/transcriptions`, {
        method: "POST",
        headers: { authorization: `Bearer ${client.apiKey}` },
        body: (() => {
          const form = new FormData();
          form.append("model", "sim-whisper");
          form.append("response_format", "srt");
          form.append("file", new Blob([audio]), "a.wav");
          return form;
        })(),
      });
      expect(response.headers.get("content-type")).to.match(/^text\/plain/);
    });

    it("streams transcript deltas and the done event", async () => {
      const stream = await client.audio.transcriptions.create({ model: "sim-whisper", file: await toFile(audio, "a.wav"), stream: true });
      let deltas = "";
      let done = "";
      for await (const event of stream) {
        if (event.type === "transcript.text.delta") deltas += event.delta;
        if (event.type === "transcript.text.done") done = event.text;
      }
      expect(done).to.equal(expected.text);
      expect(deltas.trim()).to.equal(expected.text);
    });

    it("refuses 25 MiB + 1 byte with a 413 envelope and accepts just under the limit", async () => {
      const limit = 25 * 1024 * 1024;
      const tooBig = await client.audio.transcriptions
        .create({ model: "sim-whisper", file: await toFile(Buffer.alloc(limit + 1), "big.wav") })
        .catch((e: unknown) => e);
      expect((tooBig as APIError).status).to.equal(413);
      expect((tooBig as APIError).code).to.equal("request_too_large");
      expect(media.simulator.requestCounts.get("/v1/audio/transcriptions") ?? 0).to.equal(0);
      const fits = await client.audio.transcriptions.create({
        model: "sim-whisper",
        file: await toFile(Buffer.alloc(limit - 64 * 1024), "fits.wav"),
      });
      expect(fits.text).to.be.a("string").and.not.empty;
    });
  });

  describe("speech", () => {
    it("returns a 25 MiB answer byte for byte, streamed through the gateway rather than gathered whole", async () => {
      const expected = expectedSpeechDigest(LONGEST_SPEECH, "pcm", LONGEST_SPEECH_SPEED);
      expect(expected.bytes).to.equal(MEDIA_LIMIT_BYTES);
      const response = await client.audio.speech.create({
        model: "sim-voice",
        input: LONGEST_SPEECH,
        voice: "alloy",
        response_format: "pcm",
        speed: LONGEST_SPEECH_SPEED,
        // Paced, so that an answer gathered whole anywhere on the way could not start before the model server ends.
        sim: { chunk_interval_ms: 25 },
      } as never);
      expect(response.headers.get("content-type")).to.equal(SPEECH_CONTENT_TYPES.pcm);
      const received = await readDigest(response.body as ReadableStream<Uint8Array>);
      expect(received.bytes).to.equal(expected.bytes);
      expect(received.sha256).to.equal(expected.sha256);
      const finished = await media.simulator.waitForFinish((f) => f.path === "/v1/audio/speech", 5_000);
      expect(received.firstByteAtMs, "the first bytes reach the client before the model server ends").to.be.below(finished.atMs);
    });

    for (const format of SPEECH_FORMATS) {
      it(`returns ${format} with its magic bytes and content type, byte for byte as the model server made it`, async () => {
        const input = "The mesh speaks.";
        const response = await client.audio.speech.create({ model: "sim-voice", input, voice: "alloy", response_format: format });
        expect(response.headers.get("content-type")).to.equal(SPEECH_CONTENT_TYPES[format]);
        const bytes = Buffer.from(await response.arrayBuffer());
        expect(MAGIC[format](bytes), `${format} magic`).to.equal(true);
        expect(sha256(bytes)).to.equal(sha256(expectedSpeech(input, format)));
      });
    }

    it("delivers the first audio chunk before the model server has finished", async () => {
      const response = await client.audio.speech.create({
        model: "sim-voice",
        input: "A longer sentence, so that the audio takes a while to produce.",
        voice: "alloy",
        response_format: "wav",
        sim: { chunk_interval_ms: 40 },
      } as never);
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      await reader.read();
      const firstByteAtMs = Date.now();
      while (!(await reader.read()).done);
      const finished = await media.simulator.waitForFinish((f) => f.path === "/v1/audio/speech", 5_000);
      expect(firstByteAtMs).to.be.below(finished.atMs);
    });
  });

  describe("images", () => {
    it("generates b64_json PNGs of the requested size, two with n: 2, unchanged from the model server", async () => {
      const result = await client.images.generate({ model: "sim-diffusion", prompt: "a lighthouse", size: "256x256", n: 2 });
      expect(result.data).to.have.length(2);
      result.data?.forEach((image, index) => {
        const png = Buffer.from(image.b64_json ?? "", "base64");
        expect(pngDimensions(png)).to.deep.equal({ width: 256, height: 256 });
        expect(sha256(png)).to.equal(sha256(expectedGeneratedPng("a lighthouse", { width: 256, height: 256 }, index)));
      });
    });

    it("streams partial images as named SSE events, then the completed image", async () => {
      const stream = await client.images.generate({
        model: "sim-diffusion",
        prompt: "a lighthouse",
        size: "256x256",
        stream: true,
        partial_images: 2,
      });
      const types: string[] = [];
      let completed = "";
      for await (const event of stream) {
        types.push(event.type);
        if (event.type === "image_generation.completed") completed = event.b64_json;
      }
      expect(types).to.deep.equal(["image_generation.partial_image", "image_generation.partial_image", "image_generation.completed"]);
      expect(pngDimensions(Buffer.from(completed, "base64"))).to.deep.equal({ width: 256, height: 256 });
    });

    it("answers response_format url with a data URL", async () => {
      const result = await client.images.generate({ model: "sim-diffusion", prompt: "x", size: "256x256", response_format: "url" });
      expect(result.data?.[0]?.url).to.match(/^data:image\/png;base64,/);
    });

    it("edits two images with a mask; the mask changes the result", async () => {
      const a = expectedGeneratedPng("a", { width: 64, height: 64 });
      const b = expectedGeneratedPng("b", { width: 64, height: 64 });
      const mask = expectedGeneratedPng("mask", { width: 64, height: 64 });
      const edit = async (withMask: Buffer | undefined) =>
        client.images.edit({
          model: "sim-diffusion",
          prompt: "add a moon",
          size: "256x256",
          image: [await toFile(a, "a.png", { type: "image/png" }), await toFile(b, "b.png", { type: "image/png" })],
          ...(withMask ? { mask: await toFile(withMask, "mask.png", { type: "image/png" }) } : {}),
        });
      const masked = Buffer.from((await edit(mask)).data?.[0]?.b64_json ?? "", "base64");
      expect(sha256(masked)).to.equal(
        sha256(expectedEditedPng({ prompt: "add a moon", images: [a, b], mask }, { width: 256, height: 256 })),
      );
      const plain = Buffer.from((await edit(undefined)).data?.[0]?.b64_json ?? "", "base64");
      expect(sha256(plain)).not.to.equal(sha256(masked));
      const seen = media.simulator.requests.find((r) => r.path === "/v1/images/edits");
      expect(seen?.form?.files.map((f) => [f.field, f.filename])).to.deep.equal([
        ["image[]", "a.png"],
        ["image[]", "b.png"],
        ["mask", "mask.png"],
      ]);
    });
  });

  it("keeps every request on a model of its type: the wrong upstream is never called", async () => {
    const wrong: [string, () => Promise<unknown>][] = [
      [
        "chat model on transcriptions",
        async () => client.audio.transcriptions.create({ model: "sim-llama", file: await toFile(testWav(0.1), "a.wav") }),
      ],
      ["chat model on images", () => client.images.generate({ model: "sim-llama", prompt: "x" })],
      ["tts model on chat", () => client.chat.completions.create({ model: "sim-voice", messages: [{ role: "user", content: "x" }] })],
    ];
    for (const [what, call] of wrong) {
      const error = await call().catch((e: unknown) => e);
      expect((error as APIError).status, what).to.equal(400);
    }
    const calls = [...media.simulator.requestCounts.entries(), ...chat.simulator.requestCounts.entries()].filter(
      ([path]) => path !== "/v1/models",
    );
    expect(calls).to.deep.equal([]);
  });
});
