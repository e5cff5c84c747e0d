import type * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { providerIdFor } from "../services/shared/provider-id.js";
import { type Mesh, startMesh } from "./support/mesh-fixture.js";
import { MESH_TOKEN } from "./support/registry-fixture.js";
import { bearer, type StockClient, stockClient, unary } from "./support/stock-grpc-client.js";
import { waitFor } from "./support/wait-for.js";

// inference.club's HTTP agent heartbeat, for agents that cannot speak gRPC, lands in the same registry state as a
// gRPC heartbeat: ListProviders and WatchProviders show the provider the same way, under the same rules.

interface StockProvider {
  id: string;
  ownerUserName: string;
  name: string;
  endpoint: string;
  gatewayId: string;
  linkId: string;
  online: boolean;
  state: string;
  version: string;
  models: Record<string, unknown>[];
  load: Record<string, unknown>;
  sharing: Record<string, unknown>;
  lastHeartbeatTime: { seconds: string; nanos: number };
}

interface WatchEvent {
  snapshot?: { providers: StockProvider[] };
  change?: { provider: StockProvider; cause: string };
}

const MODEL_JSON = {
  id: "Qwen3-8B",
  type: "llm",
  input_modalities: ["text", "image"],
  output_modalities: ["text"],
  features: ["tools", "vision"],
  context_length: 32768,
  quantization: "Q4_K_M",
  engine: "llamacpp",
};

/** MODEL_PROTO is MODEL_JSON as a gRPC agent sends it. */
const MODEL_PROTO = {
  id: "Qwen3-8B",
  serviceType: "SERVICE_TYPE_LLM",
  inputModalities: ["MODALITY_TEXT", "MODALITY_IMAGE"],
  outputModalities: ["MODALITY_TEXT"],
  supportedFeatures: ["tools", "vision"],
  contextLength: 32768,
  quantization: "Q4_K_M",
  engine: "llamacpp",
};

describe("inference.club's HTTP agent heartbeat on the gateway", function () {
  this.timeout(30_000);
  let mesh: Mesh;
  let registry: StockClient;
  let aliceKey: string;
  let bobKey: string;
  const watches: grpc.ClientReadableStream<WatchEvent>[] = [];

  const post = (path: string, body: unknown, key: string | null = aliceKey) =>
    fetch(`${mesh.gateway.baseUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(key === null ? {} : { authorization: `Bearer ${key}` }) },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  const heartbeat = (body: unknown, key: string | null = aliceKey) => post("/api/inference/agent/heartbeat/", body, key);
  const listed = async (key: string, includeOffline = false) =>
    (await unary<{ providers: StockProvider[] }>(registry, "listProviders", { includeOffline }, bearer(key))).providers;
  const watch = (token: string) => {
    const events: WatchEvent[] = [];
    const call = (registry.watchProviders as (r: object, m: grpc.Metadata) => grpc.ClientReadableStream<WatchEvent>).call(
      registry,
      {},
      bearer(token),
    );
    call.on("data", (event: WatchEvent) => events.push(event));
    call.on("error", () => {});
    watches.push(call);
    return events;
  };

  beforeEach(async () => {
    mesh = await startMesh();
    aliceKey = await mesh.registry.keyFor("alice");
    bobKey = await mesh.registry.keyFor("bob");
    registry = stockClient("RegistryService", mesh.registry.address);
  });
  afterEach(async () => {
    for (const call of watches.splice(0)) call.cancel();
    registry.close();
    await mesh.stop();
  });

  it("registers a provider that ListProviders and WatchProviders show exactly as after a gRPC heartbeat", async () => {
    const aliceEvents = watch(aliceKey);
    const gatewayEvents = watch(MESH_TOKEN);
    await waitFor("the watch snapshots", () => aliceEvents.length > 0 && gatewayEvents.length > 0);

    const response = await heartbeat({ name: "http-box", version: "club-agent/1.2", models: [MODEL_JSON] });
    expect(response.status).to.equal(200);
    const providerId = providerIdFor((await mesh.registry.store.authenticate(aliceKey))?.userId as string, "http-box");
    expect(await response.json()).to.deep.equal({
      status: "ok",
      provider_id: providerId,
      name: "http-box",
      routable: false,
      heartbeat_interval_seconds: 10,
      ttl_seconds: 30,
    });

    // The same report over gRPC, for comparison: only what identifies the provider differs.
    await unary(
      registry,
      "heartbeat",
      { providerId: "grpc-box", name: "grpc-box", version: "club-agent/1.2", models: [MODEL_PROTO] },
      bearer(aliceKey),
    );
    const providers = await listed(aliceKey);
    const viaHttp = providers.find((p) => p.id === providerId);
    const viaGrpc = providers.find((p) => p.id === "grpc-box");
    const comparable = (p: StockProvider | undefined) => p && { ...p, id: "", name: "", lastHeartbeatTime: null };
    expect(comparable(viaHttp)).to.deep.equal(comparable(viaGrpc));
    // Neither is attached to a gateway: both are listed, and neither is routed to.
    expect([viaHttp?.ownerUserName, viaHttp?.name, viaHttp?.endpoint, viaHttp?.gatewayId, viaHttp?.online, viaHttp?.state]).to.deep.equal([
      "alice",
      "http-box",
      "",
      "",
      true,
      "PROVIDER_STATE_ACCEPTING",
    ]);
    expect(viaHttp?.models).to.deep.equal(viaGrpc?.models);

    for (const events of [aliceEvents, gatewayEvents]) {
      const change = await waitFor(
        "the HTTP provider's change event",
        () => events.find((e) => e.change?.provider.id === providerId)?.change,
      );
      expect([change.cause, change.provider.online, change.provider.models.map((m) => m.id)]).to.deep.equal([
        "CHANGE_CAUSE_HEARTBEAT",
        true,
        ["Qwen3-8B"],
      ]);
    }
  });

  it("refreshes a registered provider with inference.club's bare {name} heartbeat, keeping its models", async () => {
    expect((await post("/api/inference/agent/register/", { name: "club-host", models: [MODEL_JSON] })).status).to.equal(200);
    const before = (await listed(aliceKey))[0] as StockProvider;
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const response = await heartbeat({ name: "club-host", load: { in_flight: 1, max_concurrency: 2, queued: 0 } });
    expect(response.status).to.equal(200);
    const after = (await listed(aliceKey))[0] as StockProvider;
    expect(after.models).to.deep.equal(before.models);
    expect(after.load).to.deep.include({ inFlight: 1, maxConcurrency: 2 });
    expect(Number(after.lastHeartbeatTime.seconds)).to.be.above(Number(before.lastHeartbeatTime.seconds));

    // No name at all is inference.club's default name.
    expect((await heartbeat({})).status).to.equal(200);
    expect((await heartbeat({ accepting_requests: false })).status).to.equal(200);
    expect(((await listed(aliceKey))[0] as StockProvider).state).to.equal("PROVIDER_STATE_DRAINING");
  });

  it("answers a bare heartbeat for a name never registered with inference.club's 404", async () => {
    const response = await heartbeat({ name: "ghost" });
    expect(response.status).to.equal(404);
    expect(await response.json()).to.deep.equal({
      error: {
        message: "no provider named 'ghost' for this user — the agent must register before sending heartbeats",
        type: "invalid_request_error",
        param: "name",
        code: "provider_not_found",
      },
    });
    expect(await listed(aliceKey, true)).to.deep.equal([]);
  });

  it("answers a missing or bad API key with OpenAI's 401 envelope, and registers nothing", async () => {
    for (const [key, message] of [
      [null, "You didn't provide an API key. Provide it as 'Authorization: Bearer YOUR_KEY'."],
      ["im_0000000000000000_not-a-key", "Incorrect API key provided."],
    ] as const) {
      const response = await heartbeat({ name: "box", models: [MODEL_JSON] }, key);
      expect(response.status).to.equal(401);
      expect(await response.json()).to.deep.equal({
        error: { message, type: "authentication_error", param: null, code: "invalid_api_key" },
      });
    }
    expect(await listed(MESH_TOKEN, true)).to.deep.equal([]);
  });

  it("refuses another user's provider, leaving it as it was; the same name is another provider per user", async () => {
    await heartbeat({ name: "club-host", models: [MODEL_JSON] });
    const [alices] = await listed(aliceKey);
    const taken = await heartbeat({ id: alices?.id, name: "club-host", models: [] }, bobKey);
    expect(taken.status).to.equal(403);
    expect(await taken.json()).to.deep.equal({
      error: {
        message: `provider '${alices?.id}' belongs to another user`,
        type: "permission_error",
        param: null,
        code: "provider_owned_by_another_user",
      },
    });
    expect((await listed(aliceKey))[0]?.models.map((m) => m.id)).to.deep.equal(["Qwen3-8B"]);

    // Bob's bare heartbeat under Alice's name finds no provider of his; his own "club-host" is a provider apart.
    expect((await heartbeat({ name: "club-host" }, bobKey)).status).to.equal(404);
    expect((await heartbeat({ name: "club-host", models: [] }, bobKey)).status).to.equal(200);
    const all = await listed(MESH_TOKEN);
    expect(all.map((p) => [p.name, p.ownerUserName, p.models.length]).sort()).to.deep.equal([
      ["club-host", "alice", 1],
      ["club-host", "bob", 0],
    ]);
    expect(new Set(all.map((p) => p.id)).size).to.equal(2);
  });

  it("answers malformed reports with 400 envelopes that name the field", async () => {
    const cases: [unknown, number, string | null, RegExp][] = [
      ["{not json", 400, null, /not valid JSON/],
      [[1, 2], 400, "body", /JSON object/],
      [{ name: 7 }, 400, "name", /'name' must be a string/],
      [{ models: [{ id: "m", type: "chat" }] }, 400, "models[0].type", /llm, stt, image, tts/],
      [{ models: [{ type: "llm" }] }, 400, "models[0].id", /required/],
      [{ models: [{ id: "m", type: "llm", input_modalities: ["smell"] }] }, 400, "models[0].input_modalities", /text, image, audio, video/],
      [{ models: [{ id: "m", type: "llm", context_length: -1 }] }, 400, "models[0].context_length", /whole number/],
      // The mesh dials no address a user names, whatever credential comes with it.
      [{ endpoint: "127.0.0.1:9000", models: [] }, 400, "endpoint", /^'endpoint' is not accepted: the mesh dials no agent/],
      [{ endpoint: "gateway.internal:7100", agent_token: "t", models: [] }, 400, "endpoint", /infermesh agent --mesh URL/],
      [{ endpoint: "", models: [] }, 400, "endpoint", /'endpoint' is not accepted/],
      [{ id: "bad id!", models: [] }, 400, null, /invalid provider_id/],
      [
        {
          models: [
            { id: "m", type: "llm" },
            { id: "M", type: "llm" },
          ],
        },
        400,
        null,
        /listed twice/,
      ],
    ];
    for (const [body, status, param, message] of cases) {
      const response = await heartbeat(body);
      const answer = (await response.json()) as { error: { message: string; type: string; param: string | null } };
      expect([response.status, answer.error.type, answer.error.param], JSON.stringify(body)).to.deep.equal([
        status,
        "invalid_request_error",
        param,
      ]);
      expect(answer.error.message, JSON.stringify(body)).to.match(message);
    }
    expect(await listed(aliceKey, true)).to.deep.equal([]);
  });

  it("reads inference.club's agent manifest services[] and accepts the paths without their trailing slash", async () => {
    const response = await post("/api/inference/agent/register", {
      name: "studio",
      services: [
        { type: "stt", engine: "whispercpp", features: ["timestamps"], models: [{ id: "whisper-large-v3", input_modalities: ["audio"] }] },
        { type: "tts", engine: "other", models: [{ id: "kokoro", features: ["voice-cloning"] }] },
      ],
    });
    expect(response.status).to.equal(200);
    const [provider] = await listed(aliceKey);
    expect(provider?.models.map((m) => [m.id, m.serviceType, m.engine, m.supportedFeatures])).to.deep.equal([
      ["whisper-large-v3", "SERVICE_TYPE_STT", "whispercpp", ["timestamps"]],
      ["kokoro", "SERVICE_TYPE_TTS", "other", ["voice-cloning"]],
    ]);
    expect((await heartbeat({ name: "studio" })).status).to.equal(200);
    expect((await post("/api/inference/agent/heartbeat", { name: "studio" })).status).to.equal(200);
    const metrics = await (await fetch(`${mesh.gateway.baseUrl}/metrics`)).text();
    expect(metrics).to.contain('infermesh_gateway_agent_heartbeats_total{outcome="accepted"} 3');
  });

  // A provider that registered over HTTP holds no link to any gateway (no gateway_id): the registry lists it, the
  // gateway's table holds it, and the routing table leaves it out of its index.
  it("never routes to a provider that reports over HTTP: its model is not listed and answers 404", async () => {
    await heartbeat({ name: "http-only", models: [MODEL_JSON] });
    await waitFor("the provider in the gateway's table", () => [...mesh.gateway.gateway.table.providers()].length === 1);
    const headers = { authorization: `Bearer ${aliceKey}`, "content-type": "application/json" };
    const models = (await (await fetch(`${mesh.gateway.baseUrl}/v1/models`, { headers })).json()) as { data: unknown[] };
    expect(models.data).to.deep.equal([]);
    const chat = await fetch(`${mesh.gateway.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers,
      body: JSON.stringify({ model: "Qwen3-8B", messages: [{ role: "user", content: "hi" }] }),
    });
    expect(chat.status).to.equal(404);
  });
});
