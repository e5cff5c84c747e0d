import { type ServiceError, status } from "@grpc/grpc-js";
import { expect } from "chai";
import OpenAI, { type APIError } from "openai";
import { ProviderState } from "../gen/infermesh/v1/registry_pb.js";
import { startGateway } from "./support/gateway-fixture.js";
import { type Mesh, type MeshAgent, startMesh } from "./support/mesh-fixture.js";
import { MESH_TOKEN } from "./support/registry-fixture.js";
import { bearer, stockClient, unary } from "./support/stock-grpc-client.js";
import { waitFor } from "./support/wait-for.js";

// The members' control plane over HTTP: accounts, sessions, keys, pause, sharing and why a model has no provider.

/** Browser is a client that keeps the session cookie and CSRF token the gateway gave it, as a browser page would. */
class Browser {
  cookie = "";
  csrf = "";
  setCookie = "";
  signedIn = "";

  constructor(readonly baseUrl: string) {}

  async fetch(path: string, init: { method?: string; body?: unknown; csrf?: boolean; headers?: Record<string, string> } = {}) {
    const headers: Record<string, string> = { ...init.headers };
    if (this.cookie) headers.cookie = this.cookie;
    if (init.body !== undefined) headers["content-type"] = "application/json";
    if (init.csrf !== false && this.csrf && init.method && init.method !== "GET") headers["x-csrf-token"] = this.csrf;
    const response = await fetch(`${this.baseUrl}${path}`, {
      method: init.method ?? "GET",
      headers,
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    });
    const cookies = response.headers.getSetCookie();
    const session = cookies.find((cookie) => cookie.startsWith("infermesh_session="));
    if (session) {
      this.setCookie = session;
      this.signedIn = cookies.find((cookie) => cookie.startsWith("infermesh_signed_in=")) ?? "";
      this.cookie = session.split(";")[0] ?? "";
    }
    const text = await response.text();
    const json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    if (typeof json.csrf_token === "string") this.csrf = json.csrf_token;
    return { status: response.status, json, headers: response.headers };
  }
}

/** chats counts the chat completions an agent's model server was asked for. */
const chats = (agent: MeshAgent) => agent.simulator.requestCounts.get("/v1/chat/completions") ?? 0;

const errorOf = (json: Record<string, unknown>) => json.error as { message: string; type: string; code: string | null };

describe("members' accounts, sessions and keys (/api/auth, /api/keys)", function () {
  this.timeout(60_000);
  let mesh: Mesh;

  before(async () => {
    mesh = await startMesh();
  });
  after(() => mesh.stop());

  async function invited(name: string, password = "correct horse battery"): Promise<Browser> {
    const { inviteToken } = await mesh.registry.store.createUser(name, 24 * 3600_000);
    const browser = new Browser(mesh.gateway.baseUrl);
    const answer = await browser.fetch("/api/auth/invite", { method: "POST", body: { token: inviteToken, password } });
    expect(answer.status, JSON.stringify(answer.json)).to.equal(200);
    return browser;
  }

  it("walks inference.club's path: an invite sets the password, sign in, make a key, use it with the OpenAI SDK and an agent", async () => {
    const { inviteToken } = await mesh.registry.store.createUser("carol", 24 * 3600_000);
    const browser = new Browser(mesh.gateway.baseUrl);
    const accepted = await browser.fetch("/api/auth/invite", {
      method: "POST",
      body: { token: inviteToken, password: "carol's password" },
    });
    expect(accepted.status).to.equal(200);
    expect((accepted.json.user as { name: string }).name).to.equal("carol");
    const again = await new Browser(mesh.gateway.baseUrl).fetch("/api/auth/invite", {
      method: "POST",
      body: { token: inviteToken, password: "another password" },
    });
    expect(again.status, "an invite works once").to.equal(404);

    const signIn = new Browser(mesh.gateway.baseUrl);
    const login = await signIn.fetch("/api/auth/login", { method: "POST", body: { name: "carol", password: "carol's password" } });
    expect(login.status).to.equal(200);
    expect(signIn.setCookie).to.match(/^infermesh_session=ims_[0-9a-f]{16}_[\w-]{43};/);
    expect(signIn.setCookie).to.include("HttpOnly").and.include("SameSite=Lax").and.include("Path=/");
    expect(signIn.setCookie, "no Secure over plain HTTP").not.to.include("Secure");
    expect(signIn.signedIn, "the pages' hint: no secret, readable by script").to.match(/^infermesh_signed_in=1; /);
    expect(signIn.signedIn).not.to.include("HttpOnly");
    expect(login.json.csrf_token).to.be.a("string").with.length.above(20);

    const created = await signIn.fetch("/api/keys", { method: "POST", body: { label: "laptop" } });
    expect(created.status).to.equal(201);
    const key = created.json.key as string;
    expect(key).to.match(/^im_/);
    expect(created.json).to.include({ object: "api_key", label: "laptop", last_used_at: null });

    const agent = await mesh.addAgent({ user: "carol", apiKey: key });
    const openai = new OpenAI({ baseURL: `${mesh.gateway.baseUrl}/v1`, apiKey: key, maxRetries: 0 });
    const answer = await openai.chat.completions.create({ model: "sim-llama", messages: [{ role: "user", content: "hi" }], max_tokens: 3 });
    expect(answer.choices[0]?.message.content).to.be.a("string").and.not.equal("");
    expect(mesh.gateway.gateway.table.provider(agent.providerId)?.ownerUserName).to.equal("carol");

    const listed = await waitFor("the key's last use to be recorded", async () => {
      const keys = await signIn.fetch("/api/keys");
      const entry = (keys.json.data as Record<string, unknown>[]).find((k) => k.id === created.json.id);
      return entry?.last_used_at !== null && entry;
    });
    expect(Object.keys(listed).sort()).to.deep.equal(["created_at", "id", "label", "last_used_at", "object"]);
    expect(JSON.stringify(listed), "never the secret").not.to.include(key.slice(20));
  });

  it("needs the CSRF token for writes a session cookie authenticates, and not for an API key's", async () => {
    const browser = await invited("dave");
    const refused = await browser.fetch("/api/keys", { method: "POST", body: { label: "x" }, csrf: false });
    expect(refused.status).to.equal(403);
    expect(errorOf(refused.json).code).to.equal("csrf_token_invalid");
    const forged = await browser.fetch("/api/keys", { method: "POST", body: {}, headers: { "x-csrf-token": "forged" }, csrf: false });
    expect(forged.status).to.equal(403);
    const key = await mesh.registry.keyFor("dave");
    const byKey = await fetch(`${mesh.gateway.baseUrl}/api/keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ label: "script" }),
    });
    expect(byKey.status).to.equal(201);
    const reads = await browser.fetch("/api/keys");
    expect(reads.status, "a read needs no token").to.equal(200);
    expect((reads.json.data as { label: string }[]).map((k) => k.label)).to.include("script");
  });

  it("rotates the session at sign-in and ends it at sign-out", async () => {
    const browser = await invited("erin", "erin's password");
    const first = browser.cookie;
    const again = await browser.fetch("/api/auth/login", { method: "POST", body: { name: "erin", password: "erin's password" } });
    expect(again.status).to.equal(200);
    expect(browser.cookie).not.to.equal(first);
    const stale = await fetch(`${mesh.gateway.baseUrl}/api/me`, { headers: { cookie: first } });
    expect(stale.status, "the session the browser held before sign-in ended").to.equal(401);
    expect((await browser.fetch("/api/me")).json).to.include({ name: "erin", auth: "session" });
    const out = await browser.fetch("/api/auth/logout", { method: "POST" });
    expect(out.status).to.equal(204);
    expect(browser.setCookie).to.include("infermesh_session=;");
    const after = await fetch(`${mesh.gateway.baseUrl}/api/me`, { headers: { cookie: browser.cookie || "" } });
    expect(after.status).to.equal(401);
  });

  it("stops a revoked key within 2 s", async () => {
    const browser = await invited("frank");
    const created = await browser.fetch("/api/keys", { method: "POST", body: { label: "doomed" } });
    const key = created.json.key as string;
    const me = () => fetch(`${mesh.gateway.baseUrl}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    expect((await me()).status).to.equal(200);
    const revoked = await browser.fetch(`/api/keys/${created.json.id as string}`, { method: "DELETE" });
    expect(revoked.json).to.deep.equal({ id: created.json.id, object: "api_key", revoked: true });
    const started = Date.now();
    await waitFor("the revoked key refused", async () => (await me()).status === 401, 2_000);
    expect(Date.now() - started).to.be.below(2_000);
    const other = await invited("grace");
    const stolen = await other.fetch(`/api/keys/${created.json.id as string}`, { method: "DELETE" });
    expect(stolen.status, "another user's key id is not found").to.equal(404);
  });

  it("stops a disabled user's keys and sessions within 2 s, and the operator can end a user's sessions", async () => {
    const browser = await invited("heidi");
    const key = await mesh.registry.keyFor("heidi");
    const { providerId } = await mesh.addAgent({ user: "heidi", apiKey: key, sim: { models: [{ id: "heidi-model", kind: "llm" }] } });
    const byKey = () => fetch(`${mesh.gateway.baseUrl}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    expect((await byKey()).status).to.equal(200);
    expect((await browser.fetch("/api/me")).status).to.equal(200);
    await mesh.registry.store.setUserDisabled("heidi", true);
    await waitFor("the key refused", async () => (await byKey()).status === 401, 2_000);
    await waitFor("the session refused", async () => (await browser.fetch("/api/me")).status === 401, 2_000);
    // Heartbeats come every 10 s here: the agent's link ends on the gateway's own check of its key.
    await waitFor("the agent's link ended", () => !mesh.gateway.gateway.links.attached(providerId), 2_500);
    await mesh.registry.store.setUserDisabled("heidi", false);
    await waitFor("the key back", async () => (await byKey()).status === 200, 2_000);

    const fresh = await invited("ivan");
    expect((await fresh.fetch("/api/me")).status).to.equal(200);
    expect(await mesh.registry.store.revokeUserSessions("ivan")).to.equal(1);
    await waitFor("the operator's revocation", async () => (await fresh.fetch("/api/me")).status === 401, 2_000);
  });

  it("refuses wrong passwords alike for known and unknown names, and rate limits failures per name and per address", async () => {
    await invited("judy", "judy's password");
    // A gateway of its own: the limits count per address, and every test here comes from 127.0.0.1.
    const gateway = await startGateway(mesh.registry.address);
    try {
      const login = (name: string, password: string) =>
        new Browser(gateway.baseUrl).fetch("/api/auth/login", { method: "POST", body: { name, password } });
      const wrong = await login("judy", "not it");
      const unknown = await login("nobody-at-all", "not it");
      expect(wrong.status).to.equal(401);
      expect(unknown.json).to.deep.equal(wrong.json);
      for (let i = 1; i < 10; i++) expect((await login("judy", `guess ${i}`)).status).to.equal(401);
      const limited = await login("judy", "judy's password");
      expect(limited.status, "the right password too, once the name is locked").to.equal(429);
      expect(Number(limited.headers.get("retry-after"))).to.be.within(1, 900);
      expect(errorOf(limited.json)).to.include({ type: "rate_limit_exceeded", code: "login_rate_limited" });
      for (let i = 0; i < 19; i++) expect((await login(`someone-${i}`, "x")).status).to.equal(401);
      const byAddress = await login("judy-not", "x");
      expect(byAddress.status, "30 failures from one address").to.equal(429);
    } finally {
      await gateway.stop();
    }
  });

  /** BAD_LINK is the answer to every sign-in link that does not work, whatever the reason. */
  const BAD_LINK = {
    error: {
      message: "This sign-in link was used, expired, or never existed: ask for a new one.",
      type: "authentication_error",
      param: null,
      code: "invalid_sign_in_link",
    },
  };
  const useLink = (token: string, browser = new Browser(mesh.gateway.baseUrl)) =>
    browser.fetch("/api/auth/sign-in-link", { method: "POST", body: { token } });

  it("signs in once with a link made over AccountService, as a password sign-in does, and answers 401 after", async () => {
    const accounts = stockClient("AccountService", mesh.registry.address);
    try {
      const { user: kate } = await mesh.registry.store.createUser("kate", 24 * 3600_000);
      const before = Date.now();
      const made = await unary<{ token: string; expireTime: { seconds: string } }>(
        accounts,
        "createSignInLink",
        { userName: "kate" },
        bearer(MESH_TOKEN),
      );
      expect(made.token).to.match(/^[A-Za-z0-9_-]{43}$/);
      expect(Number(made.expireTime.seconds) * 1000 - before, "valid 24 h").to.be.within(24 * 3600_000 - 1_000, 24 * 3600_000 + 60_000);
      const refusal = (request: Promise<unknown>) =>
        request.then(
          () => expect.fail("expected a refusal"),
          (error: ServiceError) => error.code,
        );
      expect(await refusal(unary(accounts, "createSignInLink", { userName: "nobody-at-all" }, bearer(MESH_TOKEN)))).to.equal(
        status.NOT_FOUND,
      );
      const memberKey = await mesh.registry.keyFor("kate");
      expect(await refusal(unary(accounts, "createSignInLink", { userName: "kate" }, bearer(memberKey))), "the mesh's only").to.equal(
        status.UNAUTHENTICATED,
      );

      const browser = new Browser(mesh.gateway.baseUrl);
      const signedIn = await useLink(made.token, browser);
      expect(signedIn.status).to.equal(200);
      expect(signedIn.json).to.deep.equal({
        user: { id: kate.id, name: "kate" },
        csrf_token: browser.csrf,
        expires_at: signedIn.json.expires_at,
      });
      expect(signedIn.json.expires_at)
        .to.be.a("number")
        .above(before / 1000);
      expect(browser.csrf).to.have.length.above(20);
      expect(browser.setCookie).to.match(/^infermesh_session=ims_[0-9a-f]{16}_[\w-]{43};/);
      expect(browser.setCookie).to.include("HttpOnly").and.include("SameSite=Lax");
      expect((await browser.fetch("/api/me")).json).to.deep.equal({ id: kate.id, name: "kate", auth: "session" });
      expect((await browser.fetch("/api/keys", { method: "POST", body: { label: "from a link" } })).status).to.equal(201);
      expect((await mesh.registry.store.findUser("kate"))?.hasPassword, "a link sets no password").to.equal(false);

      const again = await useLink(made.token);
      expect(again.status, "a link works once").to.equal(401);
      expect(again.json).to.deep.equal(BAD_LINK);
      expect(again.headers.get("set-cookie")).to.equal(null);
      expect(
        await refusal(unary(accounts, "useSignInLink", { token: made.token }, bearer(MESH_TOKEN))),
        "and not over gRPC either",
      ).to.equal(status.UNAUTHENTICATED);
    } finally {
      accounts.close();
    }
  });

  it("refuses an invite's token, an expired link and a disabled member's link alike, and keeps what they did not use", async () => {
    const { inviteToken } = await mesh.registry.store.createUser("liam", 24 * 3600_000);
    expect(await useLink(inviteToken)).to.deep.include({ status: 401, json: BAD_LINK });
    expect(await useLink("A".repeat(43))).to.deep.include({ status: 401, json: BAD_LINK });

    const expiring = await mesh.registry.store.createSignInLink("liam", 1);
    await waitFor("the link to expire", () => Date.now() > (expiring?.expiresAtMs ?? 0));
    expect(await useLink(expiring?.token as string)).to.deep.include({ status: 401, json: BAD_LINK });

    const waiting = await mesh.registry.store.createSignInLink("liam", 3600_000);
    await mesh.registry.store.setUserDisabled("liam", true);
    try {
      expect(await useLink(waiting?.token as string)).to.deep.include({ status: 401, json: BAD_LINK });
    } finally {
      await mesh.registry.store.setUserDisabled("liam", false);
    }
    expect((await useLink(waiting?.token as string)).status, "the link waited for the account").to.equal(200);
    const invited = await new Browser(mesh.gateway.baseUrl).fetch("/api/auth/invite", {
      method: "POST",
      body: { token: inviteToken, password: "liam's password" },
    });
    expect(invited.status, "the invite still sets the password").to.equal(200);
  });

  it("counts failed sign-in links against the address, with failed passwords", async () => {
    await mesh.registry.store.createApiKey("mike");
    // A gateway of its own: the limits count per address, and every test here comes from 127.0.0.1.
    const gateway = await startGateway(mesh.registry.address);
    try {
      const post = (path: string, body: unknown) => new Browser(gateway.baseUrl).fetch(path, { method: "POST", body });
      for (let i = 0; i < 29; i++) expect((await post("/api/auth/sign-in-link", { token: `guess-${i}` })).status).to.equal(401);
      expect((await post("/api/auth/login", { name: "mike", password: "a guess" })).status).to.equal(401);
      const good = await mesh.registry.store.createSignInLink("mike", 3600_000);
      const limited = await post("/api/auth/sign-in-link", { token: good?.token });
      expect(limited.status, "a good link too, once the address is locked").to.equal(429);
      expect(Number(limited.headers.get("retry-after"))).to.be.within(1, 900);
      expect(errorOf(limited.json)).to.include({ type: "rate_limit_exceeded", code: "login_rate_limited" });
      expect((await post("/api/auth/login", { name: "mike", password: "another guess" })).status, "and passwords").to.equal(429);
      expect((await useLink(good?.token as string)).status, "unused, it works from another gateway").to.equal(200);
    } finally {
      await gateway.stop();
    }
  });

  it("marks the session cookie Secure when the page came over TLS through a proxy the gateway trusts", async () => {
    await invited("trent", "trent's password");
    const trusting = await startGateway(mesh.registry.address, { trustProxy: "127.0.0.1" });
    try {
      const login = (baseUrl: string) =>
        fetch(`${baseUrl}/api/auth/login`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-forwarded-proto": "https" },
          body: JSON.stringify({ name: "trent", password: "trent's password" }),
        });
      expect((await login(trusting.baseUrl)).headers.get("set-cookie")).to.match(/; Secure/);
      expect((await login(mesh.gateway.baseUrl)).headers.get("set-cookie"), "a header from anyone").not.to.match(/; Secure/);
    } finally {
      await trusting.stop();
    }
  });

  it("takes sign-ups only where they are open, and invites unless sign-up is closed", async () => {
    const signUp = (baseUrl: string, name: string) =>
      new Browser(baseUrl).fetch("/api/auth/signup", { method: "POST", body: { name, password: "long enough" } });
    const refused = await signUp(mesh.gateway.baseUrl, "mallory");
    expect(refused.status).to.equal(403);
    expect(errorOf(refused.json).code).to.equal("signup_closed");
    const open = await startGateway(mesh.registry.address, { signup: "open" });
    const closed = await startGateway(mesh.registry.address, { signup: "closed" });
    try {
      const made = await signUp(open.baseUrl, "niaj");
      expect(made.status).to.equal(201);
      expect((made.json.user as { name: string }).name).to.equal("niaj");
      expect((await signUp(open.baseUrl, "niaj")).status, "a name taken").to.equal(409);
      const short = await new Browser(open.baseUrl).fetch("/api/auth/signup", {
        method: "POST",
        body: { name: "olivia", password: "short" },
      });
      expect(short.status).to.equal(400);
      const { inviteToken } = await mesh.registry.store.createUser("peggy", 3600_000);
      const invite = await new Browser(closed.baseUrl).fetch("/api/auth/invite", {
        method: "POST",
        body: { token: inviteToken, password: "peggy's password" },
      });
      expect(invite.status).to.equal(403);
    } finally {
      await open.stop();
      await closed.stop();
    }
  });
});

describe("providers: pause, sharing, and why a model has no provider", function () {
  this.timeout(60_000);
  let mesh: Mesh;
  let alice: MeshAgent;
  let aliceKey: string;
  let bobKey: string;
  let carolKey: string;

  const chat = (apiKey: string, model = "sim-llama") =>
    new OpenAI({ baseURL: `${mesh.gateway.baseUrl}/v1`, apiKey, maxRetries: 0 }).chat.completions.create({
      model,
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 2,
    });
  const failure = async (call: Promise<unknown>) =>
    (await call.then(
      () => undefined,
      (error: unknown) => error,
    )) as APIError;
  const api = (apiKey: string, path: string, method = "GET", body?: unknown) =>
    fetch(`${mesh.gateway.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${apiKey}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }).then(async (response) => ({ status: response.status, json: (await response.json()) as Record<string, unknown> }));
  const modelIds = async (apiKey: string) =>
    ((await api(apiKey, "/v1/models")).json.data as { id: string; owned_by: string }[]).map((m) => `${m.id}@${m.owned_by}`);

  before(async () => {
    // Frequent heartbeats, so that a test can see an agent's heartbeats after an owner's decision; a long TTL.
    mesh = await startMesh({ heartbeatIntervalMs: 300, ttlMs: 10_000 });
    aliceKey = await mesh.registry.keyFor("alice");
    bobKey = await mesh.registry.keyFor("bob");
    carolKey = await mesh.registry.keyFor("carol");
    alice = await mesh.addAgent({ user: "alice", apiKey: aliceKey });
  });
  after(() => mesh.stop());

  it("lists the owner's providers with their status, and nobody else's", async () => {
    const own = await api(aliceKey, "/api/providers");
    expect(own.status).to.equal(200);
    const [provider] = own.json.data as Record<string, unknown>[];
    expect(provider).to.include({ id: alice.providerId, status: "online", online: true, paused: false });
    expect(provider?.sharing).to.deep.equal({ visibility: "private", users: [] });
    expect((await api(bobKey, "/api/providers")).json.data).to.deep.equal([]);
    const stranger = await api(bobKey, `/api/providers/${alice.providerId}/pause`, "POST");
    expect(stranger.status).to.equal(404);
  });

  it("shares with named users, then everyone, and prefers a caller's own provider", async () => {
    expect(await modelIds(bobKey)).to.deep.equal([]);
    const shared = await api(aliceKey, `/api/providers/${alice.providerId}/sharing`, "PUT", { visibility: "users", users: ["bob"] });
    expect(shared.status).to.equal(200);
    expect(shared.json.sharing).to.deep.equal({ visibility: "users", users: ["bob"] });
    await waitFor("bob to see alice's model", async () => (await modelIds(bobKey)).length === 1);
    expect(await modelIds(bobKey)).to.deep.equal(["sim-llama@alice-agent-0"]);
    expect((await chat(bobKey)).choices).to.have.length(1);
    expect(await modelIds(carolKey)).to.deep.equal([]);
    expect((await failure(chat(carolKey))).status).to.equal(404);

    await api(aliceKey, `/api/providers/${alice.providerId}/sharing`, "PUT", { visibility: "public" });
    await waitFor("carol to see alice's model", async () => (await modelIds(carolKey)).length === 1);
    const carols = await mesh.addAgent({ user: "carol", apiKey: carolKey });
    expect(await modelIds(carolKey), "one entry, carol's own").to.deep.equal(["sim-llama@carol-agent-1"]);
    const before = chats(alice);
    for (let i = 0; i < 5; i++) await chat(carolKey);
    expect(chats(alice), "carol's own provider serves her").to.equal(before);
    await carols.agent.close();
    await waitFor("carol's agent gone", () => mesh.gateway.gateway.table.provider(carols.providerId) === undefined);
    expect((await chat(carolKey)).choices, "alice's shared provider serves carol when hers is offline").to.have.length(1);
    await api(aliceKey, `/api/providers/${alice.providerId}/sharing`, "PUT", { visibility: "private" });
    await waitFor("alice's model private again", async () => (await modelIds(carolKey)).length === 0);
  });

  it("says in /v1/models whose provider serves each model: the caller's own, or the member who shares it", async () => {
    const servedBy = async (apiKey: string) =>
      ((await api(apiKey, "/v1/models")).json.data as { id: string; served_by: unknown }[]).map((m) => [m.id, m.served_by]);
    const alices = [["sim-llama", [{ provider: "alice-agent-0", owner: "alice" }]]];
    expect(await servedBy(aliceKey), "alice's own, to alice").to.deep.equal(alices);
    expect(await servedBy(bobKey)).to.deep.equal([]);
    await api(aliceKey, `/api/providers/${alice.providerId}/sharing`, "PUT", { visibility: "users", users: ["bob"] });
    try {
      await waitFor("bob to see alice's model", async () => (await servedBy(bobKey)).length === 1);
      expect(await servedBy(bobKey), "shared with bob, by alice").to.deep.equal(alices);
      const listed = await new OpenAI({ baseURL: `${mesh.gateway.baseUrl}/v1`, apiKey: bobKey, maxRetries: 0 }).models.list();
      expect(
        listed.data.map((m) => (m as unknown as { served_by: unknown }).served_by),
        "through the OpenAI SDK",
      ).to.deep.equal([[{ provider: "alice-agent-0", owner: "alice" }]]);
    } finally {
      await api(aliceKey, `/api/providers/${alice.providerId}/sharing`, "PUT", { visibility: "private" });
      await waitFor("alice's model private again", async () => (await servedBy(bobKey)).length === 0);
    }
  });

  it("pauses at once: no new call, its owner told why, others see a model nobody serves; resume brings it back", async () => {
    await api(aliceKey, `/api/providers/${alice.providerId}/sharing`, "PUT", { visibility: "public" });
    await waitFor("bob to see alice's model", async () => (await modelIds(bobKey)).length === 1);
    const paused = await api(aliceKey, `/api/providers/${alice.providerId}/pause`, "POST");
    expect(paused.json).to.include({ status: "paused", paused: true });
    const own = await failure(chat(aliceKey));
    expect(own.status).to.equal(404);
    expect(own.error).to.deep.include({ type: "no_provider", code: "providers_paused" });
    expect(await modelIds(bobKey), "gone from others' model lists").to.deep.equal([]);
    expect((await failure(chat(bobKey))).error).to.deep.include({ code: "model_not_served" });
    expect(await modelIds(aliceKey), "still listed for its owner").to.deep.equal(["sim-llama@alice-agent-0"]);
    expect(((await api(aliceKey, "/api/providers")).json.data as { status: string }[])[0]?.status).to.equal("paused");
    await api(aliceKey, `/api/providers/${alice.providerId}/resume`, "POST");
    expect((await chat(aliceKey)).choices).to.have.length(1);
    await api(aliceKey, `/api/providers/${alice.providerId}/sharing`, "PUT", { visibility: "private" });
  });

  it("lets calls in flight on a provider finish when it is paused", async () => {
    const openai = new OpenAI({ baseURL: `${mesh.gateway.baseUrl}/v1`, apiKey: aliceKey, maxRetries: 0 });
    const stream = await openai.chat.completions.create({
      model: "sim-llama",
      messages: [{ role: "user", content: "a long one" }],
      max_tokens: 40,
      stream: true,
    });
    const reading = (async () => {
      let text = "";
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
      return text;
    })();
    await api(aliceKey, `/api/providers/${alice.providerId}/pause`, "POST");
    try {
      expect(await reading).to.have.length.above(0);
    } finally {
      await api(aliceKey, `/api/providers/${alice.providerId}/resume`, "POST");
    }
  });

  it("answers bob's private model to alice exactly as a model nobody serves: status, body and timing", async () => {
    const bobs = await mesh.addAgent({ user: "bob", apiKey: bobKey, sim: { models: [{ id: "bob-secret", kind: "llm" }] } });
    const timed = async (model: string) => {
      const started = process.hrtime.bigint();
      const error = await failure(chat(aliceKey, model));
      return { error, ms: Number(process.hrtime.bigint() - started) / 1e6 };
    };
    const secret = await timed("bob-secret");
    const nothing = await timed("no-such-model");
    expect(secret.error.status).to.equal(nothing.error.status);
    expect(JSON.stringify(secret.error.error).replace("bob-secret", "M")).to.equal(
      JSON.stringify(nothing.error.error).replace("no-such-model", "M"),
    );
    expect(secret.error.error).to.deep.include({ code: "model_not_served", type: "no_provider" });
    const medians = { secret: [] as number[], nothing: [] as number[] };
    for (let i = 0; i < 15; i++) {
      medians.secret.push((await timed("bob-secret")).ms);
      medians.nothing.push((await timed("no-such-model")).ms);
    }
    const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
    expect(Math.abs(median(medians.secret) - median(medians.nothing)), "same timing class").to.be.below(25);
    expect(chats(bobs), "bob's machine never called").to.equal(0);
  });

  it("applies the sharing an agent starts with, lets the owner's choice win until the agent restarts with it", async () => {
    const erin = await mesh.registry.keyFor("erin");
    const share = { visibility: "public", allowedUsers: [] } as const;
    const settings = { id: "erin-box", share };
    const first = await mesh.addAgent({ user: "erin", apiKey: erin, sim: { models: [{ id: "erin-model", kind: "llm" }] }, settings });
    const erinsModel = `erin-model@${mesh.gateway.gateway.table.provider("erin-box")?.name}`;
    await waitFor("bob to see erin's shared model", async () => (await modelIds(bobKey)).includes(erinsModel));
    const set = await api(erin, "/api/providers/erin-box/sharing", "PUT", { visibility: "private" });
    expect(set.status).to.equal(200);
    const decidedAt = Date.now();
    expect(await modelIds(bobKey)).not.to.include(erinsModel);
    await waitFor(
      "two more heartbeats of the same agent",
      () => {
        const seen = mesh.registry.server.table.get("erin-box")?.lastHeartbeatTime;
        return seen !== undefined && Number(seen.seconds) * 1000 + seen.nanos / 1e6 > decidedAt + 700;
      },
      5_000,
    );
    expect(await modelIds(bobKey), "the running agent's --share does not undo the owner").not.to.include(erinsModel);
    await first.agent.close();
    const second = await mesh.addAgent({ user: "erin", apiKey: erin, sim: { models: [{ id: "erin-model", kind: "llm" }] }, settings });
    expect(second.providerId).to.equal("erin-box");
    await waitFor("the restarted agent's --share to apply", async () =>
      (await modelIds(bobKey)).some((id) => id.startsWith("erin-model@")),
    );
  });

  it("tells a caller whose providers are all shutting down that they are draining", async () => {
    const frank = await mesh.registry.keyFor("frank");
    const draining = await mesh.addAgent({
      user: "frank",
      apiKey: frank,
      // 20 tokens a second: the stream outlasts the test, and keeps the agent draining.
      sim: { models: [{ id: "frank-model", kind: "llm" }], tokensPerSecond: 20 },
      settings: { shutdownGraceMs: 10_000 },
    });
    const openai = new OpenAI({ baseURL: `${mesh.gateway.baseUrl}/v1`, apiKey: frank, maxRetries: 0 });
    const controller = new AbortController();
    const stream = await openai.chat.completions.create(
      { model: "frank-model", messages: [{ role: "user", content: "a long one" }], max_tokens: 2000, stream: true },
      { signal: controller.signal },
    );
    const reading = (async () => {
      for await (const _ of stream);
    })().catch(() => undefined);
    const stopped = draining.agent.close();
    await waitFor(
      "the provider draining",
      () => mesh.gateway.gateway.table.provider(draining.providerId)?.state === ProviderState.DRAINING,
    );
    const refused = await failure(chat(frank, "frank-model"));
    expect(refused.status).to.equal(404);
    expect(refused.error).to.deep.include({ type: "no_provider", code: "providers_draining" });
    controller.abort();
    await reading;
    await stopped;
  });

  it("tells an owner when their provider went offline", async () => {
    const dave = await mesh.registry.keyFor("dave");
    const daves = await mesh.addAgent({ user: "dave", apiKey: dave, sim: { models: [{ id: "dave-model", kind: "llm" }] } });
    expect((await chat(dave, "dave-model")).choices).to.have.length(1);
    await daves.agent.close();
    await waitFor("dave's provider offline", () => mesh.gateway.gateway.table.provider(daves.providerId) === undefined);
    const offline = await failure(chat(dave, "dave-model"));
    expect(offline.status).to.equal(404);
    expect(offline.error).to.deep.include({ type: "no_provider", code: "providers_offline" });
    const since = Date.parse((offline.error as { offline_since: string }).offline_since);
    expect(Date.now() - since).to.be.within(0, 30_000);
    expect((await failure(chat(bobKey, "dave-model"))).error, "others learn nothing").to.deep.include({ code: "model_not_served" });
  });
});

describe("usage records of a gateway that stops", () => {
  it("writes what it had not written yet when it closes, as on SIGTERM", async function () {
    this.timeout(30_000);
    const mesh = await startMesh();
    // A flush interval longer than the test: only the close can write these records.
    const gateway = await startGateway(mesh.registry.address, { usageFlushMs: 600_000 });
    try {
      const key = await mesh.registry.keyFor("alice");
      await mesh.addAgent({ user: "alice", apiKey: key });
      await waitFor("the second gateway to route", () => gateway.gateway.table.providers().next().done === false);
      const openai = new OpenAI({ baseURL: `${gateway.baseUrl}/v1`, apiKey: key, maxRetries: 0 });
      for (let i = 0; i < 3; i++) await openai.chat.completions.create({ model: "sim-llama", messages: [{ role: "user", content: "hi" }] });
      const alice = await mesh.registry.store.findUser("alice");
      const total = async () =>
        (
          await mesh.registry.store.queryUsage({
            scope: "caller",
            userId: alice?.id ?? "",
            fromMs: 0,
            toMs: Date.now() + 1000,
            groupBy: [],
          })
        )[0]?.requests ?? 0;
      expect(await total(), "nothing written before the close").to.equal(0);
      await gateway.stop();
      expect(await total()).to.equal(3);
    } finally {
      await mesh.stop();
    }
  });
});

describe("the gateway's metrics are the operator's", () => {
  it("serves /metrics on --metrics-listen and not on the public port", async function () {
    this.timeout(30_000);
    const mesh = await startMesh();
    const gateway = await startGateway(mesh.registry.address, {
      publicMetrics: false,
      metricsListen: { host: "127.0.0.1", port: 0 },
    });
    try {
      const key = await mesh.registry.keyFor("alice");
      const publicPort = await fetch(`${gateway.baseUrl}/metrics`, { headers: { authorization: `Bearer ${key}` } });
      expect(publicPort.status).to.equal(404);
      const operator = await fetch(`${gateway.metricsUrl}/metrics`);
      expect(operator.status).to.equal(200);
      expect(await operator.text()).to.include("infermesh_gateway_requests_total");
    } finally {
      await gateway.stop();
      await mesh.stop();
    }
  });
});
