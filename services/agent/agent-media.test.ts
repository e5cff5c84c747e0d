import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import type { StockClient } from "../../test/support/stock-grpc-client.js";
import { waitFor } from "../../test/support/wait-for.js";
import { createSimulator, expectedTranscription } from "../sim/simulator.js";
import type { Agent } from "./agent.js";
import { pngHeader } from "./image-format.js";
import { DATA_PART_BYTES } from "./inference-parts.js";
import { type AgentFixture, startAgentFixture } from "./test-support/agent-fixture.js";
import { type FakeHandler, type FakeRequest, type FakeUpstream, startFakeUpstream } from "./test-support/fake-upstream.js";
import { type InferResult, infer, openInfer, type StockCall, type StockMediaFile, type StockPart } from "./test-support/infer-client.js";
import { contentDispositions, readForm, recordedFile, sha256 } from "./test-support/recorded-form.js";
import { tinyPng } from "./test-support/tiny-png.js";

const TRICKY_NAME = 'rec ü "1".wav';

/** withModelList answers the agent's probe (GET /v1/models) and hands every other request to handler. */
function withModelList(handler: FakeHandler): FakeHandler {
  return (request, response) => {
    if (request.method === "GET" && request.path === "/v1/models") {
      response.writeHead(200, { "content-type": "application/json" });
      response.end('{"object":"list","data":[]}');
      return;
    }
    handler(request, response);
  };
}

function answerJson(response: ServerResponse, status: number, value: unknown): void {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(value));
}

function kinds(result: InferResult): string[] {
  return result.parts.map((part) => part.part);
}

function dataOf(parts: readonly StockPart[]): Buffer {
  return Buffer.concat(parts.filter((part) => part.part === "data").map((part) => part.data as Buffer));
}

function posts(upstream: FakeUpstream): FakeRequest[] {
  return upstream.requests.filter((request) => request.method === "POST");
}

describe("agent Infer for audio and images (OpenAI-compatible upstreams)", () => {
  let fixture: AgentFixture;
  let upstream: FakeUpstream;
  let agent: Agent;
  let client: StockClient;
  let token: string;

  function call(operation: string, model: string, body: unknown, media: StockMediaFile[] = [], extra: Partial<StockCall> = {}): StockCall {
    return { operation, model, body: Buffer.from(JSON.stringify(body)), media, requestId: "req-media", ...extra };
  }

  before(async () => {
    upstream = await startFakeUpstream(withModelList(() => {}));
    fixture = await startAgentFixture({
      user: "carol",
      upstreams: [
        { type: "stt", url: upstream.url, declare: ["whisper-1"] },
        { type: "image", url: upstream.url, declare: ["gpt-image-1"] },
        { type: "tts", url: upstream.url, declare: ["tts-1"] },
      ],
      servers: [upstream],
      agent: { hostname: "media-host", discoveryBackoff: { initialMs: 50, maxMs: 100 } },
      mediaClient: true,
    });
    ({ agent, client, token } = fixture);
  });

  after(() => fixture.close());

  beforeEach(async () => {
    // An upstream that broke off an answer is out of routing until discovery's next probe: the tests share it.
    await waitFor("every model advertised", () => agent.models().length === 3);
    upstream.requests.length = 0;
    upstream.aborted.length = 0;
  });

  it("advertises declared models with their upstream's service type", () => {
    expect(agent.models().map((model) => [model.id, model.serviceType])).to.deep.equal([
      ["whisper-1", 2],
      ["gpt-image-1", 3],
      ["tts-1", 4],
    ]);
  });

  it("rebuilds a transcription's form: fields as sent and repeated, the file's name, type and bytes (5 MiB)", async () => {
    const audio = randomBytes(5 * 1024 * 1024);
    const srt = "1\n00:00:00,000 --> 00:00:01,000\nHello.\n\n";
    upstream.handler = withModelList((_request, response) => {
      response.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      response.end(srt);
    });
    const fields = {
      model: "whisper-1",
      language: "en",
      response_format: "srt",
      temperature: "0.2",
      "timestamp_granularities[]": ["word", "segment"],
      stream: "false",
      some_unknown_field: "x",
    };
    const result = await infer(
      client,
      call("OPERATION_TRANSCRIPTION", "whisper-1", fields, [
        { role: "MEDIA_ROLE_AUDIO", filename: TRICKY_NAME, contentType: "audio/wav", data: audio },
      ]),
      token,
    );
    expect(result.status.code, result.status.details).to.equal(grpc.status.OK);
    expect(kinds(result)).to.deep.equal(["head", "data", "trailer"]);
    expect(result.parts[0]?.head).to.deep.include({ status: 200, contentType: "text/plain; charset=utf-8" });
    expect(dataOf(result.parts).toString()).to.equal(srt);

    const [request] = posts(upstream);
    expect(request?.path).to.equal("/v1/audio/transcriptions");
    expect(request?.headers["content-type"]).to.match(/^multipart\/form-data; boundary=/);
    expect(request?.headers["x-request-id"]).to.equal("req-media");
    expect(await readForm(request as FakeRequest)).to.deep.equal([
      ["model", "whisper-1"],
      ["language", "en"],
      ["response_format", "srt"],
      ["temperature", "0.2"],
      ["timestamp_granularities[]", "word"],
      ["timestamp_granularities[]", "segment"],
      ["stream", "false"],
      ["some_unknown_field", "x"],
      ["file", recordedFile(TRICKY_NAME, "audio/wav", audio)],
    ]);
    expect(contentDispositions(request as FakeRequest).at(-1), "escaped as browsers and the OpenAI SDKs do").to.equal(
      'Content-Disposition: form-data; name="file"; filename="rec ü %221%22.wav"',
    );
  });

  it("posts a translation's form to /v1/audio/translations, reads the audio's length it reports, and answers a server without it as unsupported", async () => {
    const audio = { role: "MEDIA_ROLE_AUDIO" as const, filename: "speech.mp3", contentType: "audio/mpeg", data: Buffer.from("ID3....") };
    upstream.handler = withModelList((_request, response) =>
      answerJson(response, 200, { task: "translate", language: "german", duration: 2.5, text: "Hello." }),
    );
    const fields = { model: "whisper-1", prompt: "A greeting.", response_format: "verbose_json" };
    const result = await infer(client, call("OPERATION_TRANSLATION", "whisper-1", fields, [audio]), token);
    expect(kinds(result)).to.deep.equal(["head", "data", "trailer"]);
    expect(result.parts.at(-1)?.trailer?.usage).to.deep.include({ audioSeconds: 2.5 });
    const [request] = posts(upstream);
    expect(request?.path).to.equal("/v1/audio/translations");
    expect(await readForm(request as FakeRequest)).to.deep.equal([
      ["model", "whisper-1"],
      ["prompt", "A greeting."],
      ["response_format", "verbose_json"],
      ["file", recordedFile("speech.mp3", "audio/mpeg", audio.data)],
    ]);

    upstream.handler = withModelList((_request, response) => answerJson(response, 404, { detail: "Not Found" }));
    const missing = await infer(client, call("OPERATION_TRANSLATION", "whisper-1", fields, [audio]), token);
    expect(kinds(missing)).to.deep.equal(["error"]);
    expect(missing.parts[0]?.error).to.deep.include({
      type: "invalid_request_error",
      httpStatus: 400,
      code: "unsupported_endpoint",
      message: "Model 'whisper-1' is served by a server that does not serve POST /v1/audio/translations (it answered HTTP 404)",
    });
  });

  it("rebuilds an edit's form with image[] in order and the mask, and reads usage from the JSON answer", async () => {
    const first = tinyPng({ width: 32, height: 16, seed: 1 });
    const second = tinyPng({ width: 32, height: 16, seed: 2 });
    const mask = tinyPng({ width: 32, height: 16, alpha: true });
    const answer = {
      created: 1_700_000_000,
      data: [{ b64_json: first.toString("base64") }],
      usage: { input_tokens: 50, output_tokens: 272, total_tokens: 322, input_tokens_details: { text_tokens: 10, image_tokens: 40 } },
    };
    upstream.handler = withModelList((_request, response) => answerJson(response, 200, answer));
    const result = await infer(
      client,
      call("OPERATION_IMAGE_EDIT", "gpt-image-1", { model: "gpt-image-1", prompt: "merge them", n: "1", size: "1024x1024" }, [
        { role: "MEDIA_ROLE_IMAGE", filename: "a.png", contentType: "image/png", data: first },
        { role: "MEDIA_ROLE_IMAGE", filename: "b.webp", contentType: "image/webp", data: second },
        { role: "MEDIA_ROLE_MASK", filename: "mask.png", contentType: "image/png", data: mask },
      ]),
      token,
    );
    expect(kinds(result)).to.deep.equal(["head", "data", "trailer"]);
    expect(JSON.parse(dataOf(result.parts).toString())).to.deep.equal(answer);
    expect(result.parts[2]?.trailer?.usage).to.deep.include({ promptTokens: 50, completionTokens: 272, totalTokens: 322 });
    const [request] = posts(upstream);
    expect(request?.path).to.equal("/v1/images/edits");
    expect(await readForm(request as FakeRequest)).to.deep.equal([
      ["model", "gpt-image-1"],
      ["prompt", "merge them"],
      ["n", "1"],
      ["size", "1024x1024"],
      ["image[]", recordedFile("a.png", "image/png", first)],
      ["image[]", recordedFile("b.webp", "image/webp", second)],
      ["mask", recordedFile("mask.png", "image/png", mask)],
    ]);

    await infer(
      client,
      call("OPERATION_IMAGE_EDIT", "gpt-image-1", { model: "gpt-image-1", prompt: "p" }, [
        { role: "MEDIA_ROLE_IMAGE", filename: "a.png", contentType: "image/png", data: first },
      ]),
      token,
    );
    expect((await readForm(posts(upstream)[1] as FakeRequest)).map(([name]) => name)).to.deep.equal(["model", "prompt", "image"]);
  });

  it("POSTs a generation's JSON body untouched and relays the answer's bytes unchanged", async () => {
    const png = tinyPng({ width: 64, height: 64, seed: 9 });
    const answerBytes = Buffer.from(JSON.stringify({ created: 1_700_000_001, data: [{ b64_json: png.toString("base64") }] }));
    upstream.handler = withModelList((_request, response) => {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(answerBytes);
    });
    const body = Buffer.from('{"model":"gpt-image-1","prompt":"a fox","size":"64x64","n":1,"custom":{"x":[1,2]}}');
    const result = await infer(client, { operation: "OPERATION_IMAGE_GENERATION", model: "gpt-image-1", body }, token);
    expect(kinds(result)).to.deep.equal(["head", "data", "trailer"]);
    expect(sha256(dataOf(result.parts))).to.equal(sha256(answerBytes));
    const [request] = posts(upstream);
    expect(request?.path).to.equal("/v1/images/generations");
    expect(request?.headers["content-type"]).to.equal("application/json");
    expect(request?.body).to.deep.equal(body);
  });

  it("streams speech as the upstream writes it: the first bytes arrive before the upstream has finished", async () => {
    const first = Buffer.concat([Buffer.from("RIFF\0\0\0\0WAVEfmt "), randomBytes(64 * 1024)]);
    const rest = [randomBytes(DATA_PART_BYTES + 123), randomBytes(2 * DATA_PART_BYTES), randomBytes(777)];
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let finished = false;
    upstream.handler = withModelList((_request, response) => {
      response.writeHead(200, { "content-type": "audio/wav" });
      response.write(first);
      void released.then(() => {
        for (const piece of rest) response.write(piece);
        response.end(() => (finished = true));
      });
    });
    const open = openInfer(
      client,
      call("OPERATION_SPEECH", "tts-1", { model: "tts-1", input: "Hello there.", voice: "alloy", response_format: "wav" }),
      token,
    );
    await waitFor("the first audio bytes", () => open.parts.some((part) => part.part === "data"));
    expect(finished, "the upstream is still writing").to.equal(false);
    expect(open.parts[0]?.head).to.deep.include({ status: 200, contentType: "audio/wav" });
    release();
    const result = await open.done;
    expect(result.status.code).to.equal(grpc.status.OK);
    const data = result.parts.filter((part) => part.part === "data").map((part) => part.data as Buffer);
    expect(data.length).to.be.at.least(4);
    expect(Math.max(...data.map((piece) => piece.length))).to.be.at.most(DATA_PART_BYTES);
    expect(sha256(dataOf(result.parts))).to.equal(sha256(Buffer.concat([first, ...rest])));
    expect(result.parts.at(-1)?.part).to.equal("trailer");
    expect(JSON.parse(posts(upstream)[0]?.body.toString() ?? "")).to.deep.include({ input: "Hello there.", voice: "alloy" });
  });

  it("passes transcription deltas through as events, and the done event's usage into the trailer", async () => {
    const events = [
      '{"type":"transcript.text.delta","delta":"Hel"}',
      '{"type":"transcript.text.delta","delta":"lo."}',
      '{"type":"transcript.text.done","text":"Hello.","usage":{"type":"tokens","input_tokens":14,"output_tokens":3,"total_tokens":17}}',
    ];
    upstream.handler = withModelList((_request, response) => {
      response.writeHead(200, { "content-type": "text/event-stream" });
      response.end(events.map((data) => `data: ${data}\n\n`).join(""));
    });
    const audio: StockMediaFile = { role: "MEDIA_ROLE_AUDIO", filename: "a.wav", contentType: "audio/wav", data: Buffer.from("RIFF") };
    const result = await infer(
      client,
      call("OPERATION_TRANSCRIPTION", "whisper-1", { model: "whisper-1", stream: "true" }, [audio], { stream: true }),
      token,
    );
    expect(kinds(result)).to.deep.equal(["head", "event", "event", "event", "trailer"]);
    expect(result.parts.filter((p) => p.part === "event").map((p) => p.event?.data.toString())).to.deep.equal(events);
    expect(result.parts.at(-1)?.trailer?.usage).to.deep.include({ promptTokens: 14, completionTokens: 3, totalTokens: 17 });
  });

  it("keeps image stream events' names, and carries a partial image larger than gRPC's default 4 MiB", async () => {
    const partial = JSON.stringify({
      type: "image_generation.partial_image",
      partial_image_index: 0,
      b64_json: randomBytes(4 * 1024 * 1024).toString("base64"),
    });
    const done = JSON.stringify({
      type: "image_generation.completed",
      b64_json: "iVBORw0KGgo=",
      usage: { input_tokens: 5, output_tokens: 6, total_tokens: 11 },
    });
    upstream.handler = withModelList((_request, response) => {
      response.writeHead(200, { "content-type": "text/event-stream" });
      response.write(`event: image_generation.partial_image\ndata: ${partial}\n\n`);
      response.end(`event: image_generation.completed\ndata: ${done}\n\n`);
    });
    const result = await infer(
      client,
      call("OPERATION_IMAGE_GENERATION", "gpt-image-1", { model: "gpt-image-1", prompt: "x", stream: true, partial_images: 1 }, [], {
        stream: true,
      }),
      token,
    );
    expect(result.status.code, result.status.details).to.equal(grpc.status.OK);
    expect(kinds(result)).to.deep.equal(["head", "event", "event", "trailer"]);
    const events = result.parts.filter((p) => p.part === "event").map((p) => [p.event?.event, p.event?.data.toString()]);
    expect(events).to.deep.equal([
      ["image_generation.partial_image", partial],
      ["image_generation.completed", done],
    ]);
    expect(result.parts.at(-1)?.trailer?.usage).to.deep.include({ promptTokens: 5, completionTokens: 6, totalTokens: 11 });
  });

  it("passes an upstream 4xx through as its own answer", async () => {
    const error = { error: { message: "Invalid file format.", type: "invalid_request_error", param: "file", code: null } };
    upstream.handler = withModelList((_request, response) => answerJson(response, 400, error));
    const audio: StockMediaFile = { role: "MEDIA_ROLE_AUDIO", filename: "a.txt", contentType: "text/plain", data: Buffer.from("nope") };
    const result = await infer(client, call("OPERATION_TRANSCRIPTION", "whisper-1", { model: "whisper-1" }, [audio]), token);
    expect(kinds(result), result.status.details).to.deep.equal(["head", "data", "trailer"]);
    expect(result.parts[0]?.head).to.deep.include({ status: 400, contentType: "application/json" });
    expect(JSON.parse(dataOf(result.parts).toString())).to.deep.equal(error);
  });

  it("turns an upstream 500 into one upstream_error part", async () => {
    upstream.handler = withModelList((_request, response) => answerJson(response, 500, { detail: "voice model crashed" }));
    const result = await infer(client, call("OPERATION_SPEECH", "tts-1", { model: "tts-1", input: "x", voice: "alloy" }), token);
    expect(kinds(result)).to.deep.equal(["error"]);
    expect(result.parts[0]?.error).to.deep.include({
      type: "upstream_error",
      httpStatus: 502,
      message: "the local tts server answered HTTP 500: voice model crashed",
    });
  });

  it("ends speech that breaks off mid-answer with an upstream_error part after the bytes relayed", async () => {
    upstream.handler = withModelList((_request, response) => {
      response.writeHead(200, { "content-type": "audio/mpeg" });
      response.write(Buffer.alloc(1000, 0xff), () => response.socket?.destroy());
    });
    const result = await infer(client, call("OPERATION_SPEECH", "tts-1", { model: "tts-1", input: "x", voice: "alloy" }), token);
    expect(kinds(result)).to.deep.equal(["head", "data", "error"]);
    expect(result.parts[2]?.error?.message).to.contain("after 1000 bytes");
  });

  it("aborts the upstream request at once when the caller cancels", async () => {
    upstream.handler = withModelList((_request, response) => {
      response.writeHead(200, { "content-type": "audio/pcm" });
      response.write(Buffer.alloc(4096));
    });
    const open = openInfer(client, call("OPERATION_SPEECH", "tts-1", { model: "tts-1", input: "long", voice: "alloy" }), token);
    await waitFor("the first audio bytes", () => open.parts.some((part) => part.part === "data"));
    open.call.cancel();
    await waitFor("the upstream to see the abort", () => upstream.aborted.length === 1, 1_000);
    expect((await open.done).status.code).to.equal(grpc.status.CANCELLED);
    await waitFor("the slot to free", () => agent.load().inFlight === 0);
  });

  it("refuses a multipart call that breaks the contract with INVALID_ARGUMENT, without calling the upstream", async () => {
    const noAudio = await infer(client, call("OPERATION_TRANSCRIPTION", "whisper-1", { model: "whisper-1" }), token);
    expect(noAudio.status.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(noAudio.status.details).to.equal("a transcription takes exactly one audio file, got none");
    const audio: StockMediaFile = { role: "MEDIA_ROLE_AUDIO", filename: "a.wav", contentType: "audio/wav", data: Buffer.from("RIFF") };
    const badBody = await infer(
      client,
      { ...call("OPERATION_TRANSCRIPTION", "whisper-1", {}, [audio]), body: Buffer.from("model=x") },
      token,
    );
    expect(badBody.status.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(posts(upstream)).to.deep.equal([]);
  });
});

describe("agent Infer for audio and images against the model-server simulator", () => {
  let fixture: AgentFixture;
  let client: StockClient;
  let token: string;

  before(async () => {
    const simulator = createSimulator({
      models: [
        { id: "sim-whisper", kind: "stt" },
        { id: "sim-image", kind: "image" },
        { id: "sim-voice", kind: "tts" },
      ],
    });
    const { url } = await simulator.listen();
    fixture = await startAgentFixture({
      user: "erin",
      upstreams: [
        { type: "stt", url, expose: ["sim-whisper"] },
        { type: "image", url, expose: ["sim-image"] },
        { type: "tts", url, expose: ["sim-voice"] },
      ],
      servers: [simulator],
      mediaClient: true,
    });
    ({ client, token } = fixture);
  });

  after(() => fixture.close());

  it("speaks WAV in several parts, transcribes it back, and draws a PNG of the requested size", async () => {
    const speechBody = Buffer.from(
      JSON.stringify({ model: "sim-voice", input: "The quick brown fox jumps.", voice: "alloy", response_format: "wav" }),
    );
    const speech = await infer(client, { operation: "OPERATION_SPEECH", model: "sim-voice", body: speechBody }, token);
    expect(speech.status.code, speech.status.details).to.equal(grpc.status.OK);
    expect(speech.parts[0]?.head).to.deep.include({ status: 200, contentType: "audio/wav" });
    const wav = dataOf(speech.parts);
    expect(wav.toString("latin1", 0, 4) + wav.toString("latin1", 8, 12)).to.equal("RIFFWAVE");
    expect(speech.parts.filter((part) => part.part === "data").length).to.be.above(1);

    const transcription = await infer(
      client,
      {
        operation: "OPERATION_TRANSCRIPTION",
        model: "sim-whisper",
        body: Buffer.from(JSON.stringify({ model: "sim-whisper", response_format: "json" })),
        media: [{ role: "MEDIA_ROLE_AUDIO", filename: TRICKY_NAME, contentType: "audio/wav", data: wav }],
      },
      token,
    );
    expect(transcription.parts[0]?.head?.status, dataOf(transcription.parts).toString()).to.equal(200);
    const transcript = expectedTranscription(wav);
    expect(JSON.parse(dataOf(transcription.parts).toString())).to.deep.equal({
      text: transcript.text,
      usage: { type: "duration", seconds: Math.ceil(transcript.durationSeconds) },
    });

    const imageBody = Buffer.from(
      JSON.stringify({ model: "sim-image", prompt: "a fox", size: "64x48", n: 2, response_format: "b64_json" }),
    );
    const image = await infer(client, { operation: "OPERATION_IMAGE_GENERATION", model: "sim-image", body: imageBody }, token);
    const { data } = JSON.parse(dataOf(image.parts).toString()) as { data: { b64_json: string }[] };
    expect(data.map((entry) => pngHeader(Buffer.from(entry.b64_json, "base64")))).to.deep.equal([
      { width: 64, height: 48, hasAlpha: false },
      { width: 64, height: 48, hasAlpha: false },
    ]);
  });
});
