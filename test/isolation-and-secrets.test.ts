import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import OpenAI, { type APIError, toFile } from "openai";
import { testWav } from "../services/sim/simulator.js";
import { type CliProcess, START_DEADLINE_MS, spawnCli } from "./support/cli-process.js";
import { type Mesh, type MeshAgent, startMesh } from "./support/mesh-fixture.js";
import { openRawLink } from "./support/raw-link.js";
import { bearer, stockClient, unary } from "./support/stock-grpc-client.js";
import { waitFor } from "./support/wait-for.js";

// Tenants never reach each other's machines, on any endpoint; and no secret ever reaches a log.

describe("tenant isolation on every endpoint", function () {
  this.timeout(60_000);
  let mesh: Mesh;
  let alice: MeshAgent;
  let bob: OpenAI;
  let bobKey: string;

  before(async () => {
    mesh = await startMesh();
    const aliceKey = await mesh.registry.keyFor("alice");
    bobKey = await mesh.registry.keyFor("bob");
    alice = await mesh.addAgent({
      user: "alice",
      apiKey: aliceKey,
      sim: {
        models: [
          { id: "a-llm", kind: "llm" },
          { id: "a-stt", kind: "stt" },
          { id: "a-image", kind: "image" },
          { id: "a-tts", kind: "tts" },
          { id: "a-embed", kind: "embedding" },
        ],
      },
    });
    bob = new OpenAI({ baseURL: `${mesh.gateway.baseUrl}/v1`, apiKey: bobKey, maxRetries: 0 });
  });

  after(() => mesh.stop());

  it("shows another user's models to nobody and answers 404 no_provider on every endpoint, never calling them", async () => {
    expect((await bob.models.list()).data).to.deep.equal([]);
    // The agent's own discovery of its server (lists, probes) happened before; from here on nothing may reach it.
    const before = new Map(alice.simulator.requestCounts);
    const attempts: [string, () => Promise<unknown>][] = [
      ["chat", () => bob.chat.completions.create({ model: "a-llm", messages: [{ role: "user", content: "x" }] })],
      ["completions", () => bob.completions.create({ model: "a-llm", prompt: "x" })],
      ["transcriptions", async () => bob.audio.transcriptions.create({ model: "a-stt", file: await toFile(testWav(0.2), "a.wav") })],
      ["image generations", () => bob.images.generate({ model: "a-image", prompt: "x" })],
      ["image edits", async () => bob.images.edit({ model: "a-image", prompt: "x", image: await toFile(Buffer.from("png"), "a.png") })],
      ["speech", () => bob.audio.speech.create({ model: "a-tts", input: "x", voice: "alloy" })],
      ["embeddings", () => bob.embeddings.create({ model: "a-embed", input: "x" })],
      ["responses", () => bob.responses.create({ model: "a-llm", input: "x" })],
      ["translations", async () => bob.audio.translations.create({ model: "a-stt", file: await toFile(testWav(0.2), "a.wav") })],
    ];
    for (const [what, attempt] of attempts) {
      const error = await attempt().catch((e: unknown) => e);
      expect((error as APIError).status, what).to.equal(404);
      expect((error as APIError).type, what).to.equal("no_provider");
    }
    const client = stockClient("InferenceService", mesh.gateway.grpcAddress);
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      const call = (client.infer as (r: object, m: grpc.Metadata) => grpc.ClientReadableStream<unknown>).call(
        client,
        { call: { operation: "OPERATION_CHAT_COMPLETION", model: "a-llm", body: Buffer.from('{"model":"a-llm","messages":[]}') } },
        bearer(bobKey),
      );
      call.on("data", () => {});
      call.on("error", () => {});
      call.on("status", resolve);
    });
    client.close();
    expect(status.code).to.equal(grpc.status.NOT_FOUND);
    const reached = [...alice.simulator.requestCounts.entries()].filter(
      ([path, count]) => path !== "/v1/models" && count !== (before.get(path) ?? 0),
    );
    expect(reached).to.deep.equal([]);
    const retrieved = await bob.models.retrieve("a-embed").catch((e: unknown) => e);
    expect((retrieved as APIError).status).to.equal(404);
    expect((retrieved as APIError).code).to.equal("model_not_found");
  });
});

describe("what an attached agent learns of the mesh", function () {
  this.timeout(30_000);
  let mesh: Mesh;

  before(async () => {
    mesh = await startMesh();
  });
  after(() => mesh.stop());

  // An agent runs on its owner's machine: it is told how the registry sees it, as its owner's ListProviders would show
  // it, never the gateways' internal addresses nor its link's id, which are the mesh's business.
  it("is told its provider on its link without the gateway's internal endpoint or its link id", async () => {
    const key = await mesh.registry.keyFor("alice");
    const link = openRawLink(mesh.gateway.baseUrl, key);
    try {
      link.send({ case: "heartbeat", value: { providerId: "alice-box", models: [] } });
      const outcome = await waitFor("the heartbeat's outcome", () => link.frames.find((frame) => frame.case === "heartbeat"));
      const provider = outcome.case === "heartbeat" ? outcome.value.response?.provider : undefined;
      expect(
        provider && { id: provider.id, ownerUserName: provider.ownerUserName, endpoint: provider.endpoint, linkId: provider.linkId },
      ).to.deep.equal({
        id: "alice-box",
        ownerUserName: "alice",
        endpoint: "",
        linkId: "",
      });
    } finally {
      link.destroy();
    }
  });
});

describe("secrets in logs", function () {
  this.timeout(4 * START_DEADLINE_MS);

  it("never writes an API key, a password, a link's token, a session or the mesh token to any log of a full run at debug level", async () => {
    const meshToken = `mesh-${"s3cr3t".repeat(6)}`;
    const processes: CliProcess[] = [];
    const env = { INFERMESH_MESH_TOKEN: meshToken, INFERMESH_LOG_LEVEL: "debug" };
    const dir = mkdtempSync(join(tmpdir(), "infermesh-secrets-"));
    try {
      const registry = spawnCli(["registry", "--listen", "127.0.0.1:0", "--db", join(dir, "db.sqlite")], env);
      processes.push(registry);
      const registryAddress = (await registry.waitForLog("registry ready")).listen as string;
      const key = (await spawnCli(["keys", "create", "--user", "ivy", "--db", join(dir, "db.sqlite")]).exited).stdout.trim();
      const sim = spawnCli(["sim", "--listen", "127.0.0.1:0"]);
      processes.push(sim);
      const simUrl = (await sim.waitForLog("simulator ready")).url as string;
      const gateway = spawnCli(["gateway", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--registry", registryAddress], env);
      processes.push(gateway);
      const baseUrl = `http://${(await gateway.waitForLog("gateway ready")).listen as string}`;
      // The agent dials the gateway; the gateway relays its heartbeats, the agent's key beside the mesh token.
      const agent = spawnCli(["agent", "--mesh", baseUrl, "--api-key", key, "--upstream", simUrl], env);
      processes.push(agent);
      await agent.waitForLog("agent ready");

      const client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: key, maxRetries: 0 });
      await waitFor("the model", async () => (await client.models.list()).data.length > 0, 15_000, 50);
      await client.chat.completions.create({ model: "sim-llama", messages: [{ role: "user", content: "hi" }] });
      for await (const _ of await client.chat.completions.create({
        model: "sim-llama",
        messages: [{ role: "user", content: "hi" }],
        stream: true,
      }));
      const wrongKey = `${key.slice(0, -6)}ABCDEF`;
      await new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: wrongKey, maxRetries: 0 }).models.list().catch(() => undefined);
      await client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "hi" }] }).catch(() => undefined);

      // A member's way in: an invite sets a password, a sign-in starts a session, a wrong password fails.
      const password = `pw-${"h1dden".repeat(4)}`;
      const invite = (await spawnCli(["users", "add", "june", "--db", join(dir, "db.sqlite"), "--url", baseUrl]).exited).stdout;
      const inviteToken = /#token=([\w-]+)/.exec(invite)?.[1] as string;
      const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
        fetch(`${baseUrl}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: JSON.stringify(body),
        });
      expect((await post("/api/auth/invite", { token: inviteToken, password })).status).to.equal(200);
      const login = await post("/api/auth/login", { name: "june", password });
      const session = /infermesh_session=([^;]+)/.exec(login.headers.get("set-cookie") ?? "")?.[1] as string;
      const { csrf_token: csrf } = (await login.json()) as { csrf_token: string };
      expect((await post("/api/keys", { label: "x" }, { cookie: `infermesh_session=${session}`, "x-csrf-token": csrf })).status).to.equal(
        201,
      );
      expect((await post("/api/auth/login", { name: "june", password: `${password}-wrong` })).status).to.equal(401);
      // A one-time sign-in link: used once, then refused.
      const link = (await spawnCli(["users", "sign-in-link", "june", "--db", join(dir, "db.sqlite"), "--url", baseUrl]).exited).stdout;
      const signInToken = /#token=([\w-]+)/.exec(link)?.[1] as string;
      const linked = await post("/api/auth/sign-in-link", { token: signInToken });
      expect(linked.status).to.equal(200);
      const linkSession = /infermesh_session=([^;]+)/.exec(linked.headers.get("set-cookie") ?? "")?.[1] as string;
      expect((await post("/api/auth/sign-in-link", { token: signInToken })).status).to.equal(401);

      const registryClient = stockClient("RegistryService", registryAddress);
      const { providers } = await unary<{ providers: { gatewayId: string; linkId: string }[] }>(
        registryClient,
        "listProviders",
        {},
        bearer(meshToken),
      );
      registryClient.close();
      expect(
        providers.map((p) => ({ relayed: p.gatewayId !== "", linked: p.linkId !== "" })),
        "the agent's heartbeats came relayed by the gateway",
      ).to.deep.equal([{ relayed: true, linked: true }]);

      for (const p of processes) p.child.kill("SIGTERM");
      const logs = (await Promise.all(processes.map((p) => p.exited))).map((r) => r.stdout + r.stderr).join("\n");
      expect(logs.length, "the run logged at debug level").to.be.above(2_000);
      for (const [name, secret] of [
        ["API key", key],
        ["API key secret", key.slice("im_".length + 16 + 1)],
        ["wrong API key", wrongKey],
        ["mesh token", meshToken],
        ["password", password],
        ["invite token", inviteToken],
        ["sign-in link token", signInToken],
        ["sign-in link's session id", linkSession],
        ["session id", session],
        ["session secret", session.slice("ims_".length + 16 + 1)],
        ["CSRF token", csrf],
      ] as const) {
        expect(logs.includes(secret), `${name} found in the logs`).to.equal(false);
      }
    } finally {
      for (const p of processes) if (p.child.exitCode === null) p.child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
