import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { apiKeyMatches, generateApiKey, hashApiKey, parseApiKey } from "./api-key.js";
import type { ApiKeyFilter, ApiKeyRecord, CreatedApiKey, Principal, RegistryStore, User } from "./registry-store.js";

/** SqliteStoreOptions configures createSqliteStore. */
export interface SqliteStoreOptions {
  /** path is the database file, created with its parent directory if missing, or ":memory:" for tests. */
  readonly path: string;
  /** now is the clock for createdAtMs and revokedAtMs, in milliseconds since the epoch; Date.now by default. */
  readonly now?: () => number;
}

/**
 * DEFAULT_BUSY_TIMEOUT_MS is how long a write waits for another process's lock, since `infermesh keys create` writes
 * to the file a running registry holds open.
 */
export const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/** SCHEMA_VERSION is the schema this code reads and writes, kept in the `user_version` pragma for migrations. */
const SCHEMA_VERSION = 1;

/** SCHEMA is version 1 of the schema; every statement is idempotent so that opening an existing file is harmless. */
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    created_at_ms INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    key_hash BLOB NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER NULL
  );
  CREATE INDEX IF NOT EXISTS api_keys_user_id ON api_keys (user_id);
  CREATE TABLE IF NOT EXISTS providers (
    id TEXT PRIMARY KEY,
    owner_user_id TEXT NOT NULL REFERENCES users (id),
    created_at_ms INTEGER NOT NULL
  );
`;

/** USER_NAME_PATTERN is what a user name may be: short, and safe to print in logs, tables and shell commands. */
const USER_NAME_PATTERN = /^[A-Za-z0-9._@-]{1,64}$/;

/** InvalidUserNameError reports a user name outside USER_NAME_PATTERN, so callers can tell bad input from failures. */
export class InvalidUserNameError extends Error {
  override readonly name = "InvalidUserNameError";

  constructor(readonly userName: string) {
    const shown = userName.length > 80 ? `${userName.slice(0, 80)}…` : userName;
    super(`invalid user name ${JSON.stringify(shown)}: use 1 to 64 characters from A-Z, a-z, 0-9, ".", "_", "@", "-"`);
  }
}

/** UserRow is a users row as selected. */
interface UserRow {
  id: string;
  name: string;
  created_at_ms: number;
}

/** ApiKeyRow is an api_keys row joined with its user's name, without the hash. */
interface ApiKeyRow {
  id: string;
  user_id: string;
  user_name: string;
  label: string;
  created_at_ms: number;
  revoked_at_ms: number | null;
}

/** CredentialRow is what authenticate needs to check a presented key. */
interface CredentialRow {
  user_id: string;
  user_name: string;
  key_hash: Buffer;
  revoked_at_ms: number | null;
}

/** API_KEY_COLUMNS selects an ApiKeyRow from api_keys k joined with users u. */
const API_KEY_COLUMNS = `k.id, k.user_id, u.name AS user_name, k.label, k.created_at_ms, k.revoked_at_ms`;

/**
 * createSqliteStore opens (or creates) the embedded SQLite store at options.path. Every read goes to the database,
 * never to a cache, so keys created or revoked by another process on the same file take effect at once.
 */
export function createSqliteStore(options: SqliteStoreOptions): RegistryStore {
  const now = options.now ?? Date.now;
  const db = openDatabase(options.path);

  const insertUser = db.prepare<[id: string, name: string, createdAtMs: number]>(
    `INSERT OR IGNORE INTO users (id, name, created_at_ms) VALUES (?, ?, ?)`,
  );
  const selectUserByName = db.prepare<[name: string], UserRow>(`SELECT id, name, created_at_ms FROM users WHERE name = ?`);
  const insertApiKey = db.prepare<[id: string, userId: string, keyHash: Buffer, label: string, createdAtMs: number]>(
    `INSERT INTO api_keys (id, user_id, key_hash, label, created_at_ms) VALUES (?, ?, ?, ?, ?)`,
  );
  const selectApiKey = db.prepare<[id: string], ApiKeyRow>(
    `SELECT ${API_KEY_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = ?`,
  );
  const selectCredential = db.prepare<[id: string], CredentialRow>(
    `SELECT k.user_id, u.name AS user_name, k.key_hash, k.revoked_at_ms
       FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = ?`,
  );
  // SQLite binds no booleans, hence include_revoked as 0 or 1; rowid breaks ties between keys made in the same ms.
  const selectApiKeys = db.prepare<{ user_name: string | null; include_revoked: 0 | 1 }, ApiKeyRow>(
    `SELECT ${API_KEY_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id
      WHERE (@user_name IS NULL OR u.name = @user_name) AND (@include_revoked OR k.revoked_at_ms IS NULL)
      ORDER BY k.created_at_ms, k.rowid`,
  );
  // Revoking twice keeps the first revocation time.
  const updateRevoked = db.prepare<[revokedAtMs: number, id: string]>(
    `UPDATE api_keys SET revoked_at_ms = ? WHERE id = ? AND revoked_at_ms IS NULL`,
  );
  const insertProvider = db.prepare<[id: string, ownerUserId: string, createdAtMs: number]>(
    `INSERT OR IGNORE INTO providers (id, owner_user_id, created_at_ms) VALUES (?, ?, ?)`,
  );
  const selectProviderOwner = db.prepare<[id: string], { owner_user_id: string }>(`SELECT owner_user_id FROM providers WHERE id = ?`);

  const createApiKeyTransaction = db.transaction((userName: string, label: string): CreatedApiKey => {
    const createdAtMs = now();
    insertUser.run(randomUUID(), userName, createdAtMs);
    const user = selectUserByName.get(userName);
    if (user === undefined) {
      throw new Error(`user ${JSON.stringify(userName)} vanished while its key was being created`);
    }
    const { apiKey, keyId } = generateApiKey();
    insertApiKey.run(keyId, user.id, hashApiKey(apiKey), label, createdAtMs);
    return {
      apiKey,
      record: { id: keyId, userId: user.id, userName: user.name, label, createdAtMs, revokedAtMs: undefined },
    };
  });

  const revokeApiKeyTransaction = db.transaction((keyId: string): ApiKeyRecord | undefined => {
    updateRevoked.run(now(), keyId);
    const row = selectApiKey.get(keyId);
    return row === undefined ? undefined : toApiKeyRecord(row);
  });

  // The methods are async so that a synchronous failure (bad input, closed database) reaches callers as a rejection.
  return {
    async createApiKey(userName: string, label?: string): Promise<CreatedApiKey> {
      if (!USER_NAME_PATTERN.test(userName)) {
        throw new InvalidUserNameError(userName);
      }
      // IMMEDIATE takes the write lock up front, so a concurrent writer waits on busy_timeout instead of failing.
      return createApiKeyTransaction.immediate(userName, label ?? "");
    },

    async authenticate(apiKey: string): Promise<Principal | undefined> {
      const parsed = parseApiKey(apiKey);
      if (parsed === undefined) {
        return undefined;
      }
      const row = selectCredential.get(parsed.keyId);
      if (row === undefined || !apiKeyMatches(apiKey, row.key_hash) || row.revoked_at_ms !== null) {
        return undefined;
      }
      return { userId: row.user_id, userName: row.user_name, keyId: parsed.keyId };
    },

    async listApiKeys(filter?: ApiKeyFilter): Promise<ApiKeyRecord[]> {
      const rows = selectApiKeys.all({
        user_name: filter?.userName ?? null,
        include_revoked: filter?.includeRevoked === true ? 1 : 0,
      });
      return rows.map(toApiKeyRecord);
    },

    async revokeApiKey(keyId: string): Promise<ApiKeyRecord | undefined> {
      return revokeApiKeyTransaction.immediate(keyId);
    },

    async findUser(userName: string): Promise<User | undefined> {
      const row = selectUserByName.get(userName);
      return row === undefined ? undefined : { id: row.id, name: row.name, createdAtMs: row.created_at_ms };
    },

    async claimProvider(providerId: string, userId: string): Promise<string> {
      // A claim is never deleted or changed, so the row read back after the insert is the one that won.
      insertProvider.run(providerId, userId, now());
      const row = selectProviderOwner.get(providerId);
      if (row === undefined) {
        throw new Error(`provider ${JSON.stringify(providerId)} has no owner after being claimed`);
      }
      return row.owner_user_id;
    },

    async close(): Promise<void> {
      db.close();
    },
  };
}

/**
 * openDatabase opens the file, configures the connection and brings the schema to SCHEMA_VERSION. Any failure
 * becomes one Error naming the path and the cause, which the CLI prints as a single line.
 */
function openDatabase(path: string): Database.Database {
  let db: Database.Database | undefined;
  try {
    if (path !== ":memory:") {
      mkdirSync(dirname(path), { recursive: true });
    }
    db = new Database(path);
    // busy_timeout comes first so that even switching to WAL waits for a process holding the lock.
    db.pragma(`busy_timeout = ${DEFAULT_BUSY_TIMEOUT_MS}`);
    // WAL lets the registry keep reading while the CLI writes to the same file.
    db.pragma("journal_mode = WAL");
    db.pragma("foreign_keys = ON");
    migrate(db);
    return db;
  } catch (error) {
    db?.close();
    const cause = error instanceof Error ? error.message : String(error);
    throw new Error(`cannot open registry store ${path}: ${cause}`, { cause: error });
  }
}

/** migrate creates the schema in a fresh file and refuses a file written by a newer version of infermesh. */
function migrate(db: Database.Database): void {
  // IMMEDIATE so that two processes opening a fresh file together do not both create the schema.
  db.transaction(() => {
    const version = db.pragma("user_version", { simple: true });
    if (typeof version !== "number") {
      throw new Error(`user_version reads as ${String(version)}, not a number`);
    }
    if (version > SCHEMA_VERSION) {
      throw new Error(`schema version ${version} is newer than the ${SCHEMA_VERSION} this infermesh supports`);
    }
    if (version === SCHEMA_VERSION) {
      return;
    }
    db.exec(SCHEMA);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}

/** toApiKeyRecord maps a row to the store's record, turning SQL NULL into undefined. */
function toApiKeyRecord(row: ApiKeyRow): ApiKeyRecord {
  return {
    id: row.id,
    userId: row.user_id,
    userName: row.user_name,
    label: row.label,
    createdAtMs: row.created_at_ms,
    revokedAtMs: row.revoked_at_ms ?? undefined,
  };
}
