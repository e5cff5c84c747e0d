import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { expect } from "chai";
import { protoPath as healthProtoPath } from "grpc-health-check";
import { AGENT_KEY_METADATA } from "../services/shared/heartbeat-relay.js";
import { createMetricsServer } from "../services/shared/metrics-server.js";
import { MESH_TOKEN, type RegistryFixture, startRegistry } from "./support/registry-fixture.js";
import { bearer, type StockClient, stockClient, unary } from "./support/stock-grpc-client.js";
import { waitFor } from "./support/wait-for.js";

// A stock @grpc/grpc-js client with @grpc/proto-loader reading proto/: what a user outside this codebase has.

interface StockProvider {
  id: string;
  ownerUserName: string;
  online: boolean;
  endpoint: string;
  gatewayId: string;
  linkId: string;
  load: { inFlight: number };
  models: { id: string; serviceType: string }[];
}

interface WatchEvent {
  event: "snapshot" | "change";
  snapshot?: { providers: StockProvider[] };
  change?: { provider: StockProvider; cause: string };
}

/** Watch is a WatchProviders stream folded into the state a gateway would keep: online providers by id. */
class Watch {
  readonly events: WatchEvent[] = [];
  readonly online = new Map<string, StockProvider>();
  status: grpc.StatusObject | undefined;
  readonly call: grpc.ClientReadableStream<WatchEvent>;

  constructor(client: StockClient, token: string) {
    this.call = (client.watchProviders as (r: object, m: grpc.Metadata) => grpc.ClientReadableStream<WatchEvent>).call(
      client,
      {},
      bearer(token),
    );
    this.call.on("data", (event: WatchEvent) => {
      this.events.push(event);
      if (event.snapshot) {
        this.online.clear();
        for (const p of event.snapshot.providers) this.online.set(p.id, p);
      } else if (event.change) {
        const p = event.change.provider;
        if (p.online) this.online.set(p.id, p);
        else this.online.delete(p.id);
      }
    });
    this.call.on("error", () => {});
    this.call.on("status", (status) => (this.status = status));
  }

  ids(): string[] {
    return [...this.online.keys()].sort();
  }

  cancel(): void {
    this.call.cancel();
  }
}

function heartbeatFor(providerId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    providerId,
    models: [{ id: "llama-3", serviceType: "SERVICE_TYPE_LLM", supportedFeatures: ["tools"], contextLength: 8192 }],
    load: { inFlight: 0, maxConcurrency: 4 },
    ...extra,
  };
}

/** ATTACHED is where a relayed heartbeat says its agent is attached: a gateway's internal address, its id, the link. */
const ATTACHED = { endpoint: "10.0.0.5:7100", gatewayId: "gateway-1", linkId: "link-1" };

/** relayMetadata is what a gateway relaying an attached agent's heartbeat sends: the mesh token and the agent's key. */
function relayMetadata(agentKey: string | undefined, token = MESH_TOKEN): grpc.Metadata {
  const metadata = bearer(token);
  if (agentKey !== undefined) metadata.set(AGENT_KEY_METADATA, agentKey);
  return metadata;
}

async function expectCode(promise: Promise<unknown>, code: grpc.status): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (error) {
    expect((error as grpc.ServiceError).code, (error as Error).message).to.equal(code);
    return error as grpc.ServiceError;
  }
  throw new Error(`expected gRPC status ${grpc.status[code]}, got success`);
}

describe("registry over gRPC (stock @grpc/grpc-js client)", () => {
  let registry: RegistryFixture;
  let client: StockClient;
  let aliceKey: string;
  let bobKey: string;
  const watches: Watch[] = [];

  function watch(token: string): Watch {
    const w = new Watch(client, token);
    watches.push(w);
    return w;
  }

  beforeEach(async () => {
    registry = await startRegistry();
    client = stockClient("RegistryService", registry.address);
    aliceKey = await registry.keyFor("alice");
    bobKey = await registry.keyFor("bob");
  });

  afterEach(async () => {
    for (const w of watches.splice(0)) w.cancel();
    client.close();
    await registry.stop();
  });

  it("registers on heartbeat, tells the agent its interval and TTL, and lists the provider to its owner", async () => {
    const response = await unary<{ heartbeatInterval: { seconds: string }; ttl: { seconds: string }; provider: StockProvider }>(
      client,
      "heartbeat",
      heartbeatFor("alice-box"),
      bearer(aliceKey),
    );
    expect(response.heartbeatInterval.seconds).to.equal("10");
    expect(response.ttl.seconds).to.equal("30");
    expect(response.provider).to.include({ id: "alice-box", ownerUserName: "alice", online: true });
    const { providers } = await unary<{ providers: StockProvider[] }>(client, "listProviders", {}, bearer(aliceKey));
    expect(providers.map((p) => p.id)).to.deep.equal(["alice-box"]);
    expect(providers[0]?.models).to.have.length(1);
    expect(providers[0]?.models[0]).to.include({ id: "llama-3", serviceType: "SERVICE_TYPE_LLM" });
  });

  it("records where a relayed agent is attached for gateways, and hides the gateway's address and link from users", async () => {
    const response = await unary<{ provider: StockProvider }>(
      client,
      "heartbeat",
      heartbeatFor("alice-box", ATTACHED),
      relayMetadata(aliceKey),
    );
    expect(response.provider).to.include({ id: "alice-box", ownerUserName: "alice", ...ATTACHED });
    const attachment = (p: StockProvider | undefined) => p && [p.id, p.endpoint, p.gatewayId, p.linkId];
    const listedTo = async (token: string) =>
      (await unary<{ providers: StockProvider[] }>(client, "listProviders", {}, bearer(token))).providers.map(attachment);
    expect(await listedTo(MESH_TOKEN)).to.deep.equal([["alice-box", "10.0.0.5:7100", "gateway-1", "link-1"]]);
    expect(await listedTo(aliceKey), "users never see where gateways are").to.deep.equal([["alice-box", "", "gateway-1", ""]]);
    const [asMesh, asAlice] = [watch(MESH_TOKEN), watch(aliceKey)];
    await waitFor("both snapshots", () => asMesh.online.has("alice-box") && asAlice.online.has("alice-box"));
    expect([asMesh, asAlice].map((w) => attachment(w.online.get("alice-box")))).to.deep.equal([
      ["alice-box", "10.0.0.5:7100", "gateway-1", "link-1"],
      ["alice-box", "", "gateway-1", ""],
    ]);
  });

  it("refuses a user's heartbeat that says where an agent is attached: only a relaying gateway may", async () => {
    for (const [field, value] of Object.entries(ATTACHED)) {
      const error = await expectCode(
        unary(client, "heartbeat", heartbeatFor("alice-box", { [field]: value }), bearer(aliceKey)),
        grpc.status.INVALID_ARGUMENT,
      );
      expect(error.details, field).to.equal(
        "endpoint, gateway_id and link_id are set by the gateway an agent attaches to, never by the agent (run `infermesh agent --mesh URL`)",
      );
    }
    const { providers } = await unary<{ providers: StockProvider[] }>(
      client,
      "listProviders",
      { includeOffline: true },
      bearer(MESH_TOKEN),
    );
    expect(providers).to.deep.equal([]);
  });

  it("takes a relayed heartbeat only with the mesh token and a valid key of the provider's owner", async () => {
    const relay = (metadata: grpc.Metadata, providerId = "alice-box") =>
      unary(client, "heartbeat", heartbeatFor(providerId, ATTACHED), metadata);
    const refusals = [
      await expectCode(relay(relayMetadata(undefined)), grpc.status.UNAUTHENTICATED),
      await expectCode(relay(relayMetadata(`${aliceKey.slice(0, -4)}AAAA`)), grpc.status.UNAUTHENTICATED),
      await expectCode(relay(relayMetadata(aliceKey, bobKey)), grpc.status.INVALID_ARGUMENT),
    ].map((error) => error.details);
    expect(refusals).to.deep.equal([
      "Heartbeat takes the provider owner's API key",
      "invalid or revoked API key",
      "endpoint, gateway_id and link_id are set by the gateway an agent attaches to, never by the agent (run `infermesh agent --mesh URL`)",
    ]);
    await relay(relayMetadata(aliceKey));
    const stolen = await expectCode(relay(relayMetadata(bobKey)), grpc.status.UNAUTHENTICATED);
    expect(stolen.details).to.match(/belongs to another user/);
    const { providers } = await unary<{ providers: StockProvider[] }>(client, "listProviders", {}, bearer(MESH_TOKEN));
    expect(providers.map((p) => [p.id, p.ownerUserName])).to.deep.equal([["alice-box", "alice"]]);
  });

  it("deregisters for a closed link only while the provider is still attached on that link", async () => {
    const w = watch(MESH_TOKEN);
    await unary(client, "heartbeat", heartbeatFor("alice-box", ATTACHED), relayMetadata(aliceKey));
    // The agent attaches again through another gateway before the first one notices its old link closed.
    await unary(
      client,
      "heartbeat",
      heartbeatFor("alice-box", { ...ATTACHED, gatewayId: "gateway-2", linkId: "link-2" }),
      relayMetadata(aliceKey),
    );
    const deregister = (linkId: string) =>
      unary<{ wasOnline: boolean }>(client, "deregister", { providerId: "alice-box", linkId }, bearer(MESH_TOKEN));
    expect(await deregister("link-1"), "the old link's gateway").to.deep.equal({ wasOnline: false });
    await waitFor("the newer link on the watch", () => w.online.get("alice-box")?.linkId === "link-2");
    expect(w.online.get("alice-box")).to.include({ online: true, gatewayId: "gateway-2" });
    expect(await deregister("link-2"), "the current link's gateway").to.deep.equal({ wasOnline: true });
    await waitFor("offline change", () => !w.online.has("alice-box"));
    expect(w.events.at(-1)?.change?.cause).to.equal("CHANGE_CAUSE_DEREGISTERED");
  });

  it("streams a snapshot, then every change, to a watcher with the mesh token", async () => {
    await unary(client, "heartbeat", heartbeatFor("alice-box"), bearer(aliceKey));
    const w = watch(MESH_TOKEN);
    await waitFor("snapshot", () => w.events.length >= 1);
    expect(w.events[0]?.snapshot?.providers.map((p) => p.id)).to.deep.equal(["alice-box"]);

    await unary(client, "heartbeat", heartbeatFor("alice-box", { load: { inFlight: 3, maxConcurrency: 4 } }), bearer(aliceKey));
    await unary(client, "heartbeat", heartbeatFor("bob-box"), bearer(bobKey));
    await waitFor("two changes", () => w.events.length >= 3);
    expect(w.events[1]?.change?.provider).to.deep.include({ id: "alice-box", online: true });
    expect(w.events[1]?.change?.provider.load.inFlight).to.equal(3);
    expect(w.events[1]?.change?.cause).to.equal("CHANGE_CAUSE_HEARTBEAT");
    expect(w.events[2]?.change?.provider.id).to.equal("bob-box");
  });

  it("answers UNAUTHENTICATED without a key, with a wrong key and with a revoked key", async () => {
    await expectCode(unary(client, "heartbeat", heartbeatFor("x"), bearer(undefined)), grpc.status.UNAUTHENTICATED);
    await expectCode(unary(client, "listProviders", {}, bearer(undefined)), grpc.status.UNAUTHENTICATED);
    const forged = `${aliceKey.slice(0, -4)}AAAA`;
    await expectCode(unary(client, "heartbeat", heartbeatFor("x"), bearer(forged)), grpc.status.UNAUTHENTICATED);
    await expectCode(unary(client, "listProviders", {}, bearer("not-a-key")), grpc.status.UNAUTHENTICATED);

    const { keys } = await unary<{ keys: { id: string }[] }>(client, "listApiKeys", {}, bearer(aliceKey));
    expect(keys).to.have.length(1);
    await unary(client, "revokeApiKey", { keyId: keys[0]?.id }, bearer(MESH_TOKEN));
    await expectCode(unary(client, "heartbeat", heartbeatFor("x"), bearer(aliceKey)), grpc.status.UNAUTHENTICATED);
    await expectCode(unary(client, "authenticate", { apiKey: aliceKey }, bearer(MESH_TOKEN)), grpc.status.UNAUTHENTICATED);
    const watcher = watch(aliceKey);
    await waitFor("the revoked watcher's status", () => watcher.status);
    expect(watcher.status?.code).to.equal(grpc.status.UNAUTHENTICATED);
  });

  it("refuses a heartbeat for a provider id that another user owns, and keeps the owner's provider", async () => {
    await unary(client, "heartbeat", heartbeatFor("shared-name", ATTACHED), relayMetadata(aliceKey));
    const error = await expectCode(unary(client, "heartbeat", heartbeatFor("shared-name"), bearer(bobKey)), grpc.status.UNAUTHENTICATED);
    expect(error.details).to.match(/belongs to another user/);
    // Nor may bob's agent take it over by attaching to a gateway under that id.
    const relayed = await expectCode(
      unary(
        client,
        "heartbeat",
        heartbeatFor("shared-name", { ...ATTACHED, endpoint: "10.0.0.6:7100", linkId: "link-bob" }),
        relayMetadata(bobKey),
      ),
      grpc.status.UNAUTHENTICATED,
    );
    expect(relayed.details).to.match(/belongs to another user/);
    await expectCode(unary(client, "deregister", { providerId: "shared-name" }, bearer(bobKey)), grpc.status.UNAUTHENTICATED);
    const { providers } = await unary<{ providers: (StockProvider & { endpoint: string })[] }>(
      client,
      "listProviders",
      {},
      bearer(MESH_TOKEN),
    );
    expect(providers.map((p) => [p.id, p.ownerUserName, p.endpoint, p.linkId, p.online])).to.deep.equal([
      ["shared-name", "alice", "10.0.0.5:7100", "link-1", true],
    ]);
  });

  it("never shows one user's providers in another's ListProviders or watch", async () => {
    await unary(client, "heartbeat", heartbeatFor("alice-1"), bearer(aliceKey));
    await unary(client, "heartbeat", heartbeatFor("alice-2"), bearer(aliceKey));
    await unary(client, "heartbeat", heartbeatFor("bob-1"), bearer(bobKey));
    const list = async (key: string) =>
      (await unary<{ providers: StockProvider[] }>(client, "listProviders", {}, bearer(key))).providers.map((p) => p.id);
    expect(await list(aliceKey)).to.deep.equal(["alice-1", "alice-2"]);
    expect(await list(bobKey)).to.deep.equal(["bob-1"]);
    expect(await list(MESH_TOKEN)).to.deep.equal(["alice-1", "alice-2", "bob-1"]);
    const forBob = await unary<{ providers: StockProvider[] }>(client, "listProviders", { visibleToUserName: "bob" }, bearer(MESH_TOKEN));
    expect(forBob.providers.map((p) => p.id)).to.deep.equal(["bob-1"]);

    const bobWatch = watch(bobKey);
    await waitFor("bob's snapshot", () => bobWatch.events.length >= 1);
    await unary(client, "heartbeat", heartbeatFor("alice-3"), bearer(aliceKey));
    await unary(client, "heartbeat", heartbeatFor("bob-2"), bearer(bobKey));
    await waitFor("bob-2 on bob's watch", () => bobWatch.online.has("bob-2"));
    expect(bobWatch.ids()).to.deep.equal(["bob-1", "bob-2"]);
    expect(JSON.stringify(bobWatch.events)).not.to.contain("alice");
  });

  it("shares a provider with the users it names, and only them", async () => {
    await registry.keyFor("carol");
    const carolKey = await registry.keyFor("carol");
    await unary(
      client,
      "heartbeat",
      heartbeatFor("alice-shared", { sharing: { visibility: "VISIBILITY_USERS", allowedUsers: ["bob"] } }),
      bearer(aliceKey),
    );
    const ids = async (key: string) =>
      (await unary<{ providers: StockProvider[] }>(client, "listProviders", {}, bearer(key))).providers.map((p) => p.id);
    expect(await ids(bobKey)).to.deep.equal(["alice-shared"]);
    expect(await ids(carolKey)).to.deep.equal([]);
  });

  it("brings watchers that connected before and after a change to the same state", async () => {
    await unary(client, "heartbeat", heartbeatFor("a"), bearer(aliceKey));
    await unary(client, "heartbeat", heartbeatFor("b"), bearer(bobKey));
    const early = watch(MESH_TOKEN);
    await waitFor("early snapshot", () => early.events.length >= 1);
    await unary(client, "heartbeat", heartbeatFor("c", { load: { inFlight: 2 } }), bearer(aliceKey));
    await unary(client, "deregister", { providerId: "a" }, bearer(aliceKey));
    await unary(client, "heartbeat", heartbeatFor("b", { load: { inFlight: 1 } }), bearer(bobKey));
    const late = watch(MESH_TOKEN);
    await waitFor("late snapshot", () => late.events.length >= 1);
    await waitFor("early watcher caught up", () => early.events.length >= 4);
    expect(early.ids()).to.deep.equal(["b", "c"]);
    expect(late.ids()).to.deep.equal(early.ids());
    for (const id of early.ids()) expect(late.online.get(id)).to.deep.equal(early.online.get(id));
  });

  it("takes a deregistered provider offline at once and tells watchers why", async () => {
    await unary(client, "heartbeat", heartbeatFor("alice-box"), bearer(aliceKey));
    const w = watch(MESH_TOKEN);
    await waitFor("snapshot", () => w.online.has("alice-box"));
    const { wasOnline } = await unary<{ wasOnline: boolean }>(client, "deregister", { providerId: "alice-box" }, bearer(aliceKey));
    expect(wasOnline).to.equal(true);
    await waitFor("offline change", () => !w.online.has("alice-box"));
    expect(w.events.at(-1)?.change?.cause).to.equal("CHANGE_CAUSE_DEREGISTERED");
    const { providers } = await unary<{ providers: StockProvider[] }>(client, "listProviders", {}, bearer(aliceKey));
    expect(providers).to.deep.equal([]);
  });

  it("rejects bad heartbeats with INVALID_ARGUMENT or RESOURCE_EXHAUSTED and keeps serving others", async () => {
    const bad: [string, Record<string, unknown>, RegExp][] = [
      ["empty model id", { models: [{ id: "", serviceType: "SERVICE_TYPE_LLM" }] }, /models\[0\]\.id/],
      ["unknown service type", { models: [{ id: "m", serviceType: 99 }] }, /service_type/],
      ["unspecified service type", { models: [{ id: "m" }] }, /service_type/],
      ["empty provider id", { providerId: "" }, /provider_id/],
      // A relaying gateway's report of where the agent is attached is checked too.
      ["malformed endpoint", { ...ATTACHED, endpoint: "not an endpoint" }, /invalid endpoint/],
      ["endpoint without port", { ...ATTACHED, endpoint: "127.0.0.1" }, /invalid endpoint/],
      ["port out of range", { ...ATTACHED, endpoint: "127.0.0.1:70000" }, /invalid endpoint/],
      ["overlong link id", { ...ATTACHED, linkId: "l".repeat(257) }, /invalid link_id/],
    ];
    for (const [what, fields, message] of bad) {
      const metadata = "gatewayId" in fields ? relayMetadata(aliceKey) : bearer(aliceKey);
      const error = await expectCode(
        unary(client, "heartbeat", heartbeatFor("alice-box", fields), metadata),
        grpc.status.INVALID_ARGUMENT,
      ).catch((e: Error) => {
        throw new Error(`${what}: ${e.message}`);
      });
      expect(error.details, what).to.match(message);
    }
    const huge = heartbeatFor("alice-box", { name: "x".repeat(10 * 1024 * 1024) });
    await expectCode(unary(client, "heartbeat", huge, bearer(aliceKey)), grpc.status.RESOURCE_EXHAUSTED);

    await unary(client, "heartbeat", heartbeatFor("bob-box"), bearer(bobKey));
    const { providers } = await unary<{ providers: StockProvider[] }>(client, "listProviders", {}, bearer(MESH_TOKEN));
    expect(providers.map((p) => p.id)).to.deep.equal(["bob-box"]);
  });

  it("authenticates API keys for gateways holding the mesh token, and only for them", async () => {
    const { principal } = await unary<{ principal: { userName: string; keyId: string } }>(
      client,
      "authenticate",
      { apiKey: bobKey },
      bearer(MESH_TOKEN),
    );
    expect(principal.userName).to.equal("bob");
    expect(bobKey).to.contain(principal.keyId);
    await expectCode(unary(client, "authenticate", { apiKey: bobKey }, bearer(aliceKey)), grpc.status.UNAUTHENTICATED);
  });

  it("manages keys over gRPC: created once, listed without the secret, a user limited to their own", async () => {
    const created = await unary<{ apiKey: string; key: { id: string; userName: string } }>(
      client,
      "createApiKey",
      { userName: "dave", label: "laptop" },
      bearer(MESH_TOKEN),
    );
    expect(created.key.userName).to.equal("dave");
    const listed = await unary<{ keys: Record<string, unknown>[] }>(client, "listApiKeys", { userName: "dave" }, bearer(MESH_TOKEN));
    expect(listed.keys.map((k) => k.id)).to.deep.equal([created.key.id]);
    expect(JSON.stringify(listed)).not.to.contain(created.apiKey.slice("im_".length + 16 + 1));
    await expectCode(unary(client, "createApiKey", { userName: "alice" }, bearer(created.apiKey)), grpc.status.PERMISSION_DENIED);
    await expectCode(unary(client, "revokeApiKey", { keyId: created.key.id }, bearer(aliceKey)), grpc.status.NOT_FOUND);
    await expectCode(unary(client, "createApiKey", { userName: "no spaces" }, bearer(MESH_TOKEN)), grpc.status.INVALID_ARGUMENT);
  });

  it("serves grpc.health.v1 to a stock client without credentials", async () => {
    const health = grpc.loadPackageDefinition(protoLoader.loadSync(healthProtoPath, { enums: String })) as unknown as {
      grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
    };
    const healthClient = new health.grpc.health.v1.Health(registry.address, grpc.credentials.createInsecure());
    const check = (service: string) =>
      unary<{ status: string }>(healthClient as unknown as StockClient, "check", { service }, new grpc.Metadata());
    expect((await check("")).status).to.equal("SERVING");
    expect((await check("infermesh.v1.RegistryService")).status).to.equal("SERVING");
    healthClient.close();
  });

  it("exposes its metrics: heartbeats, providers online by type, watchers, RPC latency", async () => {
    await unary(client, "heartbeat", heartbeatFor("alice-box"), bearer(aliceKey));
    await expectCode(unary(client, "heartbeat", heartbeatFor("alice-box"), bearer("wrong")), grpc.status.UNAUTHENTICATED);
    const w = watch(MESH_TOKEN);
    await waitFor("snapshot", () => w.events.length >= 1);
    const metrics = createMetricsServer(registry.server.metrics.registry);
    const port = await metrics.listen("127.0.0.1", 0);
    try {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(text).to.contain('infermesh_registry_heartbeats_total{outcome="accepted"} 1');
      expect(text).to.contain('infermesh_registry_heartbeats_total{outcome="rejected"} 1');
      expect(text).to.contain('infermesh_registry_providers_online{service_type="llm"} 1');
      expect(text).to.contain('infermesh_registry_providers_online{service_type="tts"} 0');
      expect(text).to.contain("infermesh_registry_watch_subscribers 1");
      expect(text).to.match(/infermesh_registry_rpc_duration_seconds_count\{method="Heartbeat",code="OK"\} 1/);
    } finally {
      await metrics.close();
    }
  });
});

describe("registry TTL with a real clock", () => {
  it("takes a silent provider offline after its TTL and a watcher sees it go", async () => {
    const registry = await startRegistry({ heartbeatIntervalMs: 100, ttlMs: 300 });
    const client = stockClient("RegistryService", registry.address);
    const key = await registry.keyFor("alice");
    const w = new Watch(client, MESH_TOKEN);
    try {
      const sentAt = Date.now();
      const response = await unary<{ ttl: { nanos: number } }>(client, "heartbeat", heartbeatFor("silent"), bearer(key));
      expect(response.ttl.nanos).to.equal(300_000_000);
      await waitFor("provider online on the watch", () => w.online.has("silent"));
      await waitFor("provider offline on the watch", () => !w.online.has("silent"), 5_000);
      expect(Date.now() - sentAt).to.be.at.least(300);
      expect(w.events.at(-1)?.change?.cause).to.equal("CHANGE_CAUSE_EXPIRED");
      const text = await registry.server.metrics.registry.getSingleMetricAsString("infermesh_registry_provider_expiries_total");
      expect(text).to.match(/infermesh_registry_provider_expiries_total 1$/m);
    } finally {
      w.cancel();
      client.close();
      await registry.stop();
    }
  });
});
