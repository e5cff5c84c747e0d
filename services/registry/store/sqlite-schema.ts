import type Database from "better-sqlite3";

/** SQLITE_SCHEMA_VERSION is the schema this code reads and writes, kept in the `user_version` pragma. */
export const SQLITE_SCHEMA_VERSION = 3;

/**
 * SCHEMA_V1 is version 1: users, their API keys and who owns which provider id. Every statement is idempotent, so
 * that opening an existing file is harmless.
 */
const SCHEMA_V1 = `
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

/**
 * USERS_V2_COLUMNS are the columns version 2 adds to users. SQLite has no ADD COLUMN IF NOT EXISTS, so
 * addMissingColumns adds each only when table_info lacks it.
 */
const USERS_V2_COLUMNS: readonly (readonly [name: string, definition: string])[] = [
  ["password_hash", "TEXT NULL"],
  ["disabled_at_ms", "INTEGER NULL"],
];

/**
 * SCHEMA_V2 is what version 2 adds besides USERS_V2_COLUMNS: invites, sessions, usage and provider settings. Tokens
 * and session secrets are stored as SHA-256 hashes only. The types are plain SQL so that a PostgreSQL store can
 * mirror the tables (BLOB as BYTEA, millisecond INTEGER columns as BIGINT).
 */
const SCHEMA_V2 = `
  CREATE INDEX IF NOT EXISTS providers_owner_user_id ON providers (owner_user_id);
  CREATE TABLE IF NOT EXISTS invites (
    token_hash BLOB PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    used_at_ms INTEGER NULL
  );
  CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    secret_hash BLOB NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER NULL
  );
  CREATE INDEX IF NOT EXISTS sessions_user_id ON sessions (user_id);
  CREATE TABLE IF NOT EXISTS usage (
    id TEXT PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    provider_owner_id TEXT NOT NULL,
    provider_name TEXT NOT NULL,
    model TEXT NOT NULL,
    operation TEXT NOT NULL,
    status INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    audio_seconds REAL NOT NULL,
    images INTEGER NOT NULL,
    ttfb_ms REAL NOT NULL,
    duration_ms REAL NOT NULL
  );
  CREATE INDEX IF NOT EXISTS usage_time_ms ON usage (time_ms);
  CREATE INDEX IF NOT EXISTS usage_user_id_time_ms ON usage (user_id, time_ms);
  CREATE INDEX IF NOT EXISTS usage_provider_owner_id_time_ms ON usage (provider_owner_id, time_ms);
  CREATE INDEX IF NOT EXISTS usage_key_id_time_ms ON usage (key_id, time_ms);
  CREATE TABLE IF NOT EXISTS provider_settings (
    provider_id TEXT PRIMARY KEY REFERENCES providers (id),
    paused INTEGER NOT NULL,
    sharing_json TEXT NULL,
    sharing_instance_id TEXT NOT NULL
  );
`;

/**
 * INVITES_V3_COLUMNS are the columns version 3 adds to invites: what a token does, set a password (the invites of
 * version 2, hence the default) or sign in once. A token works only for its own purpose.
 */
const INVITES_V3_COLUMNS: readonly (readonly [name: string, definition: string])[] = [
  ["purpose", "TEXT NOT NULL DEFAULT 'password' CHECK (purpose IN ('password', 'sign_in'))"],
];

/**
 * MIGRATIONS brings a file from one version to the next: MIGRATIONS[v] turns version v into v + 1. A fresh file
 * (version 0) runs them all, so every new store goes through the same steps as an upgraded one.
 */
const MIGRATIONS: readonly ((db: Database.Database) => void)[] = [
  (db) => db.exec(SCHEMA_V1),
  (db) => {
    addMissingColumns(db, "users", USERS_V2_COLUMNS);
    db.exec(SCHEMA_V2);
  },
  (db) => addMissingColumns(db, "invites", INVITES_V3_COLUMNS),
];

/**
 * migrateSqliteSchema brings the file to SQLITE_SCHEMA_VERSION and refuses one written by a newer version of
 * infermesh. It runs in one IMMEDIATE transaction, so that two processes opening a file together migrate it once.
 */
export function migrateSqliteSchema(db: Database.Database): void {
  db.transaction(() => {
    const version = db.pragma("user_version", { simple: true });
    if (typeof version !== "number") {
      throw new Error(`user_version reads as ${String(version)}, not a number`);
    }
    if (version > SQLITE_SCHEMA_VERSION) {
      throw new Error(`schema version ${version} is newer than the ${SQLITE_SCHEMA_VERSION} this infermesh supports`);
    }
    for (let from = version; from < SQLITE_SCHEMA_VERSION; from++) {
      const step = MIGRATIONS[from];
      if (step === undefined) {
        throw new Error(`no migration from schema version ${from}`);
      }
      step(db);
    }
    if (version !== SQLITE_SCHEMA_VERSION) {
      db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION}`);
    }
  }).immediate();
}

/** addMissingColumns adds each of columns to table unless a column of that name is already there. */
function addMissingColumns(db: Database.Database, table: string, columns: readonly (readonly [name: string, definition: string])[]): void {
  const present = new Set(
    db
      .prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('${table}')`)
      .all()
      .map((row) => row.name),
  );
  for (const [name, definition] of columns) {
    if (!present.has(name)) {
      db.exec(`ALTER TABLE ${table} ADD COLUMN ${name} ${definition}`);
    }
  }
}
