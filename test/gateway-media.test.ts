import { createHash } from "node:crypto";
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import OpenAI, { APIError, toFile } from "openai";
import { type InferenceCall, MediaRole, Operation } from "../gen/infermesh/v1/inference_pb.js";
import { type GatewayFixture, startGateway } from "./support/gateway-fixture.js";
import { type RegistryFixture, startRegistry } from "./support/registry-fixture.js";
import { attachScriptedAgent, type Script, type ScriptedAgent } from "./support/scripted-agent.js";
import { waitFor } from "./support/wait-for.js";

// The gateway's media endpoints against a scripted agent: what reaches the mesh, and how answers come back.

const MAX_UPLOAD = 25 * 1024 * 1024;
const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");
const decode = (call: InferenceCall | undefined) => JSON.parse(new TextDecoder().decode(call?.body)) as Record<string, unknown>;

function answer(contentType: string, ...chunks: Uint8Array[]): Script {
  return async function* () {
    yield { part: { part: { case: "head", value: { status: 200, contentType } } } };
    for (const chunk of chunks) yield { part: { part: { case: "data", value: chunk } } };
    yield { part: { part: { case: "trailer", value: { finishReasons: [] } } } };
  };
}

describe("gateway media endpoints against a scripted agent", function () {
  this.timeout(60_000);
  let registry: RegistryFixture;
  let gateway: GatewayFixture;
  let agent: ScriptedAgent;
  let client: OpenAI;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "infermesh-media-"));
    registry = await startRegistry();
    const key = await registry.keyFor("alice");
    gateway = await startGateway(registry.address);
    agent = await attachScriptedAgent(
      gateway.baseUrl,
      key,
      "media-box",
      [
        { id: "whisper-1", serviceType: "SERVICE_TYPE_STT" },
        { id: "painter", serviceType: "SERVICE_TYPE_IMAGE" },
        { id: "voice", serviceType: "SERVICE_TYPE_TTS" },
        { id: "chatty", serviceType: "SERVICE_TYPE_LLM" },
      ],
      answer("application/json", Buffer.from('{"text":"ok"}')),
    );
    await waitFor("the provider", () => gateway.gateway.table.provider("media-box"));
    client = new OpenAI({ baseURL: `${gateway.baseUrl}/v1`, apiKey: key, maxRetries: 2 });
  });

  after(async () => {
    // A setup that failed part way leaves nothing running behind.
    await agent?.close();
    await gateway?.stop();
    await registry?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    agent.calls.length = 0;
    agent.script = answer("application/json", Buffer.from('{"text":"ok"}'));
  });

  it("carries a transcription's form fields verbatim and its file as bytes with name and type", async () => {
    const audio = Buffer.from("RIFF fake wav bytes \u00ff".repeat(100), "latin1");
    const result = await client.audio.transcriptions.create({
      model: "WHISPER-1",
      file: await toFile(audio, 'rec ü "1".wav', { type: "audio/wav" }),
      language: "en",
      temperature: 0.2,
      timestamp_granularities: ["word", "segment"],
      response_format: "verbose_json",
      extra_field: "kept",
    } as never);
    expect(result).to.deep.equal({ text: "ok" });
    const call = agent.calls[0];
    expect(call?.operation).to.equal(Operation.TRANSCRIPTION);
    expect(call?.model).to.equal("whisper-1");
    expect(decode(call)).to.deep.equal({
      model: "whisper-1",
      language: "en",
      temperature: "0.2",
      "timestamp_granularities[]": ["word", "segment"],
      response_format: "verbose_json",
      extra_field: "kept",
    });
    expect(call?.media).to.have.length(1);
    expect(call?.media[0]).to.deep.include({ role: MediaRole.AUDIO, filename: 'rec ü "1".wav', contentType: "audio/wav" });
    expect(sha256(call?.media[0]?.data ?? new Uint8Array())).to.equal(sha256(audio));
  });

  it("accepts an upload streamed from a file without a content length", async () => {
    const path = join(dir, "stream.wav");
    const audio = Buffer.alloc(3 * 1024 * 1024, 7);
    writeFileSync(path, audio);
    await client.audio.transcriptions.create({ model: "whisper-1", file: createReadStream(path) });
    expect(sha256(agent.calls[0]?.media[0]?.data ?? new Uint8Array())).to.equal(sha256(audio));
    expect(agent.calls[0]?.media[0]?.filename).to.equal("stream.wav");
  });

  it("answers text formats as text/plain, as the provider sent them", async () => {
    const srt = "1\n00:00:00,000 --> 00:00:01,000\nhello\n";
    agent.script = answer("text/plain; charset=utf-8", Buffer.from(srt));
    const text = await client.audio.transcriptions.create({
      model: "whisper-1",
      file: await toFile(Buffer.from("abc"), "a.wav"),
      response_format: "srt",
    });
    expect(text).to.equal(srt);
  });

  it("refuses an upload over the limit with a 413 envelope, without retrying and without calling the agent", async () => {
    const error = await client.audio.transcriptions
      .create({ model: "whisper-1", file: await toFile(Buffer.alloc(MAX_UPLOAD + 1), "big.wav") })
      .catch((e: unknown) => e);
    expect(error).to.be.instanceOf(APIError);
    expect((error as APIError).status).to.equal(413);
    expect((error as APIError).type).to.equal("invalid_request_error");
    expect((error as APIError).code).to.equal("request_too_large");
    expect(agent.calls).to.have.length(0);
    await client.audio.transcriptions.create({ model: "whisper-1", file: await toFile(Buffer.alloc(MAX_UPLOAD - 1024), "ok.wav") });
    expect(agent.calls).to.have.length(1);
  });

  it("rejects a missing file, a bad format and a non-multipart body with 400s naming the field", async () => {
    const form = new FormData();
    form.append("model", "whisper-1");
    const post = (body: FormData | string, headers: Record<string, string> = {}) =>
      fetch(`${gateway.baseUrl}/v1/audio/transcriptions`, {
        method: "POST",
        headers: { authorization: `Bearer ${client.apiKey}`, ...headers },
        body,
      });
    const missing = await post(form);
    expect(missing.status).to.equal(400);
    expect(((await missing.json()) as { error: { param: string } }).error.param).to.equal("file");
    form.append("file", new Blob([Buffer.from("x")]), "a.wav");
    form.append("response_format", "mp4");
    const badFormat = await post(form);
    expect(((await badFormat.json()) as { error: { param: string } }).error.param).to.equal("response_format");
    const json = await post(JSON.stringify({ model: "whisper-1" }), { "content-type": "application/json" });
    expect(json.status).to.equal(400);
    expect(agent.calls).to.have.length(0);
  });

  it("sends an edit's images and mask in order with their roles", async () => {
    agent.script = answer("application/json", Buffer.from('{"created":1,"data":[{"b64_json":"AA=="}]}'));
    const a = Buffer.from("image-a");
    const b = Buffer.from("image-b");
    const mask = Buffer.from("mask");
    const result = await client.images.edit({
      model: "painter",
      image: [await toFile(a, "a.png", { type: "image/png" }), await toFile(b, "b.png", { type: "image/png" })],
      mask: await toFile(mask, "mask.png", { type: "image/png" }),
      prompt: "add a hat",
      n: 2,
    });
    expect(result.data?.[0]?.b64_json).to.equal("AA==");
    const media = agent.calls[0]?.media ?? [];
    expect(media.map((m) => [m.role, m.filename, Buffer.from(m.data).toString()])).to.deep.equal([
      [MediaRole.IMAGE, "a.png", "image-a"],
      [MediaRole.IMAGE, "b.png", "image-b"],
      [MediaRole.MASK, "mask.png", "mask"],
    ]);
    expect(decode(agent.calls[0])).to.include({ prompt: "add a hat", n: "2", model: "painter" });
  });

  it("passes an image generation's JSON through and its answer back unchanged", async () => {
    const body = '{"created":1,"data":[{"b64_json":"iVBORw0KGgo="}]}';
    agent.script = answer("application/json", Buffer.from(body));
    const response = await fetch(`${gateway.baseUrl}/v1/images/generations`, {
      method: "POST",
      headers: { authorization: `Bearer ${client.apiKey}`, "content-type": "application/json" },
      body: '{"model":"painter","prompt":"a cat","size":"256x256","n":1}',
    });
    expect(await response.text()).to.equal(body);
    expect(new TextDecoder().decode(agent.calls[0]?.body)).to.equal('{"model":"painter","prompt":"a cat","size":"256x256","n":1}');
  });

  it("streams speech to the client chunk by chunk: the first bytes arrive before the provider has finished", async () => {
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    agent.script = async function* () {
      yield { part: { part: { case: "head", value: { status: 200, contentType: "audio/wav" } } } };
      yield { part: { part: { case: "data", value: Buffer.from("RIFF....WAVE") } } };
      await released;
      yield { part: { part: { case: "data", value: Buffer.from("rest-of-audio") } } };
      yield { part: { part: { case: "trailer", value: { finishReasons: [] } } } };
    };
    const response = await client.audio.speech.create({ model: "voice", input: "hello", voice: "alloy", response_format: "wav" });
    expect(response.headers.get("content-type")).to.equal("audio/wav");
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(Buffer.from(first.value ?? []).toString()).to.equal("RIFF....WAVE");
    release();
    let rest = "";
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += Buffer.from(chunk.value).toString();
    expect(rest).to.equal("rest-of-audio");
  });

  it("cuts a binary answer that fails midway instead of ending it as if whole", async () => {
    agent.script = async function* () {
      yield { part: { part: { case: "head", value: { status: 200, contentType: "audio/mpeg" } } } };
      yield { part: { part: { case: "data", value: Buffer.from("ID3-partial") } } };
      yield { part: { part: { case: "error", value: { type: "upstream_error", message: "tts crashed", httpStatus: 502 } } } };
    };
    const response = await client.audio.speech.create({ model: "voice", input: "hello", voice: "alloy" });
    const failure = await response.arrayBuffer().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(failure, "the body must not end cleanly").to.be.instanceOf(Error);
  });

  it("routes each endpoint only to models of its service type", async () => {
    const cases: [string, () => Promise<unknown>][] = [
      [
        "chat model on transcriptions",
        async () => client.audio.transcriptions.create({ model: "chatty", file: await toFile(Buffer.from("x"), "a.wav") }),
      ],
      ["chat model on images", () => client.images.generate({ model: "chatty", prompt: "x" })],
      ["tts model on chat", () => client.chat.completions.create({ model: "voice", messages: [{ role: "user", content: "x" }] })],
      ["image model on speech", () => client.audio.speech.create({ model: "painter", input: "x", voice: "alloy" })],
    ];
    for (const [what, call] of cases) {
      const error = await call().catch((e: unknown) => e);
      expect((error as APIError).status, what).to.equal(400);
      expect((error as APIError).message, what).to.match(/Model '\w+' is an? \w+ model/);
    }
    expect(agent.calls).to.have.length(0);
    const unknown = await client.audio.transcriptions
      .create({ model: "nobody", file: await toFile(Buffer.from("x"), "a.wav") })
      .catch((e: unknown) => e);
    expect((unknown as APIError).message).to.contain("No online provider serving speech-to-text model 'nobody' for this user.");
  });

  it("validates speech and image requests before they reach the mesh", async () => {
    const bad: [() => Promise<unknown>, string][] = [
      [() => client.audio.speech.create({ model: "voice", input: "", voice: "alloy" }), "input"],
      [() => client.audio.speech.create({ model: "voice", input: "x".repeat(4097), voice: "alloy" }), "input"],
      [
        () => client.audio.speech.create({ model: "voice", input: "x", voice: "alloy", response_format: "ogg" as never }),
        "response_format",
      ],
      [() => client.audio.speech.create({ model: "voice", input: "x", voice: "alloy", speed: 9 }), "speed"],
      [() => client.images.generate({ model: "painter", prompt: "x", n: 0 }), "n"],
      [() => client.images.generate({ model: "painter", prompt: "x", size: "huge" as never }), "size"],
      [() => client.images.generate({ model: "painter", prompt: "" }), "prompt"],
    ];
    for (const [call, param] of bad) {
      const error = await call().catch((e: unknown) => e);
      expect((error as APIError).status, param).to.equal(400);
      expect((error as APIError).param, param).to.equal(param);
    }
    expect(agent.calls).to.have.length(0);
  });
});
