import { createHash } from "node:crypto";
import { expect } from "chai";
import { generateApiKey, parseApiKey } from "../../services/registry/store/api-key.js";
import type {
  ProviderSettings,
  RegistryStore,
  UsageGroupBy,
  UsageRecordData,
  UsageRowData,
} from "../../services/registry/store/registry-store.js";
import {
  InvalidUserNameError,
  SessionRefusedError,
  UserExistsError,
  WeakPasswordError,
} from "../../services/registry/store/store-errors.js";

/**
 * The RegistryStore conformance suite: every behaviour the registry relies on, checked the same way against each
 * store (SQLite, PostgreSQL). A store's test file calls storeConformance with a factory of empty databases.
 */

/** StoreTarget is one empty database of the store under test, made for one test. */
export interface StoreTarget {
  /** open opens a store on the target's database, with the given clock. */
  open(now: () => number): Promise<RegistryStore>;
  /**
   * query runs one SQL statement with "?" placeholders on the database directly, as another program would, and
   * returns its rows with integers as numbers and binary columns as Buffers.
   */
  query(sql: string, params?: readonly unknown[]): Promise<Record<string, unknown>[]>;
  /** drop removes the database once every store opened on it is closed. */
  drop(): Promise<void>;
}

/** secretOf is the part of a key after its id, the part that must never be stored. */
export function secretOf(apiKey: string): string {
  return apiKey.slice("im_".length + 16 + 1);
}

/** USAGE_DAY0 is the UTC start of the day the usage tests' records fall on. */
export const USAGE_DAY0 = Date.UTC(2024, 0, 1);

/** usageRecord is a usage record at USAGE_DAY0 with neutral values, changed as given. */
export function usageRecord(changes: Partial<UsageRecordData> & Pick<UsageRecordData, "id">): UsageRecordData {
  return {
    timeMs: USAGE_DAY0,
    userId: "",
    keyId: "",
    providerId: "",
    providerOwnerId: "",
    providerName: "",
    model: "m1",
    operation: "chat",
    status: 200,
    promptTokens: 0,
    completionTokens: 0,
    audioSeconds: 0,
    images: 0,
    ttfbMs: 0,
    durationMs: 0,
    ...changes,
  };
}

/** changeOneCharacter returns apiKey with the character at index replaced by a different valid one. */
function changeOneCharacter(apiKey: string, index: number): string {
  const replacement = apiKey[index] === "A" ? "B" : "A";
  return apiKey.slice(0, index) + replacement + apiKey.slice(index + 1);
}

/** rejection awaits promise and returns what it rejected with, failing the test when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  expect.fail("expected a rejection");
}

/**
 * storeConformance declares the suite's tests in the current describe block. Each test gets a fresh target from
 * newTarget and a clock it moves by hand; the stores it opens are closed and the target dropped after it.
 */
export function storeConformance(newTarget: () => Promise<StoreTarget>): void {
  let target: StoreTarget | undefined;
  let clockMs: number;
  let opened: RegistryStore[];

  /** open opens a store on the test's database with the test's clock, and closes it after the test. */
  async function open(): Promise<RegistryStore> {
    if (target === undefined) throw new Error("no target: open is for tests only");
    const store = await target.open(() => clockMs);
    opened.push(store);
    return store;
  }

  /** query runs SQL on the test's database directly (StoreTarget.query). */
  function query(sql: string, params?: readonly unknown[]): Promise<Record<string, unknown>[]> {
    if (target === undefined) throw new Error("no target: query is for tests only");
    return target.query(sql, params);
  }

  beforeEach(async () => {
    clockMs = 1_700_000_000_000;
    opened = [];
    target = await newTarget();
  });

  afterEach(async () => {
    for (const store of opened) {
      await store.close();
    }
    await target?.drop();
    target = undefined;
  });

  it("authenticates a created key as its user", async () => {
    const store = await open();
    const created = await store.createApiKey("alice", "laptop");
    const user = await store.findUser("alice");
    expect(user).to.not.equal(undefined);
    expect(created.record).to.deep.equal({
      id: created.record.id,
      userId: user?.id,
      userName: "alice",
      label: "laptop",
      createdAtMs: clockMs,
      revokedAtMs: undefined,
      lastUsedAtMs: undefined,
    });
    expect(parseApiKey(created.apiKey)).to.deep.equal({ keyId: created.record.id });
    expect(await store.authenticate(created.apiKey)).to.deep.equal({
      userId: user?.id,
      userName: "alice",
      keyId: created.record.id,
    });
  });

  it("rejects wrong, malformed, altered and empty keys", async () => {
    const store = await open();
    const { apiKey, record } = await store.createApiKey("alice");
    const keyId = record.id;

    expect(await store.authenticate(generateApiKey().apiKey), "unknown key").to.equal(undefined);
    // Same key id, another secret: the row exists, so only the hash comparison can refuse it.
    const forged = `im_${keyId}_${secretOf(generateApiKey().apiKey)}`;
    expect(await store.authenticate(forged), "forged secret").to.equal(undefined);
    expect(await store.authenticate(apiKey.slice(0, -1)), "truncated").to.equal(undefined);
    expect(await store.authenticate(`Bearer ${apiKey}`), "with scheme").to.equal(undefined);
    expect(await store.authenticate(""), "empty").to.equal(undefined);
    for (const index of [apiKey.length - 1, apiKey.length - 20, "im_".length + 16 + 1]) {
      const altered = changeOneCharacter(apiKey, index);
      expect(await store.authenticate(altered), `changed at ${index}`).to.equal(undefined);
    }
    expect(await store.authenticate(apiKey), "the key itself").to.not.equal(undefined);
  });

  it("stops authenticating a revoked key and records when it was revoked", async () => {
    const store = await open();
    const { apiKey, record } = await store.createApiKey("alice");
    clockMs += 60_000;
    const revoked = await store.revokeApiKey(record.id);
    expect(revoked).to.deep.equal({ ...record, revokedAtMs: clockMs });
    expect(await store.authenticate(apiKey)).to.equal(undefined);

    // Revoking again keeps the first revocation time.
    const firstRevokedAtMs = clockMs;
    clockMs += 60_000;
    expect(await store.revokeApiKey(record.id)).to.deep.equal({ ...record, revokedAtMs: firstRevokedAtMs });
  });

  it("returns undefined when revoking an unknown key id", async () => {
    const store = await open();
    await store.createApiKey("alice");
    expect(await store.revokeApiKey(generateApiKey().keyId)).to.equal(undefined);
    expect(await store.revokeApiKey("")).to.equal(undefined);
  });

  it("lists keys oldest first, by user, hiding revoked ones unless asked", async () => {
    const store = await open();
    const a1 = await store.createApiKey("alice", "one");
    clockMs += 1;
    const b1 = await store.createApiKey("bob", "one");
    clockMs += 1;
    const a2 = await store.createApiKey("alice", "two");
    // Same millisecond as a2: creation order must still decide.
    const a3 = await store.createApiKey("alice", "three");
    clockMs += 1;
    const revokedA2 = await store.revokeApiKey(a2.record.id);

    expect(await store.listApiKeys()).to.deep.equal([a1.record, b1.record, a3.record]);
    expect(await store.listApiKeys({ userName: "alice" })).to.deep.equal([a1.record, a3.record]);
    expect(await store.listApiKeys({ userName: "alice", includeRevoked: true })).to.deep.equal([a1.record, revokedA2, a3.record]);
    expect(await store.listApiKeys({ includeRevoked: true })).to.deep.equal([a1.record, b1.record, revokedA2, a3.record]);
    expect(await store.listApiKeys({ userName: "nobody" })).to.deep.equal([]);
  });

  it("keeps two users' keys apart", async () => {
    const store = await open();
    const alice = await store.createApiKey("alice");
    const bob = await store.createApiKey("bob");
    const aliceAgain = await store.createApiKey("alice");

    expect(alice.record.userId).to.not.equal(bob.record.userId);
    expect(aliceAgain.record.userId).to.equal(alice.record.userId);
    expect(await store.authenticate(alice.apiKey)).to.deep.include({ userId: alice.record.userId, userName: "alice" });
    expect(await store.authenticate(bob.apiKey)).to.deep.include({ userId: bob.record.userId, userName: "bob" });

    // Bob's secret under Alice's key id must not pass as either of them.
    const crossed = `im_${alice.record.id}_${secretOf(bob.apiKey)}`;
    expect(await store.authenticate(crossed)).to.equal(undefined);

    await store.revokeApiKey(alice.record.id);
    expect(await store.authenticate(bob.apiKey)).to.deep.include({ userName: "bob" });
    expect(await store.authenticate(aliceAgain.apiKey)).to.deep.include({ userName: "alice" });
  });

  it("sees keys created and revoked through another store on the same database at once", async () => {
    const registry = await open();
    await registry.createApiKey("alice");
    const cli = await open();

    const created = await cli.createApiKey("bob", "from the cli");
    expect(await registry.authenticate(created.apiKey)).to.deep.equal({
      userId: created.record.userId,
      userName: "bob",
      keyId: created.record.id,
    });
    expect((await registry.listApiKeys({ userName: "bob" })).map((r) => r.id)).to.deep.equal([created.record.id]);

    await cli.revokeApiKey(created.record.id);
    expect(await registry.authenticate(created.apiKey)).to.equal(undefined);
  });

  it("gives a provider id to its first claimer", async () => {
    const store = await open();
    const alice = (await store.createApiKey("alice")).record.userId;
    const bob = (await store.createApiKey("bob")).record.userId;

    expect(await store.claimProvider("gpu-box-1", alice)).to.equal(alice);
    expect(await store.claimProvider("gpu-box-1", bob)).to.equal(alice);
    expect(await store.claimProvider("gpu-box-1", alice)).to.equal(alice);
    expect(await store.claimProvider("gpu-box-2", bob)).to.equal(bob);

    // The claim is durable and shared with other processes.
    const other = await open();
    expect(await other.claimProvider("gpu-box-1", bob)).to.equal(alice);
  });

  it("uses the injected clock", async () => {
    const store = await open();
    clockMs = 1_000;
    const { record } = await store.createApiKey("alice");
    expect(record.createdAtMs).to.equal(1_000);
    expect((await store.findUser("alice"))?.createdAtMs).to.equal(1_000);
    clockMs = 5_000;
    await store.createApiKey("alice");
    expect((await store.findUser("alice"))?.createdAtMs, "user creation time is kept").to.equal(1_000);
    clockMs = 9_000;
    expect((await store.revokeApiKey(record.id))?.revokedAtMs).to.equal(9_000);
    const times = (await store.listApiKeys({ includeRevoked: true })).map((r) => [r.createdAtMs, r.revokedAtMs]);
    expect(times).to.deep.equal([
      [1_000, 9_000],
      [5_000, undefined],
    ]);
  });

  it("rejects invalid user names with InvalidUserNameError", async () => {
    const store = await open();
    for (const name of ["", "a".repeat(65), "al ice", "alice/bob", "älice", "alice\n", "$(rm -rf)"]) {
      let caught: unknown;
      try {
        await store.createApiKey(name);
      } catch (error) {
        caught = error;
      }
      expect(caught, JSON.stringify(name)).to.be.instanceOf(InvalidUserNameError);
      expect((caught as Error).message).to.include("invalid user name");
    }
    for (const name of ["a", "a".repeat(64), "Alice.B_C-d@example.org"]) {
      expect((await store.createApiKey(name)).record.userName).to.equal(name);
    }
    expect(await store.listApiKeys()).to.have.length(3);
  });

  it("returns undefined for an unknown user", async () => {
    const store = await open();
    expect(await store.findUser("nobody")).to.equal(undefined);
  });

  describe("two stores on one database at the same moment", () => {
    it("use an invite and a sign-in link once", async () => {
      const [first, second] = [await open(), await open()];
      const { inviteToken } = await first.createUser("alice", 60_000);
      const accepted = await Promise.all([
        first.acceptInvite(inviteToken, "first password"),
        second.acceptInvite(inviteToken, "second password"),
      ]);
      expect(accepted.filter((user) => user !== undefined)).to.have.length(1);
      const winner = accepted[0] === undefined ? "second password" : "first password";
      expect(await first.checkPassword("alice", winner)).to.deep.include({ name: "alice" });

      const link = (await first.createSignInLink("alice", 60_000))?.token as string;
      const used = await Promise.all([first.useSignInLink(link), second.useSignInLink(link)]);
      expect(used.filter((user) => user !== undefined)).to.have.length(1);
    });

    it("create an account once, refusing the other with UserExistsError", async () => {
      const [first, second] = [await open(), await open()];
      const results = await Promise.allSettled([first.signUp("alice", "a fine password"), second.signUp("alice", "a fine password")]);
      expect(results.filter((result) => result.status === "fulfilled")).to.have.length(1);
      const refused = results.find((result) => result.status === "rejected");
      expect(refused?.reason).to.be.instanceOf(UserExistsError);
      expect((await first.listUsers()).map((user) => user.name)).to.deep.equal(["alice"]);
    });

    it("give a provider id to one of two claimers, and keys for one name to one user", async () => {
      const [first, second] = [await open(), await open()];
      const keys = await Promise.all([first.createApiKey("alice"), second.createApiKey("alice"), first.createApiKey("bob")]);
      expect(keys[0].record.userId).to.equal(keys[1].record.userId);
      const [alice, bob] = [keys[0].record.userId, keys[2].record.userId];
      const owners = await Promise.all([first.claimProvider("gpu", alice), second.claimProvider("gpu", bob)]);
      expect(owners[0]).to.be.oneOf([alice, bob]);
      expect(owners[1]).to.equal(owners[0]);
    });
  });

  it("closes, twice without complaint, and refuses calls once closed", async () => {
    const store = await open();
    await store.createApiKey("alice");
    await store.close();
    await store.close();
    expect(await rejection(store.findUser("alice"))).to.be.instanceOf(Error);
  });

  describe("accounts", () => {
    it("creates an account without a password and an invite that sets one once", async () => {
      const store = await open();
      const created = await store.createUser("alice", 60_000);
      expect(created.user).to.deep.equal({
        id: created.user.id,
        name: "alice",
        createdAtMs: clockMs,
        disabledAtMs: undefined,
        hasPassword: false,
      });
      expect(created.inviteToken).to.match(/^[A-Za-z0-9_-]{43}$/);
      expect(created.inviteExpiresAtMs).to.equal(clockMs + 60_000);
      expect(await store.findUser("alice")).to.deep.equal(created.user);

      clockMs += 1_000;
      const accepted = await store.acceptInvite(created.inviteToken, "first password");
      expect(accepted).to.deep.equal({ ...created.user, hasPassword: true });
      expect(await store.checkPassword("alice", "first password")).to.deep.equal(accepted);

      expect(await store.acceptInvite(created.inviteToken, "second password"), "used twice").to.equal(undefined);
      expect(await store.checkPassword("alice", "second password")).to.equal(undefined);
      expect(await store.checkPassword("alice", "first password")).to.deep.equal(accepted);
    });

    it("refuses an invite at and after its expiry", async () => {
      const store = await open();
      const early = await store.createUser("early", 60_000);
      const late = await store.createUser("late", 60_000);
      clockMs += 59_999;
      expect(await store.acceptInvite(early.inviteToken, "in time!")).to.deep.include({ name: "early", hasPassword: true });
      clockMs += 1;
      expect(await store.acceptInvite(late.inviteToken, "too late")).to.equal(undefined);
      expect(await store.findUser("late")).to.deep.include({ hasPassword: false });
    });

    it("refuses unknown and malformed invite tokens, and weak passwords before any token", async () => {
      const store = await open();
      const { inviteToken } = await store.createUser("alice", 60_000);
      for (const token of [
        "",
        "not a token",
        `${inviteToken}A`,
        inviteToken.slice(0, -1),
        inviteToken.replace(/.$/, (c) => (c === "A" ? "B" : "A")),
      ]) {
        expect(await store.acceptInvite(token, "a fine password"), JSON.stringify(token)).to.equal(undefined);
      }
      expect(await rejection(store.acceptInvite(inviteToken, "short"))).to.be.instanceOf(WeakPasswordError);
      expect(await store.acceptInvite(inviteToken, "a fine password")).to.deep.include({ name: "alice" });
    });

    it("keeps a disabled account's invite for when it is enabled again", async () => {
      const store = await open();
      const { inviteToken } = await store.createUser("alice", 60_000);
      await store.setUserDisabled("alice", true);
      expect(await store.acceptInvite(inviteToken, "a fine password")).to.equal(undefined);
      await store.setUserDisabled("alice", false);
      expect(await store.acceptInvite(inviteToken, "a fine password")).to.deep.include({ name: "alice", hasPassword: true });
    });

    it("stores only the SHA-256 of an invite token", async () => {
      const store = await open();
      const { inviteToken, user, inviteExpiresAtMs } = await store.createUser("alice", 60_000);
      expect(await query("SELECT * FROM invites")).to.deep.equal([
        {
          token_hash: createHash("sha256").update(inviteToken).digest(),
          user_id: user.id,
          created_at_ms: clockMs,
          expires_at_ms: inviteExpiresAtMs,
          used_at_ms: null,
          purpose: "password",
        },
      ]);
    });

    it("refuses taken and invalid names and bad invite lifetimes", async () => {
      const store = await open();
      await store.createUser("alice", 60_000);
      await store.createApiKey("keyholder");
      for (const name of ["alice", "keyholder"]) {
        const error = await rejection(store.createUser(name, 60_000));
        expect(error, name).to.be.instanceOf(UserExistsError);
        expect((error as Error).message).to.equal(`user "${name}" already exists`);
        expect(await rejection(store.signUp(name, "a fine password")), name).to.be.instanceOf(UserExistsError);
      }
      for (const name of ["", "al ice", "a".repeat(65)]) {
        expect(await rejection(store.createUser(name, 60_000)), name).to.be.instanceOf(InvalidUserNameError);
        expect(await rejection(store.signUp(name, "a fine password")), name).to.be.instanceOf(InvalidUserNameError);
      }
      for (const ttl of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        expect(await rejection(store.createUser("bob", ttl)), String(ttl)).to.be.instanceOf(RangeError);
      }
      expect((await store.listUsers()).map((user) => user.name)).to.deep.equal(["alice", "keyholder"]);
    });

    it("signs a user up with a password, refusing a weak one without creating the account", async () => {
      const store = await open();
      expect(await rejection(store.signUp("alice", "1234567"))).to.be.instanceOf(WeakPasswordError);
      expect(await store.findUser("alice")).to.equal(undefined);

      const user = await store.signUp("alice", "12345678");
      expect(user).to.deep.equal({ id: user.id, name: "alice", createdAtMs: clockMs, disabledAtMs: undefined, hasPassword: true });
      expect(await store.checkPassword("alice", "12345678")).to.deep.equal(user);
      expect(await store.checkPassword("alice", "12345679")).to.equal(undefined);
      expect(await store.checkPassword("Alice", "12345678")).to.equal(undefined);
    });

    it("checks passwords of unknown accounts and accounts without one in about the time of a real check", async () => {
      const store = await open();
      await store.signUp("alice", "a fine password");
      await store.createApiKey("keyholder");

      expect(await store.checkPassword("nobody", "a fine password")).to.equal(undefined);
      expect(await store.checkPassword("keyholder", "")).to.equal(undefined);
      expect(await store.checkPassword("keyholder", "a fine password")).to.equal(undefined);

      const start = performance.now();
      await store.checkPassword("alice", "a wrong password");
      const real = performance.now() - start;
      for (const name of ["nobody", "keyholder", "not a valid name"]) {
        const started = performance.now();
        await store.checkPassword(name, "a wrong password");
        // Without the dummy scrypt run this takes well under a millisecond.
        expect(performance.now() - started, name).to.be.greaterThan(real * 0.3);
      }
    });

    it("sets a password directly, for known accounts only", async () => {
      const store = await open();
      await store.createApiKey("alice");
      expect(await store.setPassword("nobody", "a fine password")).to.equal(undefined);
      expect(await store.findUser("nobody")).to.equal(undefined);
      expect(await rejection(store.setPassword("alice", "short"))).to.be.instanceOf(WeakPasswordError);

      expect(await store.setPassword("alice", "first password")).to.deep.include({ name: "alice", hasPassword: true });
      expect(await store.checkPassword("alice", "first password")).to.deep.include({ name: "alice" });
      await store.setPassword("alice", "second password");
      expect(await store.checkPassword("alice", "first password")).to.equal(undefined);
      expect(await store.checkPassword("alice", "second password")).to.deep.include({ name: "alice" });
    });

    it("lists every account by name with its state", async () => {
      const store = await open();
      const carol = (await store.createApiKey("carol")).record.userId;
      clockMs += 1;
      const alice = await store.signUp("alice", "a fine password");
      clockMs += 1;
      const bob = (await store.createUser("bob", 60_000)).user;
      clockMs += 1;
      await store.setUserDisabled("carol", true);
      expect(await store.listUsers()).to.deep.equal([
        alice,
        bob,
        { id: carol, name: "carol", createdAtMs: clockMs - 3, disabledAtMs: clockMs, hasPassword: false },
      ]);
    });

    it("shuts a disabled account out of its keys, sessions and password until it is enabled", async () => {
      const store = await open();
      const { apiKey, record } = await store.createApiKey("alice");
      await store.setPassword("alice", "a fine password");
      const { sessionId } = await store.createSession(record.userId, 60_000);
      const bob = await store.createApiKey("bob");

      expect(await store.setUserDisabled("nobody", true)).to.equal(undefined);
      const disabledAtMs = clockMs;
      expect(await store.setUserDisabled("alice", true)).to.deep.include({ disabledAtMs });
      clockMs += 1_000;
      expect(await store.setUserDisabled("alice", true), "disabling again keeps the first time").to.deep.include({ disabledAtMs });

      expect(await store.authenticate(apiKey)).to.equal(undefined);
      expect(await store.resolveSession(sessionId)).to.equal(undefined);
      expect(await store.checkPassword("alice", "a fine password")).to.equal(undefined);
      expect(await rejection(store.createSession(record.userId, 60_000))).to.be.instanceOf(SessionRefusedError);
      expect(await store.authenticate(bob.apiKey), "other users are unaffected").to.deep.include({ userName: "bob" });

      expect(await store.setUserDisabled("alice", false)).to.deep.include({ disabledAtMs: undefined });
      expect(await store.authenticate(apiKey)).to.deep.include({ userName: "alice" });
      expect(await store.resolveSession(sessionId)).to.deep.include({ userName: "alice" });
      expect(await store.checkPassword("alice", "a fine password")).to.deep.include({ name: "alice" });
    });
  });

  describe("sign-in links", () => {
    it("signs an account in once, whether or not it has a password, and changes nothing else", async () => {
      const store = await open();
      const invited = await store.createUser("alice", 60_000);
      const bob = await store.signUp("bob", "bob's password");
      clockMs += 1_000;

      const alices = await store.createSignInLink("alice", 60_000);
      expect(alices).to.deep.equal({ token: alices?.token, expiresAtMs: clockMs + 60_000 });
      expect(alices?.token).to.match(/^[A-Za-z0-9_-]{43}$/);
      const bobs = await store.createSignInLink("bob", 60_000);
      expect(bobs?.token).not.to.equal(alices?.token);

      expect(await store.useSignInLink(alices?.token as string)).to.deep.equal(invited.user);
      expect(await store.useSignInLink(alices?.token as string), "used twice").to.equal(undefined);
      expect(await store.useSignInLink(bobs?.token as string)).to.deep.equal(bob);
      expect(await store.checkPassword("bob", "bob's password"), "the password stays").to.deep.equal(bob);
      expect(await store.acceptInvite(invited.inviteToken, "alice's password"), "the invite still works").to.deep.include({
        name: "alice",
        hasPassword: true,
      });
    });

    it("refuses a link at and after its expiry, and unknown and malformed tokens", async () => {
      const store = await open();
      await store.createApiKey("alice");
      const early = await store.createSignInLink("alice", 60_000);
      const late = await store.createSignInLink("alice", 60_000);
      clockMs += 59_999;
      expect(await store.useSignInLink(early?.token as string)).to.deep.include({ name: "alice" });
      clockMs += 1;
      expect(await store.useSignInLink(late?.token as string)).to.equal(undefined);

      const live = (await store.createSignInLink("alice", 60_000))?.token as string;
      for (const token of ["", "not a token", `${live}A`, live.slice(0, -1), live.replace(/.$/, (c) => (c === "A" ? "B" : "A"))]) {
        expect(await store.useSignInLink(token), JSON.stringify(token)).to.equal(undefined);
      }
      expect(await store.useSignInLink(live), "the real one, after the bad ones").to.deep.include({ name: "alice" });
    });

    it("never takes an invite's token as a sign-in link, nor a sign-in link's as an invite", async () => {
      const store = await open();
      const { inviteToken } = await store.createUser("alice", 60_000);
      const link = (await store.createSignInLink("alice", 60_000))?.token as string;
      expect(await store.useSignInLink(inviteToken)).to.equal(undefined);
      expect(await store.acceptInvite(link, "a fine password")).to.equal(undefined);
      expect(await store.findUser("alice"), "no password set").to.deep.include({ hasPassword: false });
      // Neither attempt used the other token up.
      expect(await store.useSignInLink(link)).to.deep.include({ name: "alice" });
      expect(await store.acceptInvite(inviteToken, "a fine password")).to.deep.include({ name: "alice", hasPassword: true });
    });

    it("keeps a disabled account's link for when it is enabled again", async () => {
      const store = await open();
      await store.createApiKey("alice");
      await store.setUserDisabled("alice", true);
      const link = (await store.createSignInLink("alice", 60_000))?.token as string;
      expect(await store.useSignInLink(link)).to.equal(undefined);
      await store.setUserDisabled("alice", false);
      expect(await store.useSignInLink(link)).to.deep.include({ name: "alice", disabledAtMs: undefined });
    });

    it("makes no link for an unknown name or a bad lifetime, and no account either", async () => {
      const store = await open();
      await store.createApiKey("alice");
      expect(await store.createSignInLink("nobody", 60_000)).to.equal(undefined);
      expect(await store.createSignInLink("al ice", 60_000)).to.equal(undefined);
      for (const ttl of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        expect(await rejection(store.createSignInLink("alice", ttl)), String(ttl)).to.be.instanceOf(RangeError);
      }
      expect((await store.listUsers()).map((user) => user.name)).to.deep.equal(["alice"]);
      expect(await query("SELECT COUNT(*) AS n FROM invites")).to.deep.equal([{ n: 0 }]);
    });

    it("stores only the SHA-256 of a link's token, marked as a sign-in link", async () => {
      const store = await open();
      const { record } = await store.createApiKey("alice");
      const link = await store.createSignInLink("alice", 60_000);
      clockMs += 5;
      await store.useSignInLink(link?.token as string);
      expect(await query("SELECT * FROM invites")).to.deep.equal([
        {
          token_hash: createHash("sha256")
            .update(link?.token as string)
            .digest(),
          user_id: record.userId,
          created_at_ms: clockMs - 5,
          expires_at_ms: link?.expiresAtMs,
          used_at_ms: clockMs,
          purpose: "sign_in",
        },
      ]);
    });
  });

  describe("sessions", () => {
    it("resolves a session to its user under the session's public id until it expires", async () => {
      const store = await open();
      const user = await store.signUp("alice", "a fine password");
      const created = await store.createSession(user.id, 60_000);
      expect(created.sessionId).to.match(/^ims_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
      expect(created.expiresAtMs).to.equal(clockMs + 60_000);
      const principal = { userId: user.id, userName: "alice", keyId: `session:${created.sessionId.slice(4, 20)}` };
      expect(await store.resolveSession(created.sessionId)).to.deep.equal(principal);

      clockMs = created.expiresAtMs - 1;
      expect(await store.resolveSession(created.sessionId)).to.deep.equal(principal);
      clockMs = created.expiresAtMs;
      expect(await store.resolveSession(created.sessionId)).to.equal(undefined);
      expect(await store.revokeSession(created.sessionId), "an expired session is not live").to.equal(false);
    });

    it("refuses malformed, altered and forged session ids", async () => {
      const store = await open();
      const user = await store.signUp("alice", "a fine password");
      const { sessionId } = await store.createSession(user.id, 60_000);
      const forged = `${sessionId.slice(0, 21)}${generateApiKey().apiKey.slice(20)}`;
      expect(forged).to.have.length(sessionId.length);
      for (const candidate of ["", sessionId.slice(0, -1), `${sessionId}A`, changeOneCharacter(sessionId, sessionId.length - 1), forged]) {
        expect(await store.resolveSession(candidate), JSON.stringify(candidate)).to.equal(undefined);
        expect(await store.revokeSession(candidate), JSON.stringify(candidate)).to.equal(false);
      }
      expect(await store.resolveSession(sessionId), "the forgeries revoked nothing").to.deep.include({ userName: "alice" });
    });

    it("starts sessions only for known, enabled users and positive lifetimes", async () => {
      const store = await open();
      const user = await store.signUp("alice", "a fine password");
      expect(await rejection(store.createSession("no-such-user", 60_000))).to.be.instanceOf(SessionRefusedError);
      for (const ttl of [0, -5, 0.5, Number.NaN]) {
        expect(await rejection(store.createSession(user.id, ttl)), String(ttl)).to.be.instanceOf(RangeError);
      }
    });

    it("revokes one session, once", async () => {
      const store = await open();
      const user = await store.signUp("alice", "a fine password");
      const first = await store.createSession(user.id, 60_000);
      const second = await store.createSession(user.id, 60_000);
      expect(await store.revokeSession(first.sessionId)).to.equal(true);
      expect(await store.revokeSession(first.sessionId)).to.equal(false);
      expect(await store.resolveSession(first.sessionId)).to.equal(undefined);
      expect(await store.resolveSession(second.sessionId)).to.deep.include({ userName: "alice" });
    });

    it("revokes every live session of one user and counts them", async () => {
      const store = await open();
      const alice = await store.signUp("alice", "a fine password");
      const bob = await store.signUp("bob", "a fine password");
      const short = await store.createSession(alice.id, 1_000);
      const revoked = await store.createSession(alice.id, 60_000);
      await store.revokeSession(revoked.sessionId);
      const live = [await store.createSession(alice.id, 60_000), await store.createSession(alice.id, 60_000)];
      const bobs = await store.createSession(bob.id, 60_000);
      clockMs += 1_000;
      expect(await store.resolveSession(short.sessionId)).to.equal(undefined);

      expect(await store.revokeUserSessions("alice")).to.equal(2);
      for (const { sessionId } of live) {
        expect(await store.resolveSession(sessionId)).to.equal(undefined);
      }
      expect(await store.revokeUserSessions("alice")).to.equal(0);
      expect(await store.revokeUserSessions("nobody")).to.equal(0);
      expect(await store.resolveSession(bobs.sessionId)).to.deep.include({ userName: "bob" });
    });

    it("forgets a user's dead sessions when they start a new one, and expired invites when one is used", async () => {
      const store = await open();
      const user = await store.signUp("alice", "a fine password");
      const expiring = await store.createSession(user.id, 1_000);
      const revoked = await store.createSession(user.id, 60_000);
      const live = await store.createSession(user.id, 60_000);
      await store.revokeSession(revoked.sessionId);
      const stale = await store.createUser("bob", 1_000);
      const fresh = await store.createUser("carol", 60_000);
      clockMs += 1_000;
      await store.createSession(user.id, 60_000);
      expect(await store.acceptInvite(fresh.inviteToken, "carol's password")).to.include({ name: "carol" });
      const ids = (await query("SELECT id FROM sessions")).map((row) => row["id"]);
      expect(ids).to.have.length(2).and.include(live.sessionId.slice(4, 20));
      expect(ids).not.to.include.members([expiring.sessionId.slice(4, 20), revoked.sessionId.slice(4, 20)]);
      const invites = await query("SELECT user_id FROM invites");
      expect(
        invites.map((row) => row["user_id"]),
        "bob's expired invite is gone, carol's used one stays",
      ).to.deep.equal([fresh.user.id]);
      expect(await store.acceptInvite(stale.inviteToken, "bob's password")).to.equal(undefined);
    });

    it("stores only the SHA-256 of a session id", async () => {
      const store = await open();
      const user = await store.signUp("alice", "a fine password");
      const { sessionId, expiresAtMs } = await store.createSession(user.id, 60_000);
      const secret = sessionId.slice(4 + 16 + 1);
      const rows = await query("SELECT * FROM sessions");
      expect(rows).to.deep.equal([
        {
          id: sessionId.slice(4, 20),
          secret_hash: createHash("sha256").update(sessionId).digest(),
          user_id: user.id,
          created_at_ms: clockMs,
          expires_at_ms: expiresAtMs,
          revoked_at_ms: null,
        },
      ]);
      for (const value of Object.values(rows[0] ?? {})) {
        const bytes = Buffer.isBuffer(value) ? value : Buffer.from(String(value));
        expect(bytes.indexOf(secret), "secret as text").to.equal(-1);
        expect(bytes.indexOf(Buffer.from(secret, "base64url")), "secret as bytes").to.equal(-1);
      }
    });
  });

  describe("usage", () => {
    const DAY_MS = 86_400_000;
    const HOUR_MS = 3_600_000;
    const day0 = USAGE_DAY0;

    /** sums is a usage row with zero sums, changed as given. */
    function sums(group: string[], changes: Partial<UsageRowData>): UsageRowData {
      const zero = { requests: 0, errors: 0, promptTokens: 0, completionTokens: 0, audioSeconds: 0, images: 0 };
      return { group, ...zero, ttfbMsAvg: 0, durationMsAvg: 0, ...changes };
    }

    /** Fixture is alice and bob with a key each (alice two), bob owning p1 and alice p2, and their usage. */
    interface Fixture {
      store: RegistryStore;
      alice: string;
      bob: string;
      aliceKey1: string;
      aliceKey2: string;
      bobKey: string;
      records: UsageRecordData[];
    }

    async function fixture(): Promise<Fixture> {
      const store = await open();
      const a1 = (await store.createApiKey("alice", "one")).record;
      const a2 = (await store.createApiKey("alice", "two")).record;
      const b1 = (await store.createApiKey("bob")).record;
      const alice = a1.userId;
      const bob = b1.userId;
      const onP1 = { providerId: "p1", providerOwnerId: bob, providerName: "Bob's GPU" };
      const onP2 = { providerId: "p2", providerOwnerId: alice, providerName: "Alice's GPU" };
      const aliceOnP1 = { userId: alice, keyId: a1.id, ...onP1 };
      const records = [
        usageRecord({
          id: "r1",
          timeMs: day0 + HOUR_MS + 5 * 60_000,
          ...aliceOnP1,
          promptTokens: 10,
          completionTokens: 20,
          audioSeconds: 0.5,
          ttfbMs: 100,
          durationMs: 1000,
        }),
        usageRecord({
          id: "r2",
          timeMs: day0 + HOUR_MS + 30 * 60_000,
          ...aliceOnP1,
          model: "m2",
          status: 500,
          promptTokens: 1,
          images: 1,
          durationMs: 50,
        }),
        usageRecord({
          id: "r3",
          timeMs: day0 + DAY_MS + 2 * HOUR_MS,
          userId: alice,
          keyId: a2.id,
          ...onP2,
          ...{ promptTokens: 5, completionTokens: 5, audioSeconds: 1.25, images: 2, ttfbMs: 300, durationMs: 2100 },
        }),
        usageRecord({ id: "r4", timeMs: day0 + 2 * HOUR_MS, userId: bob, keyId: b1.id, ...onP1, status: 499, durationMs: 10 }),
        usageRecord({ id: "r5", timeMs: day0 + 2 * DAY_MS, userId: bob, keyId: b1.id, ...onP2 }),
        usageRecord({ id: "r6", timeMs: day0, userId: "gone-user", keyId: "gone-key", ...onP1, model: "m3" }),
      ];
      expect(await store.recordUsage(records)).to.equal(6);
      return { store, alice, bob, aliceKey1: a1.id, aliceKey2: a2.id, bobKey: b1.id, records };
    }

    it("counts a record sent twice once, within a batch and across batches", async () => {
      const { store, records } = await fixture();
      expect(await store.recordUsage(records)).to.equal(0);
      expect(await store.recordUsage([usageRecord({ id: "r7" }), usageRecord({ id: "r7" }), ...records.slice(0, 2)])).to.equal(1);
      expect(await store.recordUsage([])).to.equal(0);
      const [total] = await store.queryUsage({ scope: "all", userId: "", fromMs: 0, toMs: day0 + 10 * DAY_MS, groupBy: [] });
      expect(total?.requests).to.equal(7);
    });

    it("stores a batch in one transaction: a bad record stores none of it", async () => {
      const { store } = await fixture();
      const broken = { ...usageRecord({ id: "r9" }), model: null } as unknown as UsageRecordData;
      expect(await rejection(store.recordUsage([usageRecord({ id: "r8" }), broken]))).to.be.instanceOf(Error);
      expect(await store.recordUsage([usageRecord({ id: "r8" })])).to.equal(1);
    });

    it("sums a caller's usage over [fromMs, toMs) with exact totals and averages", async () => {
      const { store, alice } = await fixture();
      const rows = await store.queryUsage({ scope: "caller", userId: alice, fromMs: day0, toMs: day0 + 2 * DAY_MS, groupBy: [] });
      expect(rows).to.deep.equal([
        {
          group: [],
          requests: 3,
          errors: 1,
          promptTokens: 16,
          completionTokens: 25,
          audioSeconds: 1.75,
          images: 3,
          // ttfb of answers that sent a first byte only: (100 + 300) / 2, not / 3.
          ttfbMsAvg: 200,
          durationMsAvg: 1050,
        },
      ]);
      const bobs = await store.queryUsage({ scope: "caller", userId: "nobody", fromMs: day0, toMs: day0 + DAY_MS, groupBy: [] });
      expect(bobs).to.deep.equal([]);
    });

    it("includes fromMs and excludes toMs", async () => {
      const { store, bob } = await fixture();
      const at = (fromMs: number, toMs: number) => store.queryUsage({ scope: "caller", userId: bob, fromMs, toMs, groupBy: ["day"] });
      expect((await at(day0 + 2 * DAY_MS, day0 + 3 * DAY_MS)).map((row) => row.requests)).to.deep.equal([1]);
      expect(await at(day0 + DAY_MS, day0 + 2 * DAY_MS)).to.deep.equal([]);
    });

    it("groups by UTC day and hour as ISO-8601 starts, in time order", async () => {
      const { store, alice } = await fixture();
      const query = { scope: "caller", userId: alice, fromMs: day0, toMs: day0 + 2 * DAY_MS } as const;
      expect(await store.queryUsage({ ...query, groupBy: ["day"] })).to.deep.equal([
        sums(["2024-01-01T00:00:00.000Z"], {
          requests: 2,
          errors: 1,
          promptTokens: 11,
          completionTokens: 20,
          audioSeconds: 0.5,
          images: 1,
          ttfbMsAvg: 100,
          durationMsAvg: 525,
        }),
        sums(["2024-01-02T00:00:00.000Z"], {
          requests: 1,
          promptTokens: 5,
          completionTokens: 5,
          audioSeconds: 1.25,
          images: 2,
          ttfbMsAvg: 300,
          durationMsAvg: 2100,
        }),
      ]);
      const byHourAndModel = await store.queryUsage({ ...query, groupBy: ["hour", "model"] });
      expect(byHourAndModel.map((row) => [...row.group, row.requests])).to.deep.equal([
        ["2024-01-01T01:00:00.000Z", "m1", 1],
        ["2024-01-01T01:00:00.000Z", "m2", 1],
        ["2024-01-02T02:00:00.000Z", "m1", 1],
      ]);
    });

    it("groups by key, model and provider", async () => {
      const { store, alice, aliceKey1, aliceKey2 } = await fixture();
      const query = { scope: "caller", userId: alice, fromMs: day0, toMs: day0 + 2 * DAY_MS } as const;
      const byKey = await store.queryUsage({ ...query, groupBy: ["key"] });
      const expected: [string, number][] = [
        [aliceKey1, 2],
        [aliceKey2, 1],
      ];
      expect(byKey.map((row) => [...row.group, row.requests])).to.deep.equal(expected.sort(([a], [b]) => (a < b ? -1 : 1)));
      const byModel = await store.queryUsage({ ...query, groupBy: ["model"] });
      expect(byModel.map((row) => [...row.group, row.requests, row.promptTokens])).to.deep.equal([
        ["m1", 2, 15],
        ["m2", 1, 1],
      ]);
      const byProvider = await store.queryUsage({ ...query, groupBy: ["provider", "model"] });
      expect(byProvider.map((row) => [...row.group, row.requests])).to.deep.equal([
        ["p1", "m1", 1],
        ["p1", "m2", 1],
        ["p2", "m1", 1],
      ]);
    });

    it("sums the calls a provider owner's providers answered, by caller name", async () => {
      const { store, bob } = await fixture();
      const rows = await store.queryUsage({ scope: "provider_owner", userId: bob, fromMs: 0, toMs: day0 + 10 * DAY_MS, groupBy: ["user"] });
      expect(rows).to.deep.equal([
        sums(["alice"], {
          requests: 2,
          errors: 1,
          promptTokens: 11,
          completionTokens: 20,
          audioSeconds: 0.5,
          images: 1,
          ttfbMsAvg: 100,
          durationMsAvg: 525,
        }),
        sums(["bob"], { requests: 1, errors: 1, durationMsAvg: 10 }),
        // A caller no longer in users still counts, under its id.
        sums(["gone-user"], { requests: 1 }),
      ]);
    });

    it("sums everyone's calls for scope all", async () => {
      const { store } = await fixture();
      const rows = await store.queryUsage({
        scope: "all",
        userId: "ignored",
        fromMs: 0,
        toMs: day0 + 10 * DAY_MS,
        groupBy: ["user", "day"],
      });
      expect(rows.map((row) => [...row.group, row.requests])).to.deep.equal([
        ["alice", "2024-01-01T00:00:00.000Z", 2],
        ["alice", "2024-01-02T00:00:00.000Z", 1],
        ["bob", "2024-01-01T00:00:00.000Z", 1],
        ["bob", "2024-01-03T00:00:00.000Z", 1],
        ["gone-user", "2024-01-01T00:00:00.000Z", 1],
      ]);
    });

    it("stores times as whole milliseconds", async () => {
      const store = await open();
      await store.recordUsage([usageRecord({ id: "fraction", timeMs: day0 + DAY_MS - 0.5 })]);
      const rows = await store.queryUsage({ scope: "all", userId: "", fromMs: day0, toMs: day0 + DAY_MS, groupBy: ["day"] });
      expect(rows.map((row) => row.group)).to.deep.equal([["2024-01-01T00:00:00.000Z"]]);
    });

    it("refuses a dimension it does not know", async () => {
      const store = await open();
      const error = await rejection(store.queryUsage({ scope: "all", userId: "", fromMs: 0, toMs: 1, groupBy: ["r.id" as UsageGroupBy] }));
      expect(error).to.be.instanceOf(RangeError);
    });

    it("shows when each key was last used", async () => {
      const { store, records, aliceKey1, aliceKey2, bobKey } = await fixture();
      const unused = (await store.createApiKey("alice", "unused")).record;
      const lastUsed = new Map((await store.listApiKeys()).map((key) => [key.id, key.lastUsedAtMs]));
      expect(Object.fromEntries(lastUsed)).to.deep.equal({
        [aliceKey1]: records[1]?.timeMs,
        [aliceKey2]: records[2]?.timeMs,
        [bobKey]: records[4]?.timeMs,
        [unused.id]: undefined,
      });
      expect(await store.revokeApiKey(aliceKey1)).to.deep.include({ lastUsedAtMs: records[1]?.timeMs });
    });
  });

  describe("providers", () => {
    it("lists the providers a user owns", async () => {
      const store = await open();
      const alice = (await store.createApiKey("alice")).record.userId;
      const bob = (await store.createApiKey("bob")).record.userId;
      await store.claimProvider("p3", bob);
      await store.claimProvider("p1", bob);
      await store.claimProvider("p2", alice);
      await store.claimProvider("p2", bob);
      expect(await store.ownedProviders(bob)).to.deep.equal(["p1", "p3"]);
      expect(await store.ownedProviders(alice)).to.deep.equal(["p2"]);
      expect(await store.ownedProviders("nobody")).to.deep.equal([]);
    });

    it("saves and reads back an owner's settings", async () => {
      const store = await open();
      const bob = (await store.createApiKey("bob")).record.userId;
      for (const id of ["p1", "p2", "p3"]) {
        await store.claimProvider(id, bob);
      }
      expect(await store.providerSettings()).to.deep.equal(new Map());

      const shared: ProviderSettings = {
        paused: false,
        sharing: { visibility: "users", allowedUsers: ["alice", "carol"] },
        sharingInstanceId: "agent-1",
      };
      const paused: ProviderSettings = { paused: true, sharing: undefined, sharingInstanceId: "" };
      await store.saveProviderSettings("p1", shared);
      await store.saveProviderSettings("p2", paused);
      expect(await store.providerSettings()).to.deep.equal(
        new Map([
          ["p1", shared],
          ["p2", paused],
        ]),
      );
      expect(await store.providerSettings(["p2", "p3", "unknown", "p2"])).to.deep.equal(new Map([["p2", paused]]));
      expect(await store.providerSettings([])).to.deep.equal(new Map());

      const public_: ProviderSettings = {
        paused: false,
        sharing: { visibility: "public", allowedUsers: [] },
        sharingInstanceId: "agent-2",
      };
      await store.saveProviderSettings("p1", public_);
      expect(await store.providerSettings(["p1"])).to.deep.equal(new Map([["p1", public_]]));

      // Settings are durable and shared with other processes.
      expect(await (await open()).providerSettings(["p1", "p2"])).to.deep.equal(
        new Map([
          ["p1", public_],
          ["p2", paused],
        ]),
      );
    });

    it("saves settings for claimed providers only", async () => {
      const store = await open();
      const error = await rejection(store.saveProviderSettings("unclaimed", { paused: true, sharing: undefined, sharingInstanceId: "" }));
      expect((error as Error).message).to.include('provider "unclaimed" has no owner yet');
    });

    it("reads damaged sharing data as private", async () => {
      const store = await open();
      const bob = (await store.createApiKey("bob")).record.userId;
      const damaged = [
        "not json",
        "null",
        '{"visibility":"everyone","allowedUsers":[]}',
        '{"visibility":"users","allowedUsers":[1]}',
        '{"visibility":"users"}',
      ];
      for (const [index, json] of damaged.entries()) {
        await store.claimProvider(`p${index}`, bob);
        // '0' reads as false in a PostgreSQL BOOLEAN and as 0 in a SQLite INTEGER column.
        await query("INSERT INTO provider_settings (provider_id, paused, sharing_json, sharing_instance_id) VALUES (?, '0', ?, 'agent')", [
          `p${index}`,
          json,
        ]);
      }
      const settings = await store.providerSettings();
      expect([...settings.values()].map((s) => s.sharing)).to.deep.equal(damaged.map(() => undefined));
    });
  });
}
