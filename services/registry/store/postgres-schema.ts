import type pg from "pg";

/** POSTGRES_SCHEMA_VERSION is the schema this code reads and writes, the highest version in schema_version. */
export const POSTGRES_SCHEMA_VERSION = 1;

/**
 * MIGRATION_LOCK_KEY is the advisory lock that replicas take while migrating, so that two starting at once migrate
 * the database once. Advisory locks are per database, so other databases on the server are not held up.
 */
export const MIGRATION_LOCK_KEY = 0x696e_6665_726d_6573n;

/**
 * SCHEMA_VERSION_TABLE records each version applied. It is created before the lock's holder reads it, and is the
 * one table no migration changes.
 */
const SCHEMA_VERSION_TABLE = `
  CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied_at_ms BIGINT NOT NULL
  )
`;

/**
 * SCHEMA_V1 is the SQLite store's schema at its version 3, in PostgreSQL's types: BLOB as BYTEA, millisecond
 * INTEGER columns as BIGINT, REAL as DOUBLE PRECISION, the paused flag as BOOLEAN. Text is compared and ordered
 * byte by byte (COLLATE "C"), as SQLite's BINARY collation does, so lists come out in the same order whatever the
 * database's locale. api_keys.position stands in for SQLite's rowid, which orders keys made in the same millisecond.
 */
const SCHEMA_V1 = `
  CREATE TABLE users (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" UNIQUE NOT NULL,
    created_at_ms BIGINT NOT NULL,
    password_hash TEXT NULL,
    disabled_at_ms BIGINT NULL
  );
  CREATE TABLE api_keys (
    id TEXT COLLATE "C" PRIMARY KEY,
    position BIGINT GENERATED ALWAYS AS IDENTITY,
    user_id TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    key_hash BYTEA NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT NULL
  );
  CREATE INDEX api_keys_user_id ON api_keys (user_id);
  CREATE TABLE providers (
    id TEXT COLLATE "C" PRIMARY KEY,
    owner_user_id TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    created_at_ms BIGINT NOT NULL
  );
  CREATE INDEX providers_owner_user_id ON providers (owner_user_id);
  CREATE TABLE invites (
    token_hash BYTEA PRIMARY KEY,
    user_id TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    used_at_ms BIGINT NULL,
    purpose TEXT NOT NULL DEFAULT 'password' CHECK (purpose IN ('password', 'sign_in'))
  );
  CREATE TABLE sessions (
    id TEXT COLLATE "C" PRIMARY KEY,
    secret_hash BYTEA NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT NULL
  );
  CREATE INDEX sessions_user_id ON sessions (user_id);
  CREATE TABLE usage (
    id TEXT COLLATE "C" PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    key_id TEXT COLLATE "C" NOT NULL,
    provider_id TEXT COLLATE "C" NOT NULL,
    provider_owner_id TEXT COLLATE "C" NOT NULL,
    provider_name TEXT NOT NULL,
    model TEXT COLLATE "C" NOT NULL,
    operation TEXT NOT NULL,
    status INTEGER NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    audio_seconds DOUBLE PRECISION NOT NULL,
    images BIGINT NOT NULL,
    ttfb_ms DOUBLE PRECISION NOT NULL,
    duration_ms DOUBLE PRECISION NOT NULL
  );
  CREATE INDEX usage_time_ms ON usage (time_ms);
  CREATE INDEX usage_user_id_time_ms ON usage (user_id, time_ms);
  CREATE INDEX usage_provider_owner_id_time_ms ON usage (provider_owner_id, time_ms);
  CREATE INDEX usage_key_id_time_ms ON usage (key_id, time_ms);
  CREATE TABLE provider_settings (
    provider_id TEXT COLLATE "C" PRIMARY KEY REFERENCES providers (id),
    paused BOOLEAN NOT NULL,
    sharing_json TEXT NULL,
    sharing_instance_id TEXT NOT NULL
  );
`;

/**
 * MIGRATIONS brings a database from one version to the next: MIGRATIONS[v] turns version v into v + 1. Each runs
 * inside the migrating transaction, so a failed step leaves the database at the version before it.
 */
const MIGRATIONS: readonly string[] = [SCHEMA_V1];

/**
 * migratePostgresSchema brings the database to POSTGRES_SCHEMA_VERSION and refuses one written by a newer version
 * of infermesh. It runs in one transaction holding MIGRATION_LOCK_KEY, so that replicas starting together wait for
 * each other and the second finds the work done; nothing changes when the database is already up to date.
 */
export async function migratePostgresSchema(client: pg.ClientBase, nowMs: number): Promise<void> {
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK_KEY.toString()]);
    await client.query(SCHEMA_VERSION_TABLE);
    const { rows } = await client.query<{ version: number | null }>("SELECT MAX(version) AS version FROM schema_version");
    const version = rows[0]?.version ?? 0;
    if (version > POSTGRES_SCHEMA_VERSION) {
      throw new Error(`schema version ${version} is newer than the ${POSTGRES_SCHEMA_VERSION} this infermesh supports`);
    }
    for (let from = version; from < POSTGRES_SCHEMA_VERSION; from++) {
      const step = MIGRATIONS[from];
      if (step === undefined) {
        throw new Error(`no migration from schema version ${from}`);
      }
      await client.query(step);
      await client.query("INSERT INTO schema_version (version, applied_at_ms) VALUES ($1, $2)", [from + 1, nowMs]);
    }
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  }
}
