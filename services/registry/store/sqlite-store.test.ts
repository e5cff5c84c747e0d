import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { expect } from "chai";
import { secretOf, storeConformance, usageRecord } from "../../../test/support/store-conformance.js";
import { apiKeyMatches, generateApiKey, hashApiKey, parseApiKey } from "./api-key.js";
import type { RegistryStore } from "./registry-store.js";
import type { SqliteStoreOptions } from "./sqlite-store.js";
import { createSqliteStore } from "./sqlite-store.js";

/** KEY_SHAPE is the documented key format: `im_`, a 16-hex key id, `_`, 43 base64url characters. */
const KEY_SHAPE = /^im_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/;

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

describe("createSqliteStore: the RegistryStore conformance suite", () => {
  storeConformance(async () => {
    const dir = mkdtempSync(join(tmpdir(), "infermesh-store-"));
    const path = join(dir, "registry.db");
    return {
      open: async (now) => createSqliteStore({ path, now }),
      query: async (sql, params = []) => {
        const raw = new Database(path);
        try {
          const statement = raw.prepare(sql);
          if (statement.reader) {
            return statement.all(...params) as Record<string, unknown>[];
          }
          statement.run(...params);
          return [];
        } finally {
          raw.close();
        }
      },
      drop: async () => rmSync(dir, { recursive: true, force: true }),
    };
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
