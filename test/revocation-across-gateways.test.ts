import { expect } from "chai";
import { createRegistry, type Registry } from "../services/registry/registry.js";
import { openRegistryStore } from "../services/registry/store/open-registry-store.js";
import type { RegistryStore } from "../services/registry/store/registry-store.js";
import { formatHostPort } from "../services/shared/host-port.js";
import { createLogger } from "../services/shared/logger.js";
import { type GatewayFixture, startGateway } from "./support/gateway-fixture.js";
import { type PostgresServer, skipWithoutPostgres, startPostgres } from "./support/postgres-fixture.js";
import { MESH_TOKEN } from "./support/registry-fixture.js";

// Two registry replicas on one PostgreSQL database, a gateway on each: a key revoked, a user disabled or a session
// ended through one side stops working on the other within 2 s. Nothing tells the other gateway; its short
// authentication cache (a 1 s TTL, then at most 0.9 s answered while it asks again) and a store that reads the
// database on every check are what bound the delay.

/** REVOCATION_BOUND_MS is the promise: every gateway refuses a revoked credential within 2 s. */
const REVOCATION_BOUND_MS = 2_000;
const POLL_MS = 20;

describe("revocations across gateways on replicas of one PostgreSQL database", function () {
  this.timeout(60_000);
  let postgres: PostgresServer;
  const stores: RegistryStore[] = [];
  const registries: Registry[] = [];
  let a: GatewayFixture;
  let b: GatewayFixture;
  const delays: string[] = [];

  const startReplica = async (url: string) => {
    const store = await openRegistryStore(url);
    stores.push(store);
    const registry = createRegistry({
      store,
      meshToken: MESH_TOKEN,
      shutdownGraceMs: 0,
      listen: { host: "127.0.0.1", port: 0 },
      log: createLogger("registry", "silent"),
    });
    registries.push(registry);
    return formatHostPort((await registry.listen()).grpc);
  };

  before(async function () {
    skipWithoutPostgres(this);
    postgres = await startPostgres();
    const url = postgres.url(await postgres.createDatabase());
    a = await startGateway(await startReplica(url));
    b = await startGateway(await startReplica(url));
  });

  after(async () => {
    await a?.stop();
    await b?.stop();
    for (const registry of registries) await registry.close();
    for (const store of stores) await store.close();
    await postgres?.stop();
    if (delays.length > 0) console.log(`      refused on the other gateway after: ${delays.join(", ")}`);
  });

  const store = () => stores[0] as RegistryStore;
  const models = (gateway: GatewayFixture, key: string) =>
    fetch(`${gateway.baseUrl}/v1/models`, { headers: { authorization: `Bearer ${key}` } }).then(async (response) => {
      await response.arrayBuffer();
      return response.status;
    });
  // GET /api/auth/session asks the registry each time; /api/keys is authenticated as every route is, through the cache.
  const session = (gateway: GatewayFixture, cookie: string) =>
    fetch(`${gateway.baseUrl}/api/keys`, { headers: { cookie } }).then(async (response) => {
      await response.arrayBuffer();
      return response.status;
    });

  /** warm asks gateway B a few times, so that its cache holds the credential as a busy client's would. */
  const warm = async (what: string, status: () => Promise<number>) => {
    for (let ask = 0; ask < 5; ask++) expect(await status(), `${what} works before`).to.equal(200);
  };

  /** refusedWithin polls status() until it answers 401 and returns how long that took from sinceMs. */
  const refusedWithin = async (what: string, status: () => Promise<number>, sinceMs: number): Promise<number> => {
    for (;;) {
      const answer = await status();
      const delayMs = Date.now() - sinceMs;
      if (answer === 401) {
        delays.push(`${what} ${delayMs} ms`);
        return delayMs;
      }
      expect(answer, `${what}: the other gateway answers`).to.equal(200);
      expect(delayMs, `${what}: still accepted`).to.be.below(REVOCATION_BOUND_MS + 1_000);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  };

  it("refuses a key revoked through the other gateway's API within 2 s", async () => {
    const { apiKey, record } = await store().createApiKey("alice");
    const status = () => models(b, apiKey);
    await warm("the key", status);
    // Measured from the revocation's request, not its answer: the longer of the two readings.
    const revokedAt = Date.now();
    const revoked = await fetch(`${a.baseUrl}/api/keys/${record.id}`, { method: "DELETE", headers: { authorization: `Bearer ${apiKey}` } });
    expect(revoked.status).to.equal(200);
    await revoked.arrayBuffer();
    expect(await refusedWithin("a revoked key", status, revokedAt)).to.be.below(REVOCATION_BOUND_MS);
  });

  it("refuses the keys and sessions of a user disabled through the other replica within 2 s", async () => {
    await store().signUp("bob", "bob's long password");
    const { apiKey } = await store().createApiKey("bob");
    const cookie = await signIn(a, "bob", "bob's long password");
    const keyStatus = () => models(b, apiKey);
    const sessionStatus = () => session(b, cookie);
    await Promise.all([warm("the key", keyStatus), warm("the session", sessionStatus)]);
    const disabledAt = Date.now();
    const { registryLink } = a.gateway;
    await registryLink.accounts.setUserDisabled({ userName: "bob", disabled: true }, { headers: registryLink.meshHeaders });
    const [keyDelayMs, sessionDelayMs] = await Promise.all([
      refusedWithin("a disabled user's key", keyStatus, disabledAt),
      refusedWithin("a disabled user's session", sessionStatus, disabledAt),
    ]);
    expect(keyDelayMs).to.be.below(REVOCATION_BOUND_MS);
    expect(sessionDelayMs).to.be.below(REVOCATION_BOUND_MS);
  });

  it("refuses a session ended on the other gateway within 2 s", async () => {
    await store().signUp("carol", "carol's long password");
    const cookie = await signIn(a, "carol", "carol's long password");
    const csrf = await csrfOf(a, cookie);
    const status = () => session(b, cookie);
    await warm("the session", status);
    const endedAt = Date.now();
    const out = await fetch(`${a.baseUrl}/api/auth/logout`, { method: "POST", headers: { cookie, "x-csrf-token": csrf } });
    expect(out.status).to.be.within(200, 299);
    await out.arrayBuffer();
    expect(await session(a, cookie), "the gateway that ended it refuses it at once").to.equal(401);
    expect(await refusedWithin("an ended session", status, endedAt)).to.be.below(REVOCATION_BOUND_MS);
  });
});

/** signIn signs in on a gateway with a password and returns the session cookie, as "name=value". */
async function signIn(gateway: GatewayFixture, name: string, password: string): Promise<string> {
  const response = await fetch(`${gateway.baseUrl}/api/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, password }),
  });
  expect(response.status).to.equal(200);
  await response.arrayBuffer();
  const cookie = response.headers.getSetCookie().find((value) => value.startsWith("infermesh_session="));
  expect(cookie, "a session cookie").to.be.a("string");
  return (cookie as string).split(";")[0] as string;
}

/** csrfOf is the session's CSRF token, as the dashboard reads it. */
async function csrfOf(gateway: GatewayFixture, cookie: string): Promise<string> {
  const response = await fetch(`${gateway.baseUrl}/api/auth/session`, { headers: { cookie } });
  expect(response.status).to.equal(200);
  return ((await response.json()) as { csrf_token: string }).csrf_token;
}
