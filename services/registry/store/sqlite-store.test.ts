import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { apiKeyMatches, generateApiKey, hashApiKey, parseApiKey } from "./api-key.js";
import type { RegistryStore } from "./registry-store.js";
import type { SqliteStoreOptions } from "./sqlite-store.js";
import { createSqliteStore, InvalidUserNameError } from "./sqlite-store.js";

/** KEY_SHAPE is the documented key format: `im_`, a 16-hex key id, `_`, 43 base64url characters. */
const KEY_SHAPE = /^im_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/;

/** secretOf is the part of a key after its id, the part that must never reach the disk. */
function secretOf(apiKey: string): string {
  return apiKey.slice("im_".length + 16 + 1);
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
});
