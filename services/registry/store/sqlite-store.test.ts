import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { expect } from "chai";
import { apiKeyMatches, generateApiKey, hashApiKey, parseApiKey } from "./api-key.js";
import type { ProviderSettings, RegistryStore, UsageGroupBy, UsageRecordData, UsageRowData } from "./registry-store.js";
import type { SqliteStoreOptions } from "./sqlite-store.js";
import { createSqliteStore, InvalidUserNameError } from "./sqlite-store.js";
import { SessionRefusedError, UserExistsError, WeakPasswordError } from "./store-errors.js";

/** KEY_SHAPE is the documented key format: `im_`, a 16-hex key id, `_`, 43 base64url characters. */
const KEY_SHAPE = /^im_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/;

/** secretOf is the part of a key after its id, the part that must never reach the disk. */
function secretOf(apiKey: string): string {
  return apiKey.slice("im_".length + 16 + 1);
}

/** USAGE_DAY0 is the UTC start of the day the usage tests' records fall on. */
const USAGE_DAY0 = Date.UTC(2024, 0, 1);

/** usageRecord is a usage record at USAGE_DAY0 with neutral values, changed as given. */
function usageRecord(changes: Partial<UsageRecordData> & Pick<UsageRecordData, "id">): UsageRecordData {
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

describe("api-key", () => {
  it("generates keys of the documented shape whose id is the one returned", () => {
    const { apiKey, keyId } = generateApiKey();
    expect(apiKey).to.match(KEY_SHAPE);
    expect(apiKey.startsWith(`im_${keyId}_`)).to.equal(true);
    expect(keyId).to.match(/^[0-9a-f]{16}$/);
    expect(Buffer.from(secretOf(apiKey), "base64url")).to.have.length(32);
    expect(parseApiKey(apiKey)).to.deep.equal({ keyId });
  });

  it("generates unique keys and key ids", () => {
    const keys = new Set<string>();
    const keyIds = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const { apiKey, keyId } = generateApiKey();
      keys.add(apiKey);
      keyIds.add(keyId);
    }
    expect(keys.size).to.equal(2000);
    expect(keyIds.size).to.equal(2000);
  });

  it("rejects keys of any other shape without throwing", () => {
    const { apiKey, keyId } = generateApiKey();
    const secret = secretOf(apiKey);
    const bad = [
      "",
      "im_",
      `${apiKey}A`,
      apiKey.slice(0, -1),
      `${apiKey}${"A".repeat(1_000_000)}`,
      `sk_${keyId}_${secret}`,
      `IM_${keyId}_${secret}`,
      `im_${keyId.toUpperCase().replace(/[0-9]/g, "A")}_${secret}`,
      `im_${"g".repeat(16)}_${secret}`,
      `im_${keyId}-${secret}`,
      `im_${keyId}_${secret.slice(0, -1)}=`,
      `im_${keyId}_${secret.slice(0, -1)}é`,
      `im_${keyId}_${secret.slice(0, -2)}😀`,
      ` ${apiKey}`,
      `${apiKey}\n`,
    ];
    for (const candidate of bad) {
      expect(parseApiKey(candidate), JSON.stringify(candidate.slice(0, 80))).to.equal(undefined);
    }
  });

  it("matches a key against its own hash only, whatever the stored hash's length", () => {
    const { apiKey } = generateApiKey();
    const other = generateApiKey().apiKey;
    const hash = hashApiKey(apiKey);
    expect(hash).to.have.length(32);
    expect(apiKeyMatches(apiKey, hash)).to.equal(true);
    expect(apiKeyMatches(other, hash)).to.equal(false);
    expect(apiKeyMatches(apiKey, hash.subarray(0, 31))).to.equal(false);
    expect(apiKeyMatches(apiKey, new Uint8Array(0))).to.equal(false);
  });
});

describe("createSqliteStore", () => {
  let dir: string;
  let clockMs: number;
  let opened: RegistryStore[];

  /** open opens a store on the test's file unless told otherwise, with the test's clock, and closes it afterwards. */
  function open(options: Partial<SqliteStoreOptions> = {}): RegistryStore {
    const store = createSqliteStore({ path: join(dir, "registry.db"), now: () => clockMs, ...options });
    opened.push(store);
    return store;
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "infermesh-store-"));
    clockMs = 1_700_000_000_000;
    opened = [];
  });

  afterEach(async () => {
    for (const store of opened) {
      await store.close();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("authenticates a created key as its user", async () => {
    const store = open();
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
    const store = open();
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
    const store = open();
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
    const store = open();
    await store.createApiKey("alice");
    expect(await store.revokeApiKey(generateApiKey().keyId)).to.equal(undefined);
    expect(await store.revokeApiKey("")).to.equal(undefined);
  });

  it("lists keys oldest first, by user, hiding revoked ones unless asked", async () => {
    const store = open();
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
    const store = open();
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

  it("never writes a key or its secret to disk", async () => {
    const store = open();
    const created = [await store.createApiKey("alice"), await store.createApiKey("bob"), await store.createApiKey("alice", "second")];

    /** expectNoKeyOnDisk reads every file of the database (main, -wal, -shm) and looks for each key. */
    function expectNoKeyOnDisk(): void {
      const files = readdirSync(dir);
      expect(files).to.include("registry.db");
      for (const file of files) {
        const bytes = readFileSync(join(dir, file));
        const text = bytes.toString("utf8");
        for (const { apiKey } of created) {
          const secret = secretOf(apiKey);
          expect(text.includes(apiKey), `key in ${file}`).to.equal(false);
          expect(text.includes(secret), `secret in ${file}`).to.equal(false);
          expect(bytes.indexOf(Buffer.from(apiKey, "utf8")), `key bytes in ${file}`).to.equal(-1);
          expect(bytes.indexOf(Buffer.from(secret, "utf8")), `secret bytes in ${file}`).to.equal(-1);
          expect(bytes.indexOf(Buffer.from(secret, "base64url")), `raw secret in ${file}`).to.equal(-1);
        }
      }
    }

    // While open, the writes sit in the -wal file; after close they are checkpointed into the main file.
    expect(readdirSync(dir)).to.include("registry.db-wal");
    expectNoKeyOnDisk();
    await store.close();
    opened = [];
    expectNoKeyOnDisk();

    // The hash is what was stored, so the keys still work after reopening.
    const reopened = open();
    for (const { apiKey, record } of created) {
      expect(await reopened.authenticate(apiKey)).to.deep.include({ keyId: record.id });
    }
  });

  it("sees keys created and revoked by another process on the same file at once", async () => {
    const registry = open();
    await registry.createApiKey("alice");
    const cli = open();

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
    const store = open();
    const alice = (await store.createApiKey("alice")).record.userId;
    const bob = (await store.createApiKey("bob")).record.userId;

    expect(await store.claimProvider("gpu-box-1", alice)).to.equal(alice);
    expect(await store.claimProvider("gpu-box-1", bob)).to.equal(alice);
    expect(await store.claimProvider("gpu-box-1", alice)).to.equal(alice);
    expect(await store.claimProvider("gpu-box-2", bob)).to.equal(bob);

    // The claim is durable and shared with other processes.
    const other = open();
    expect(await other.claimProvider("gpu-box-1", bob)).to.equal(alice);
  });

  it("uses the injected clock", async () => {
    const store = open();
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
    const store = open();
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
    const store = open();
    expect(await store.findUser("nobody")).to.equal(undefined);
  });

  it("creates the missing parent directory of the database", async () => {
    const path = join(dir, "nested", "deeper", "registry.db");
    const store = open({ path });
    await store.createApiKey("alice");
    expect(readdirSync(join(dir, "nested", "deeper"))).to.include("registry.db");
  });

  it("works in memory", async () => {
    const store = open({ path: ":memory:" });
    const { apiKey } = await store.createApiKey("alice");
    expect(await store.authenticate(apiKey)).to.deep.include({ userName: "alice" });
  });

  it("names the path and the cause when the file is not a database", () => {
    const path = join(dir, "not-a-database.db");
    writeFileSync(path, "this is a text file, not SQLite\n".repeat(100));
    expect(() => open({ path }))
      .to.throw(Error)
      .with.property("message")
      .that.includes(path)
      .and.includes("not a database");
  });

  it("names the path when it cannot be opened", () => {
    // A directory where the file should be fails for every user, root included.
    const path = join(dir, "a-directory.db");
    open({ path: join(path, "inside.db") });
    expect(() => open({ path }))
      .to.throw(Error)
      .with.property("message")
      .that.includes(path);
  });

  /** rawDatabase opens the test's file directly, as another program would, for the caller to close. */
  function rawDatabase(): Database.Database {
    return new Database(join(dir, "registry.db"));
  }

  /** rejection awaits promise and returns what it rejected with, failing the test when it resolves. */
  async function rejection(promise: Promise<unknown>): Promise<unknown> {
    try {
      await promise;
    } catch (error) {
      return error;
    }
    expect.fail("expected a rejection");
  }

  describe("accounts", () => {
    it("creates an account without a password and an invite that sets one once", async () => {
      const store = open();
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
      const store = open();
      const early = await store.createUser("early", 60_000);
      const late = await store.createUser("late", 60_000);
      clockMs += 59_999;
      expect(await store.acceptInvite(early.inviteToken, "in time!")).to.deep.include({ name: "early", hasPassword: true });
      clockMs += 1;
      expect(await store.acceptInvite(late.inviteToken, "too late")).to.equal(undefined);
      expect(await store.findUser("late")).to.deep.include({ hasPassword: false });
    });

    it("refuses unknown and malformed invite tokens, and weak passwords before any token", async () => {
      const store = open();
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
      const store = open();
      const { inviteToken } = await store.createUser("alice", 60_000);
      await store.setUserDisabled("alice", true);
      expect(await store.acceptInvite(inviteToken, "a fine password")).to.equal(undefined);
      await store.setUserDisabled("alice", false);
      expect(await store.acceptInvite(inviteToken, "a fine password")).to.deep.include({ name: "alice", hasPassword: true });
    });

    it("stores only the SHA-256 of an invite token", async () => {
      const store = open();
      const { inviteToken, user, inviteExpiresAtMs } = await store.createUser("alice", 60_000);
      const raw = rawDatabase();
      try {
        const rows = raw.prepare("SELECT * FROM invites").all();
        expect(rows).to.deep.equal([
          {
            token_hash: createHash("sha256").update(inviteToken).digest(),
            user_id: user.id,
            created_at_ms: clockMs,
            expires_at_ms: inviteExpiresAtMs,
            used_at_ms: null,
            purpose: "password",
          },
        ]);
      } finally {
        raw.close();
      }
    });

    it("refuses taken and invalid names and bad invite lifetimes", async () => {
      const store = open();
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
      const store = open();
      expect(await rejection(store.signUp("alice", "1234567"))).to.be.instanceOf(WeakPasswordError);
      expect(await store.findUser("alice")).to.equal(undefined);

      const user = await store.signUp("alice", "12345678");
      expect(user).to.deep.equal({ id: user.id, name: "alice", createdAtMs: clockMs, disabledAtMs: undefined, hasPassword: true });
      expect(await store.checkPassword("alice", "12345678")).to.deep.equal(user);
      expect(await store.checkPassword("alice", "12345679")).to.equal(undefined);
      expect(await store.checkPassword("Alice", "12345678")).to.equal(undefined);
    });

    it("checks passwords of unknown accounts and accounts without one in about the time of a real check", async () => {
      const store = open();
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
      const store = open();
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
      const store = open();
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
      const store = open();
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
      const store = open();
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
      const store = open();
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
      const store = open();
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
      const store = open();
      await store.createApiKey("alice");
      await store.setUserDisabled("alice", true);
      const link = (await store.createSignInLink("alice", 60_000))?.token as string;
      expect(await store.useSignInLink(link)).to.equal(undefined);
      await store.setUserDisabled("alice", false);
      expect(await store.useSignInLink(link)).to.deep.include({ name: "alice", disabledAtMs: undefined });
    });

    it("makes no link for an unknown name or a bad lifetime, and no account either", async () => {
      const store = open();
      await store.createApiKey("alice");
      expect(await store.createSignInLink("nobody", 60_000)).to.equal(undefined);
      expect(await store.createSignInLink("al ice", 60_000)).to.equal(undefined);
      for (const ttl of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        expect(await rejection(store.createSignInLink("alice", ttl)), String(ttl)).to.be.instanceOf(RangeError);
      }
      expect((await store.listUsers()).map((user) => user.name)).to.deep.equal(["alice"]);
      const raw = rawDatabase();
      try {
        expect(raw.prepare("SELECT COUNT(*) AS n FROM invites").get()).to.deep.equal({ n: 0 });
      } finally {
        raw.close();
      }
    });

    it("stores only the SHA-256 of a link's token, marked as a sign-in link", async () => {
      const store = open();
      const { record } = await store.createApiKey("alice");
      const link = await store.createSignInLink("alice", 60_000);
      clockMs += 5;
      await store.useSignInLink(link?.token as string);
      const raw = rawDatabase();
      try {
        expect(raw.prepare("SELECT * FROM invites").all()).to.deep.equal([
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
      } finally {
        raw.close();
      }
    });
  });

  describe("sessions", () => {
    it("resolves a session to its user under the session's public id until it expires", async () => {
      const store = open();
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
      const store = open();
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
      const store = open();
      const user = await store.signUp("alice", "a fine password");
      expect(await rejection(store.createSession("no-such-user", 60_000))).to.be.instanceOf(SessionRefusedError);
      for (const ttl of [0, -5, 0.5, Number.NaN]) {
        expect(await rejection(store.createSession(user.id, ttl)), String(ttl)).to.be.instanceOf(RangeError);
      }
    });

    it("revokes one session, once", async () => {
      const store = open();
      const user = await store.signUp("alice", "a fine password");
      const first = await store.createSession(user.id, 60_000);
      const second = await store.createSession(user.id, 60_000);
      expect(await store.revokeSession(first.sessionId)).to.equal(true);
      expect(await store.revokeSession(first.sessionId)).to.equal(false);
      expect(await store.resolveSession(first.sessionId)).to.equal(undefined);
      expect(await store.resolveSession(second.sessionId)).to.deep.include({ userName: "alice" });
    });

    it("revokes every live session of one user and counts them", async () => {
      const store = open();
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
      const store = open();
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
      const raw = rawDatabase();
      try {
        const ids = (raw.prepare("SELECT id FROM sessions").all() as { id: string }[]).map((row) => row.id);
        expect(ids).to.have.length(2).and.include(live.sessionId.slice(4, 20));
        expect(ids).not.to.include.members([expiring.sessionId.slice(4, 20), revoked.sessionId.slice(4, 20)]);
        const invites = raw.prepare("SELECT user_id FROM invites").all() as { user_id: string }[];
        expect(
          invites.map((row) => row.user_id),
          "bob's expired invite is gone, carol's used one stays",
        ).to.deep.equal([fresh.user.id]);
      } finally {
        raw.close();
      }
      expect(await store.acceptInvite(stale.inviteToken, "bob's password")).to.equal(undefined);
    });

    it("stores only the SHA-256 of a session id", async () => {
      const store = open();
      const user = await store.signUp("alice", "a fine password");
      const { sessionId, expiresAtMs } = await store.createSession(user.id, 60_000);
      const secret = sessionId.slice(4 + 16 + 1);
      const raw = rawDatabase();
      try {
        const rows = raw.prepare("SELECT * FROM sessions").all() as Record<string, unknown>[];
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
      } finally {
        raw.close();
      }
    });
  });

  it("never writes a password, session id, invite token or sign-in link to disk", async () => {
    const store = open();
    const invited = await store.createUser("alice", 60_000);
    await store.acceptInvite(invited.inviteToken, "alice's password");
    const bob = await store.signUp("bob", "bob's password");
    const { sessionId } = await store.createSession(bob.id, 60_000);
    const used = (await store.createSignInLink("bob", 60_000))?.token as string;
    await store.useSignInLink(used);
    const unused = (await store.createSignInLink("bob", 60_000))?.token as string;
    await store.close();
    opened = [];

    const secrets = ["alice's password", "bob's password", invited.inviteToken, sessionId, sessionId.slice(21), used, unused];
    for (const file of readdirSync(dir)) {
      const bytes = readFileSync(join(dir, file));
      for (const secret of secrets) {
        expect(bytes.indexOf(Buffer.from(secret, "utf8")), `${secret} in ${file}`).to.equal(-1);
      }
      for (const token of [invited.inviteToken, used, unused]) {
        expect(bytes.indexOf(Buffer.from(token, "base64url")), `raw token in ${file}`).to.equal(-1);
      }
      expect(bytes.indexOf(Buffer.from(sessionId.slice(21), "base64url")), `raw session secret in ${file}`).to.equal(-1);
    }
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
      const store = open();
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
      const store = open();
      await store.recordUsage([usageRecord({ id: "fraction", timeMs: day0 + DAY_MS - 0.5 })]);
      const rows = await store.queryUsage({ scope: "all", userId: "", fromMs: day0, toMs: day0 + DAY_MS, groupBy: ["day"] });
      expect(rows.map((row) => row.group)).to.deep.equal([["2024-01-01T00:00:00.000Z"]]);
    });

    it("refuses a dimension it does not know", async () => {
      const store = open();
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
      const store = open();
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
      const store = open();
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
      expect(await open().providerSettings(["p1", "p2"])).to.deep.equal(
        new Map([
          ["p1", public_],
          ["p2", paused],
        ]),
      );
    });

    it("saves settings for claimed providers only", async () => {
      const store = open();
      const error = await rejection(store.saveProviderSettings("unclaimed", { paused: true, sharing: undefined, sharingInstanceId: "" }));
      expect((error as Error).message).to.include('provider "unclaimed" has no owner yet');
    });

    it("reads damaged sharing data as private", async () => {
      const store = open();
      const bob = (await store.createApiKey("bob")).record.userId;
      const damaged = [
        "not json",
        "null",
        '{"visibility":"everyone","allowedUsers":[]}',
        '{"visibility":"users","allowedUsers":[1]}',
        '{"visibility":"users"}',
      ];
      const raw = rawDatabase();
      try {
        for (const [index, json] of damaged.entries()) {
          await store.claimProvider(`p${index}`, bob);
          raw.prepare("INSERT INTO provider_settings VALUES (?, 0, ?, 'agent')").run(`p${index}`, json);
        }
      } finally {
        raw.close();
      }
      const settings = await store.providerSettings();
      expect([...settings.values()].map((s) => s.sharing)).to.deep.equal(damaged.map(() => undefined));
    });
  });

  describe("schema", () => {
    /** SCHEMA_V1 is the schema infermesh wrote before accounts, as it was released. */
    const SCHEMA_V1 = `
      CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, created_at_ms INTEGER NOT NULL);
      CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users (id),
        key_hash BLOB NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        created_at_ms INTEGER NOT NULL,
        revoked_at_ms INTEGER NULL
      );
      CREATE INDEX api_keys_user_id ON api_keys (user_id);
      CREATE TABLE providers (id TEXT PRIMARY KEY, owner_user_id TEXT NOT NULL REFERENCES users (id), created_at_ms INTEGER NOT NULL);
      PRAGMA user_version = 1;
    `;

    /**
     * SCHEMA_V2 is the schema infermesh wrote at version 2, as it was released: version 1's tables, with passwords and
     * disabling on users, and invites, sessions, usage and provider settings.
     */
    const SCHEMA_V2 = `
      CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT UNIQUE NOT NULL,
        created_at_ms INTEGER NOT NULL,
        password_hash TEXT NULL,
        disabled_at_ms INTEGER NULL
      );
      CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users (id),
        key_hash BLOB NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        created_at_ms INTEGER NOT NULL,
        revoked_at_ms INTEGER NULL
      );
      CREATE INDEX api_keys_user_id ON api_keys (user_id);
      CREATE TABLE providers (id TEXT PRIMARY KEY, owner_user_id TEXT NOT NULL REFERENCES users (id), created_at_ms INTEGER NOT NULL);
      CREATE INDEX providers_owner_user_id ON providers (owner_user_id);
      CREATE TABLE invites (
        token_hash BLOB PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users (id),
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        used_at_ms INTEGER NULL
      );
      CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        secret_hash BLOB NOT NULL,
        user_id TEXT NOT NULL REFERENCES users (id),
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        revoked_at_ms INTEGER NULL
      );
      CREATE INDEX sessions_user_id ON sessions (user_id);
      CREATE TABLE usage (
        id TEXT PRIMARY KEY, time_ms INTEGER NOT NULL, user_id TEXT NOT NULL, key_id TEXT NOT NULL,
        provider_id TEXT NOT NULL, provider_owner_id TEXT NOT NULL, provider_name TEXT NOT NULL, model TEXT NOT NULL,
        operation TEXT NOT NULL, status INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
        audio_seconds REAL NOT NULL, images INTEGER NOT NULL, ttfb_ms REAL NOT NULL, duration_ms REAL NOT NULL
      );
      CREATE INDEX usage_time_ms ON usage (time_ms);
      CREATE INDEX usage_user_id_time_ms ON usage (user_id, time_ms);
      CREATE INDEX usage_provider_owner_id_time_ms ON usage (provider_owner_id, time_ms);
      CREATE INDEX usage_key_id_time_ms ON usage (key_id, time_ms);
      CREATE TABLE provider_settings (
        provider_id TEXT PRIMARY KEY REFERENCES providers (id),
        paused INTEGER NOT NULL,
        sharing_json TEXT NULL,
        sharing_instance_id TEXT NOT NULL
      );
      PRAGMA user_version = 2;
    `;

    /** writeVersion1File makes a version 1 file holding alice, one of her keys and her provider. */
    function writeVersion1File(extraSql = ""): string {
      const { apiKey, keyId } = generateApiKey();
      const raw = rawDatabase();
      try {
        raw.exec(SCHEMA_V1);
        raw.exec(extraSql);
        raw.prepare("INSERT INTO users (id, name, created_at_ms) VALUES ('alice-id', 'alice', 1000)").run();
        raw.prepare("INSERT INTO api_keys VALUES (?, 'alice-id', ?, 'old', 2000, NULL)").run(keyId, hashApiKey(apiKey));
        raw.prepare("INSERT INTO providers (id, owner_user_id, created_at_ms) VALUES ('gpu-1', 'alice-id', 3000)").run();
      } finally {
        raw.close();
      }
      return apiKey;
    }

    /** columnsOf lists a table's columns in the file, or nothing for a missing table. */
    function columnsOf(table: string): string[] {
      const raw = rawDatabase();
      try {
        return raw
          .prepare<[string], { name: string }>("SELECT name FROM pragma_table_info(?)")
          .all(table)
          .map((row) => row.name);
      } finally {
        raw.close();
      }
    }

    it("migrates a version 1 file, keeping its users, keys and providers", async () => {
      const apiKey = writeVersion1File();
      const store = open();
      expect(await store.authenticate(apiKey)).to.deep.equal({ userId: "alice-id", userName: "alice", keyId: apiKey.slice(3, 19) });
      expect(await store.findUser("alice")).to.deep.equal({
        id: "alice-id",
        name: "alice",
        createdAtMs: 1000,
        disabledAtMs: undefined,
        hasPassword: false,
      });
      expect(await store.claimProvider("gpu-1", "someone-else")).to.equal("alice-id");
      expect(await store.ownedProviders("alice-id")).to.deep.equal(["gpu-1"]);
      expect((await store.listApiKeys()).map((key) => [key.label, key.createdAtMs, key.lastUsedAtMs])).to.deep.equal([
        ["old", 2000, undefined],
      ]);

      await store.setPassword("alice", "a fine password");
      expect(await store.checkPassword("alice", "a fine password")).to.deep.include({ id: "alice-id" });
      const { sessionId } = await store.createSession("alice-id", 60_000);
      expect(await store.resolveSession(sessionId)).to.deep.include({ userId: "alice-id" });
      expect(await store.recordUsage([usageRecord({ id: "u1", userId: "alice-id" })])).to.equal(1);

      const raw = rawDatabase();
      try {
        expect(raw.pragma("user_version", { simple: true })).to.equal(3);
      } finally {
        raw.close();
      }
      expect(columnsOf("users")).to.deep.equal(["id", "name", "created_at_ms", "password_hash", "disabled_at_ms"]);
      expect(columnsOf("provider_settings")).to.deep.equal(["provider_id", "paused", "sharing_json", "sharing_instance_id"]);
      expect(columnsOf("invites")).to.deep.equal(["token_hash", "user_id", "created_at_ms", "expires_at_ms", "used_at_ms", "purpose"]);
    });

    it("migrates a version 2 file, whose invites keep setting passwords and never sign in", async () => {
      const raw = rawDatabase();
      const pending = "P".repeat(43);
      const used = "U".repeat(43);
      const sha256 = (token: string) => createHash("sha256").update(token).digest();
      try {
        raw.exec(SCHEMA_V2);
        raw.prepare("INSERT INTO users (id, name, created_at_ms) VALUES ('alice-id', 'alice', 1000), ('bob-id', 'bob', 1000)").run();
        const invite = raw.prepare("INSERT INTO invites VALUES (?, ?, 1000, ?, ?)");
        invite.run(sha256(pending), "alice-id", clockMs + 60_000, null);
        invite.run(sha256(used), "bob-id", clockMs + 60_000, 2000);
      } finally {
        raw.close();
      }
      const store = open();
      expect(columnsOf("invites")).to.deep.equal(["token_hash", "user_id", "created_at_ms", "expires_at_ms", "used_at_ms", "purpose"]);
      expect(await store.useSignInLink(pending), "an invite is no sign-in link").to.equal(undefined);
      expect(await store.acceptInvite(pending, "alice's password")).to.deep.include({ id: "alice-id", hasPassword: true });
      expect(await store.acceptInvite(used, "bob's password"), "used before the upgrade").to.equal(undefined);
      const link = await store.createSignInLink("bob", 60_000);
      expect(await store.useSignInLink(link?.token as string)).to.deep.include({ id: "bob-id" });
      const after = rawDatabase();
      try {
        expect(after.pragma("user_version", { simple: true })).to.equal(3);
        expect(after.prepare("SELECT user_id, purpose FROM invites ORDER BY user_id, purpose").all()).to.deep.equal([
          { user_id: "alice-id", purpose: "password" },
          { user_id: "bob-id", purpose: "password" },
          { user_id: "bob-id", purpose: "sign_in" },
        ]);
        expect(() => after.prepare("UPDATE invites SET purpose = 'anything'").run(), "purposes are checked").to.throw(/CHECK constraint/);
      } finally {
        after.close();
      }
    });

    it("creates the same schema in a fresh file as a migration does", async () => {
      writeVersion1File();
      open();
      const migrated = ["users", "api_keys", "providers", "invites", "sessions", "usage", "provider_settings"].map(columnsOf);
      await opened[0]?.close();
      opened = [];
      rmSync(join(dir, "registry.db"));
      open();
      expect(["users", "api_keys", "providers", "invites", "sessions", "usage", "provider_settings"].map(columnsOf)).to.deep.equal(
        migrated,
      );
      expect(migrated[5]).to.deep.equal([
        "id",
        "time_ms",
        "user_id",
        "key_id",
        "provider_id",
        "provider_owner_id",
        "provider_name",
        "model",
        "operation",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "audio_seconds",
        "images",
        "ttfb_ms",
        "duration_ms",
      ]);
    });

    it("indexes usage for each of its queries", () => {
      open();
      const raw = rawDatabase();
      try {
        const indexes = raw
          .prepare<[], { name: string }>(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'usage' AND sql IS NOT NULL ORDER BY name",
          )
          .all()
          .map((row) => row.name);
        expect(indexes).to.deep.equal([
          "usage_key_id_time_ms",
          "usage_provider_owner_id_time_ms",
          "usage_time_ms",
          "usage_user_id_time_ms",
        ]);
        const plan = raw
          .prepare("EXPLAIN QUERY PLAN SELECT MAX(r.time_ms) FROM usage r WHERE r.key_id = ?")
          .all("k")
          .map((row) => (row as { detail: string }).detail);
        expect(plan.join("\n")).to.include("usage_key_id_time_ms");
      } finally {
        raw.close();
      }
    });

    it("migrates a version 1 file that already has some version 2 columns", async () => {
      const apiKey = writeVersion1File("ALTER TABLE users ADD COLUMN password_hash TEXT NULL;");
      const store = open();
      expect(await store.authenticate(apiKey)).to.deep.include({ userName: "alice" });
      expect(columnsOf("users")).to.deep.equal(["id", "name", "created_at_ms", "password_hash", "disabled_at_ms"]);
    });

    it("opens a version 3 file again without changing it", async () => {
      const first = open();
      const user = await first.signUp("alice", "a fine password");
      await first.close();
      opened = [];
      const second = open();
      expect(await second.checkPassword("alice", "a fine password")).to.deep.equal(user);
    });

    it("refuses a file from a newer infermesh", () => {
      const raw = rawDatabase();
      raw.pragma("user_version = 4");
      raw.close();
      expect(() => open())
        .to.throw(Error)
        .with.property("message")
        .that.includes("schema version 4 is newer than the 3 this infermesh supports");
    });
  });
});
