import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import OpenAI, { APIError } from "openai";
import { InferRequestSchema, type InferResponse, InferResponseSchema, Operation } from "../gen/infermesh/v1/inference_pb.js";
import { expectedCompletionText } from "../services/sim/simulator.js";
import { startGateway } from "./support/gateway-fixture.js";
import { type Mesh, type MeshAgent, startMesh, startTap } from "./support/mesh-fixture.js";
import { MESH_TOKEN } from "./support/registry-fixture.js";
import { bearer, stockClient } from "./support/stock-grpc-client.js";
import { waitFor } from "./support/wait-for.js";

// The walking mesh end to end: the official openai SDK -> gateway -> agent -> llama-server simulator, and back.

const MESSAGES = [{ role: "user" as const, content: "Tell me about the mesh." }];

function sdk(mesh: Mesh, apiKey: string): OpenAI {
  return new OpenAI({ baseURL: `${mesh.gateway.baseUrl}/v1`, apiKey, maxRetries: 0 });
}

/** ssePayloads splits an SSE body into its events' data payloads, as a client reads them. */
function ssePayloads(body: string): string[] {
  return body
    .split("\n\n")
    .filter((event) => event.startsWith("data: "))
    .map((event) => event.slice("data: ".length));
}

describe("the walking mesh (openai SDK -> gateway -> agent -> simulator)", function () {
  this.timeout(30_000);
  let mesh: Mesh;
  let aliceKey: string;
  let bobKey: string;
  let alice: MeshAgent;
  let speech: MeshAgent;
  let client: OpenAI;

  before(async () => {
    mesh = await startMesh();
    aliceKey = await mesh.registry.keyFor("alice");
    bobKey = await mesh.registry.keyFor("bob");
    alice = await mesh.addAgent({ user: "alice", apiKey: aliceKey, sim: { models: [{ id: "sim-llama", contextLength: 4096 }] } });
    speech = await mesh.addAgent({ user: "alice", apiKey: aliceKey, type: "tts", sim: { models: [{ id: "sim-voice" }] } });
    client = sdk(mesh, aliceKey);
  });

  after(() => mesh.stop());

  it("lists the simulator's models with their capabilities", async () => {
    const models = await client.models.list();
    const byId = new Map(models.data.map((m) => [m.id, m as unknown as Record<string, unknown>]));
    expect([...byId.keys()].sort()).to.deep.equal(["sim-llama", "sim-voice"]);
    expect(byId.get("sim-llama")).to.deep.include({
      object: "model",
      service_type: "llm",
      input_modalities: ["text"],
      output_modalities: ["text"],
      context_length: 4096,
    });
    expect(byId.get("sim-voice")).to.deep.include({ service_type: "tts", input_modalities: ["text"], output_modalities: ["audio"] });
  });

  it("answers a chat and a completion with the simulator's exact text", async () => {
    const chat = await client.chat.completions.create({ model: "sim-llama", messages: MESSAGES, max_tokens: 7 });
    expect(chat.choices[0]?.message.content).to.equal(expectedCompletionText(MESSAGES, 7));
    expect(chat.usage?.completion_tokens).to.equal(7);
    const completion = await client.completions.create({ model: "sim-llama", prompt: "Once upon a time", max_tokens: 5 });
    expect(completion.choices[0]?.text).to.equal(expectedCompletionText("Once upon a time", 5));
  });

  it("streams a chat and a completion chunk by chunk with the simulator's exact text", async () => {
    const chunks: string[] = [];
    const stream = await client.chat.completions.create({ model: "sim-llama", messages: MESSAGES, max_tokens: 6, stream: true });
    for await (const chunk of stream) chunks.push(chunk.choices[0]?.delta.content ?? "");
    expect(chunks.join("")).to.equal(expectedCompletionText(MESSAGES, 6));
    expect(chunks.filter((c) => c !== "")).to.have.length(6);

    let text = "";
    const completions = await client.completions.create({ model: "sim-llama", prompt: "abc", max_tokens: 4, stream: true });
    for await (const chunk of completions) text += chunk.choices[0]?.text ?? "";
    expect(text).to.equal(expectedCompletionText("abc", 4));
  });

  it("yields the usage chunk with stream_options.include_usage, and n: 2 gives two choices", async () => {
    let usage: OpenAI.CompletionUsage | undefined | null;
    const stream = await client.chat.completions.create({
      model: "sim-llama",
      messages: MESSAGES,
      max_tokens: 3,
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
    expect(usage?.completion_tokens).to.equal(3);

    const two = await client.chat.completions.create({ model: "sim-llama", messages: MESSAGES, max_tokens: 4, n: 2 });
    expect(two.choices.map((c) => c.message.content)).to.deep.equal([
      expectedCompletionText(MESSAGES, 4, 0),
      expectedCompletionText(MESSAGES, 4, 1),
    ]);
  });

  it("delivers SSE data payloads byte-identical to those the model server emitted", async () => {
    const tap = await startTap(alice.simulator.url as string);
    const tapped = await mesh.addAgent({ user: "tapper", apiKey: await mesh.registry.keyFor("tapper"), upstreamUrl: tap.url });
    try {
      const key = await mesh.registry.keyFor("tapper");
      const body = JSON.stringify({
        model: "sim-llama",
        messages: MESSAGES,
        stream: true,
        max_tokens: 5,
        stream_options: { include_usage: true },
      });
      const response = await fetch(`${mesh.gateway.baseUrl}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body,
      });
      const received = await response.text();
      await waitFor("the tapped body", () => tap.bodies.some((b) => b.includes("[DONE]")));
      const emitted = tap.bodies.find((b) => b.includes("[DONE]"))?.toString("utf8") ?? "";
      expect(ssePayloads(received)).to.deep.equal(ssePayloads(emitted));
      expect(ssePayloads(received).length).to.be.at.least(8);
    } finally {
      await tapped.agent.close();
      await tap.close();
    }
  });

  it("answers 401 without a key and with a bad key, 404 no_provider, and 400 for invalid JSON", async () => {
    for (const apiKey of ["", "im_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]) {
      const error = await sdk(mesh, apiKey)
        .models.list()
        .catch((e: unknown) => e);
      expect(error).to.be.instanceOf(APIError);
      expect((error as APIError).status).to.equal(401);
      expect((error as APIError).code).to.equal("invalid_api_key");
    }
    const missing = await client.chat.completions.create({ model: "qwen3-8b", messages: MESSAGES }).catch((e: unknown) => e);
    expect((missing as APIError).status).to.equal(404);
    expect((missing as APIError).type).to.equal("no_provider");
    expect((missing as APIError).message).to.contain("No online provider serving model 'qwen3-8b' for this user.");
    const invalid = await fetch(`${mesh.gateway.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${aliceKey}`, "content-type": "application/json" },
      body: '{"model": "sim-llama", "messages": [',
    });
    expect(invalid.status).to.equal(400);
    expect(((await invalid.json()) as { error: { type: string } }).error.type).to.equal("invalid_request_error");
  });

  it("refuses a model that only exists as tts on chat with a 4xx, and never calls its agent", async () => {
    speech.simulator.reset();
    const error = await client.chat.completions.create({ model: "sim-voice", messages: MESSAGES }).catch((e: unknown) => e);
    expect((error as APIError).status).to.equal(400);
    expect((error as APIError).message).to.contain("'sim-voice'");
    expect(speech.simulator.requestCounts.get("/v1/chat/completions") ?? 0).to.equal(0);
  });

  it("keeps two users with the same model name on their own agents", async () => {
    const bob = await mesh.addAgent({ user: "bob", apiKey: bobKey });
    alice.simulator.reset();
    bob.simulator.reset();
    const bobClient = sdk(mesh, bobKey);
    for (let i = 0; i < 3; i++) {
      await client.chat.completions.create({ model: "sim-llama", messages: MESSAGES, max_tokens: 1 });
      await bobClient.chat.completions.create({ model: "sim-llama", messages: MESSAGES, max_tokens: 1 });
    }
    expect(alice.simulator.requestCounts.get("/v1/chat/completions")).to.equal(3);
    expect(bob.simulator.requestCounts.get("/v1/chat/completions")).to.equal(3);
    const bobModels = await bobClient.models.list();
    expect(bobModels.data.map((m) => m.id)).to.deep.equal(["sim-llama"]);
    await bob.agent.close();
    await waitFor("bob's agent gone from the table", () => mesh.gateway.gateway.table.provider(bob.providerId) === undefined);
    const orphan = await bobClient.chat.completions.create({ model: "sim-llama", messages: MESSAGES }).catch((e: unknown) => e);
    expect((orphan as APIError).status, "bob never falls back to alice's agent").to.equal(404);
  });

  it("aborts the model server's request within 1 s when the client aborts a stream", async () => {
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model: "sim-llama", messages: MESSAGES, max_tokens: 1000, stream: true, sim: { tokens_per_second: 20 } } as never,
      { signal: controller.signal },
    );
    const iterator = (stream as unknown as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    await iterator.next();
    const abortedAt = Date.now();
    controller.abort();
    await iterator.next().catch(() => undefined);
    const aborted = await alice.simulator.waitForAbort((a) => a.atMs >= abortedAt - 50, 1_000);
    expect(aborted.atMs - abortedAt).to.be.below(1_000);
  });

  it("streams a chat from InferenceService to a stock @grpc/grpc-js client with an API key", async () => {
    const grpcClient = stockClient("InferenceService", mesh.gateway.grpcAddress);
    const body = Buffer.from(JSON.stringify({ model: "sim-llama", messages: MESSAGES, max_tokens: 4, stream: true }));
    const call = (grpcClient.infer as (r: object, m: grpc.Metadata) => grpc.ClientReadableStream<{ part: Record<string, unknown> }>).call(
      grpcClient,
      { call: { operation: "OPERATION_CHAT_COMPLETION", model: "sim-llama", stream: true, body } },
      bearer(aliceKey),
    );
    const events: string[] = [];
    let trailer: Record<string, unknown> | undefined;
    await new Promise<void>((resolve, reject) => {
      call.on("data", ({ part }) => {
        if (part.event) events.push(Buffer.from((part.event as { data: Buffer }).data).toString());
        if (part.trailer) trailer = part.trailer as Record<string, unknown>;
      });
      call.on("end", resolve);
      call.on("error", reject);
    });
    grpcClient.close();
    const text = events
      .filter((e) => e !== "[DONE]")
      .map((e) => (JSON.parse(e) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? "")
      .join("");
    expect(text).to.equal(expectedCompletionText(MESSAGES, 4));
    expect(events.at(-1)).to.equal("[DONE]");
    expect(trailer).to.exist;
  });

  it("answers on a second gateway by forwarding to the gateway that holds the agent's link", async () => {
    const second = await startGateway(mesh.registry.address);
    try {
      await waitFor("alice's provider in the second gateway's table", () => second.gateway.table.provider(alice.providerId));
      const viaSecond = new OpenAI({ baseURL: `${second.baseUrl}/v1`, apiKey: aliceKey, maxRetries: 0 });
      const chatsBefore = alice.simulator.requestCounts.get("/v1/chat/completions") ?? 0;
      const completion = await viaSecond.chat.completions.create({ model: "sim-llama", messages: MESSAGES, max_tokens: 8 });
      expect(completion.choices[0]?.message.content).to.equal(expectedCompletionText(MESSAGES, 8));
      expect({
        held: [mesh.gateway.gateway.links.attached(alice.providerId), second.gateway.links.attached(alice.providerId)],
        forwardedTo: second.gateway.table.provider(alice.providerId)?.endpoint,
        served: (alice.simulator.requestCounts.get("/v1/chat/completions") ?? 0) - chatsBefore,
      }).to.deep.equal({ held: [true, false], forwardedTo: mesh.gateway.grpcAddress, served: 1 });
    } finally {
      await second.stop();
    }
  });

  // Agents open no port: the one AgentService in the mesh is the gateways' (on their internal gRPC port), which
  // forwards a call down the link of the provider it names. Only gateways, with the mesh token, may call it.
  it("refuses a forwarded Infer call to a gateway without the mesh credential, even with the owner's API key", async () => {
    const direct = new grpc.Client(mesh.gateway.grpcAddress, grpc.credentials.createInsecure());
    const request = create(InferRequestSchema, {
      providerId: alice.providerId,
      call: {
        operation: Operation.CHAT_COMPLETION,
        model: "sim-llama",
        requestId: "forwarded",
        body: Buffer.from(JSON.stringify({ model: "sim-llama", messages: MESSAGES, max_tokens: 4 })),
      },
    });
    const infer = async (token: string | undefined) => {
      const stream = direct.makeServerStreamRequest(
        "/infermesh.v1.AgentService/Infer",
        (r: typeof request) => Buffer.from(toBinary(InferRequestSchema, r)),
        (b: Buffer): InferResponse => fromBinary(InferResponseSchema, b),
        request,
        bearer(token),
      );
      const parts: string[] = [];
      const status = await new Promise<grpc.StatusObject>((resolve) => {
        stream.on("data", (response: InferResponse) => parts.push(String(response.part?.part.case)));
        stream.on("error", () => {});
        stream.on("status", resolve);
      });
      return { code: grpc.status[status.code], parts };
    };
    const chatsBefore = alice.simulator.requestCounts.get("/v1/chat/completions") ?? 0;
    for (const token of [undefined, aliceKey]) {
      expect(await infer(token), `token ${token === undefined ? "none" : "user key"}`).to.deep.equal({
        code: "UNAUTHENTICATED",
        parts: [],
      });
    }
    expect(alice.simulator.requestCounts.get("/v1/chat/completions") ?? 0, "no refused call reached the agent").to.equal(chatsBefore);

    // A peer gateway, with the mesh token, is served down the agent's link.
    const served = await infer(MESH_TOKEN);
    expect({ code: served.code, first: served.parts[0], last: served.parts.at(-1) }).to.deep.equal({
      code: "OK",
      first: "head",
      last: "trailer",
    });
    expect(alice.simulator.requestCounts.get("/v1/chat/completions")).to.equal(chatsBefore + 1);
    direct.close();
  });
});
