import { randomUUID } from "node:crypto";
import pg from "pg";
import { apiKeyMatches, generateApiKey, hashApiKey, parseApiKey } from "./api-key.js";
import { assertDuration } from "./assert-duration.js";
import { generateHashedInviteToken, hashInviteToken } from "./invite-token.js";
import { checkPasswordRule, hashPassword, verifyPassword } from "./passwords.js";
import { migratePostgresSchema } from "./postgres-schema.js";
import type {
  ApiKeyFilter,
  ApiKeyRecord,
  CreatedApiKey,
  CreatedSession,
  CreatedSignInLink,
  CreatedUser,
  Principal,
  ProviderSettings,
  RegistryStore,
  UsageQuery,
  UsageRecordData,
  UsageRowData,
  User,
} from "./registry-store.js";
import { generateSessionId, hashSessionId, parseSessionId, sessionIdMatches, sessionKeyId } from "./session-id.js";
import { SessionRefusedError, UserExistsError } from "./store-errors.js";
import {
  type ApiKeyRow,
  type CredentialRow,
  type PasswordRow,
  type ProviderSettingsRow,
  type SessionRow,
  toApiKeyRecord,
  toProviderSettings,
  toUser,
  type UserRow,
} from "./stored-rows.js";
import { sharingJson } from "./stored-sharing.js";
import { toUsageRows, type UsageSumsRow, usageStatement } from "./usage-sql.js";
import { assertUserName } from "./user-name.js";

/** PostgresStoreOptions configures createPostgresStore. */
export interface PostgresStoreOptions {
  /** url is the database's connection string, postgres://user:password@host:port/database. */
  readonly url: string;
  /** maxConnections bounds the pool; DEFAULT_MAX_CONNECTIONS by default. */
  readonly maxConnections?: number;
  /** now is the clock for every stored time and every expiry check, in milliseconds since the epoch; Date.now by default. */
  readonly now?: () => number;
}

/** DEFAULT_MAX_CONNECTIONS is the pool's default bound: enough for a registry's concurrent requests, few for a server. */
export const DEFAULT_MAX_CONNECTIONS = 10;

/** APPLICATION_NAME is how the store's connections appear in pg_stat_activity, for operators and tests. */
const APPLICATION_NAME = "infermesh-registry";

/** CONNECT_TIMEOUT_MS is how long opening one connection may take before the query that needed it fails. */
const CONNECT_TIMEOUT_MS = 10_000;

/** FOREIGN_KEY_VIOLATION is PostgreSQL's SQLSTATE code for a reference to a missing row. */
const FOREIGN_KEY_VIOLATION = "23503";

/**
 * POSTGRES_TYPES reads BIGINT as a JavaScript number: the store's BIGINT columns hold milliseconds and counts, far
 * below 2^53, and the rows must read as the SQLite store's do. Every other type keeps pg's parser.
 */
export const POSTGRES_TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === pg.types.builtins.INT8 ? Number : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig["getTypeParser"],
};

/** InvitePurpose is what an invites row's token does: set the account's password, or sign it in. */
type InvitePurpose = "password" | "sign_in";

/** USER_COLUMNS selects a UserRow from users; has_password is a boolean so that the hash itself is never read. */
const USER_COLUMNS = `id, name, created_at_ms, disabled_at_ms, password_hash IS NOT NULL AS has_password`;

/** API_KEY_COLUMNS selects an ApiKeyRow from api_keys k joined with users u, as the SQLite store does. */
const API_KEY_COLUMNS = `k.id, k.user_id, u.name AS user_name, k.label, k.created_at_ms, k.revoked_at_ms,
  (SELECT MAX(r.time_ms) FROM usage r WHERE r.key_id = k.id) AS last_used_at_ms`;

/**
 * USAGE_COLUMNS are the usage table's columns with the array type each is sent as: recordUsage sends a batch as one
 * array per column and unnests them, so that a batch is one statement with 16 parameters, whatever its size.
 */
const USAGE_COLUMNS = [
  ["id", "text[]"],
  ["time_ms", "bigint[]"],
  ["user_id", "text[]"],
  ["key_id", "text[]"],
  ["provider_id", "text[]"],
  ["provider_owner_id", "text[]"],
  ["provider_name", "text[]"],
  ["model", "text[]"],
  ["operation", "text[]"],
  ["status", "integer[]"],
  ["prompt_tokens", "bigint[]"],
  ["completion_tokens", "bigint[]"],
  ["audio_seconds", "double precision[]"],
  ["images", "bigint[]"],
  ["ttfb_ms", "double precision[]"],
  ["duration_ms", "double precision[]"],
] as const;

/** INSERT_USAGE stores a batch; ON CONFLICT DO NOTHING skips only a repeated id, within the batch or across batches. */
const INSERT_USAGE = `INSERT INTO usage (${USAGE_COLUMNS.map(([column]) => column).join(", ")})
  SELECT * FROM unnest(${USAGE_COLUMNS.map(([, type], index) => `$${index + 1}::${type}`).join(", ")})
  ON CONFLICT (id) DO NOTHING`;

/**
 * createPostgresStore connects to the database at options.url, brings its schema up to date and returns the store.
 * Every read goes to the database, so that keys, users and sessions changed through another replica take effect at
 * once. Any failure to open becomes one Error naming the database (without its password) and the cause.
 */
export async function createPostgresStore(options: PostgresStoreOptions): Promise<RegistryStore> {
  const now = options.now ?? Date.now;
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  if (!Number.isSafeInteger(maxConnections) || maxConnections < 1) {
    throw new RangeError(`maxConnections must be a whole number of at least 1, not ${String(maxConnections)}`);
  }
  const pool = new pg.Pool({
    connectionString: options.url,
    max: maxConnections,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    types: POSTGRES_TYPES,
    application_name: APPLICATION_NAME,
  });
  // An idle connection that fails (a server restart) is dropped by the pool; the next query opens a new one.
  pool.on("error", () => {});
  try {
    const client = await pool.connect();
    try {
      await migratePostgresSchema(client, now());
    } finally {
      client.release();
    }
  } catch (error) {
    await pool.end().catch(() => {});
    const cause = error instanceof Error ? error.message : String(error);
    throw new Error(`cannot open registry store ${redactedUrl(options.url)}: ${cause}`, { cause: error });
  }
  return postgresStore(pool, now);
}

/** postgresStore is the store over a pool whose database is migrated. */
function postgresStore(pool: pg.Pool, now: () => number): RegistryStore {
  /** rows runs one statement on any pooled connection and returns its rows. */
  async function rows<Row extends pg.QueryResultRow>(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    return (await pool.query<Row>(sql, [...params])).rows;
  }

  /** changes runs one statement on any pooled connection and returns how many rows it changed. */
  async function changes(sql: string, params: readonly unknown[]): Promise<number> {
    return (await pool.query(sql, [...params])).rowCount ?? 0;
  }

  /**
   * transaction runs work on one connection inside BEGIN … COMMIT, rolling back when it throws. A connection that
   * cannot even roll back is destroyed rather than handed to the next caller.
   */
  async function transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await pool.connect();
    let broken = false;
    try {
      await client.query("BEGIN");
      const result = await work(client);
      await client.query("COMMIT");
      return result;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {
        broken = true;
      });
      throw error;
    } finally {
      client.release(broken);
    }
  }

  async function userByName(userName: string): Promise<UserRow | undefined> {
    return (await rows<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE name = $1`, [userName]))[0];
  }

  async function passwordOf(userName: string): Promise<PasswordRow | undefined> {
    return (await rows<PasswordRow>(`SELECT ${USER_COLUMNS}, password_hash FROM users WHERE name = $1`, [userName]))[0];
  }

  async function apiKeyById(keyId: string): Promise<ApiKeyRow | undefined> {
    return (
      await rows<ApiKeyRow>(`SELECT ${API_KEY_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = $1`, [keyId])
    )[0];
  }

  async function sessionById(publicId: string): Promise<SessionRow | undefined> {
    const found = await rows<SessionRow>(
      `SELECT s.secret_hash, s.expires_at_ms, s.revoked_at_ms, u.id AS user_id, u.name AS user_name, u.disabled_at_ms
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1`,
      [publicId],
    );
    return found[0];
  }

  /**
   * insertAccount adds an account or throws UserExistsError. The insert itself decides, so that two replicas
   * creating the same name at once cannot both succeed.
   */
  async function insertAccount(
    client: pg.Pool | pg.ClientBase,
    userName: string,
    passwordHash: string | null,
    createdAtMs: number,
  ): Promise<User> {
    const inserted = await client.query<UserRow>(
      `INSERT INTO users (id, name, created_at_ms, password_hash) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO NOTHING RETURNING ${USER_COLUMNS}`,
      [randomUUID(), userName, createdAtMs, passwordHash],
    );
    const row = inserted.rows[0];
    if (row === undefined) {
      throw new UserExistsError(userName);
    }
    return toUser(row);
  }

  /**
   * useInvite marks a usable token of the purpose used and returns its user's id. The one UPDATE checks and uses the
   * token, so that two replicas presenting it at once cannot both succeed. A disabled account's token waits, unused.
   */
  async function useInvite(client: pg.ClientBase, tokenHash: Buffer, purpose: InvitePurpose): Promise<string | undefined> {
    const nowMs = now();
    const used = await client.query<{ user_id: string }>(
      `UPDATE invites i SET used_at_ms = $2
        WHERE i.token_hash = $1 AND i.used_at_ms IS NULL AND i.expires_at_ms > $2 AND i.purpose = $3
          AND EXISTS (SELECT 1 FROM users u WHERE u.id = i.user_id AND u.disabled_at_ms IS NULL)
        RETURNING i.user_id`,
      [tokenHash, nowMs, purpose],
    );
    const userId = used.rows[0]?.user_id;
    if (userId !== undefined) {
      await client.query("DELETE FROM invites WHERE expires_at_ms <= $1", [nowMs]);
    }
    return userId;
  }

  /** isUsableInvite tells whether a token of the purpose could be used now, without using it. */
  async function isUsableInvite(tokenHash: Buffer, purpose: InvitePurpose): Promise<boolean> {
    const found = await rows(
      `SELECT 1 FROM invites i JOIN users u ON u.id = i.user_id
        WHERE i.token_hash = $1 AND i.used_at_ms IS NULL AND i.expires_at_ms > $2 AND u.disabled_at_ms IS NULL AND i.purpose = $3`,
      [tokenHash, now(), purpose],
    );
    return found.length > 0;
  }

  /** selectUserById reads an account by id on client. */
  async function selectUserById(client: pg.ClientBase, userId: string): Promise<UserRow | undefined> {
    return (await client.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [userId])).rows[0];
  }

  let closing: Promise<void> | undefined;

  // Password hashing happens before a transaction begins, never while a connection is held.
  return {
    async createApiKey(userName: string, label?: string): Promise<CreatedApiKey> {
      assertUserName(userName);
      return transaction(async (client) => {
        const createdAtMs = now();
        // A concurrent insert of the same name makes this one wait, then skip; the SELECT then sees the winner's row.
        await client.query("INSERT INTO users (id, name, created_at_ms) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING", [
          randomUUID(),
          userName,
          createdAtMs,
        ]);
        const user = (await client.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE name = $1`, [userName])).rows[0];
        if (user === undefined) {
          throw new Error(`user ${JSON.stringify(userName)} vanished while it was being written`);
        }
        const { apiKey, keyId } = generateApiKey();
        const keyLabel = label ?? "";
        await client.query("INSERT INTO api_keys (id, user_id, key_hash, label, created_at_ms) VALUES ($1, $2, $3, $4, $5)", [
          keyId,
          user.id,
          hashApiKey(apiKey),
          keyLabel,
          createdAtMs,
        ]);
        return {
          apiKey,
          record: {
            id: keyId,
            userId: user.id,
            userName: user.name,
            label: keyLabel,
            createdAtMs,
            revokedAtMs: undefined,
            lastUsedAtMs: undefined,
          },
        };
      });
    },

    async authenticate(apiKey: string): Promise<Principal | undefined> {
      const parsed = parseApiKey(apiKey);
      if (parsed === undefined) {
        return undefined;
      }
      const [row] = await rows<CredentialRow>(
        `SELECT k.user_id, u.name AS user_name, k.key_hash, k.revoked_at_ms, u.disabled_at_ms
           FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = $1`,
        [parsed.keyId],
      );
      if (row === undefined || !apiKeyMatches(apiKey, row.key_hash) || row.revoked_at_ms !== null || row.disabled_at_ms !== null) {
        return undefined;
      }
      return { userId: row.user_id, userName: row.user_name, keyId: parsed.keyId };
    },

    async listApiKeys(filter?: ApiKeyFilter): Promise<ApiKeyRecord[]> {
      const found = await rows<ApiKeyRow>(
        `SELECT ${API_KEY_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id
          WHERE ($1::text IS NULL OR u.name = $1) AND ($2 OR k.revoked_at_ms IS NULL)
          ORDER BY k.created_at_ms, k.position`,
        [filter?.userName ?? null, filter?.includeRevoked === true],
      );
      return found.map(toApiKeyRecord);
    },

    async revokeApiKey(keyId: string): Promise<ApiKeyRecord | undefined> {
      // Revoking twice keeps the first revocation time.
      await changes("UPDATE api_keys SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL", [now(), keyId]);
      const row = await apiKeyById(keyId);
      return row === undefined ? undefined : toApiKeyRecord(row);
    },

    async findUser(userName: string): Promise<User | undefined> {
      const row = await userByName(userName);
      return row === undefined ? undefined : toUser(row);
    },

    async claimProvider(providerId: string, userId: string): Promise<string> {
      // A claim is never deleted or changed, so the row read back after the insert is the one that won.
      await changes("INSERT INTO providers (id, owner_user_id, created_at_ms) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING", [
        providerId,
        userId,
        now(),
      ]);
      const [row] = await rows<{ owner_user_id: string }>("SELECT owner_user_id FROM providers WHERE id = $1", [providerId]);
      if (row === undefined) {
        throw new Error(`provider ${JSON.stringify(providerId)} has no owner after being claimed`);
      }
      return row.owner_user_id;
    },

    async createUser(userName: string, inviteTtlMs: number): Promise<CreatedUser> {
      assertUserName(userName);
      assertDuration("inviteTtlMs", inviteTtlMs);
      return transaction(async (client) => {
        const createdAtMs = now();
        const user = await insertAccount(client, userName, null, createdAtMs);
        const { token: inviteToken, tokenHash } = generateHashedInviteToken();
        const inviteExpiresAtMs = createdAtMs + inviteTtlMs;
        await client.query(
          "INSERT INTO invites (token_hash, user_id, created_at_ms, expires_at_ms, purpose) VALUES ($1, $2, $3, $4, 'password')",
          [tokenHash, user.id, createdAtMs, inviteExpiresAtMs],
        );
        return { user, inviteToken, inviteExpiresAtMs };
      });
    },

    async listUsers(): Promise<User[]> {
      return (await rows<UserRow>(`SELECT ${USER_COLUMNS} FROM users ORDER BY name`)).map(toUser);
    },

    async setUserDisabled(userName: string, disabled: boolean): Promise<User | undefined> {
      // Disabling twice keeps the first time, as revoking a key does.
      const [row] = disabled
        ? await rows<UserRow>(`UPDATE users SET disabled_at_ms = COALESCE(disabled_at_ms, $1) WHERE name = $2 RETURNING ${USER_COLUMNS}`, [
            now(),
            userName,
          ])
        : await rows<UserRow>(`UPDATE users SET disabled_at_ms = NULL WHERE name = $1 RETURNING ${USER_COLUMNS}`, [userName]);
      return row === undefined ? undefined : toUser(row);
    },

    async signUp(userName: string, password: string): Promise<User> {
      assertUserName(userName);
      checkPasswordRule(password);
      // A taken name is refused before the costly hash; the insert checks again.
      if ((await userByName(userName)) !== undefined) {
        throw new UserExistsError(userName);
      }
      const passwordHash = await hashPassword(password);
      return insertAccount(pool, userName, passwordHash, now());
    },

    async acceptInvite(inviteToken: string, password: string): Promise<User | undefined> {
      checkPasswordRule(password);
      const tokenHash = hashInviteToken(inviteToken);
      // A bad token costs no hash; the transaction checks the invite again, so it is used up once.
      if (tokenHash === undefined || !(await isUsableInvite(tokenHash, "password"))) {
        return undefined;
      }
      const passwordHash = await hashPassword(password);
      return transaction(async (client) => {
        const userId = await useInvite(client, tokenHash, "password");
        if (userId === undefined) {
          return undefined;
        }
        const [row] = (
          await client.query<UserRow>(`UPDATE users SET password_hash = $1 WHERE id = $2 RETURNING ${USER_COLUMNS}`, [passwordHash, userId])
        ).rows;
        return row === undefined ? undefined : toUser(row);
      });
    },

    async createSignInLink(userName: string, ttlMs: number): Promise<CreatedSignInLink | undefined> {
      assertDuration("ttlMs", ttlMs);
      const createdAtMs = now();
      const { token, tokenHash } = generateHashedInviteToken();
      const expiresAtMs = createdAtMs + ttlMs;
      const inserted = await changes(
        `INSERT INTO invites (token_hash, user_id, created_at_ms, expires_at_ms, purpose)
           SELECT $1, id, $3, $4, 'sign_in' FROM users WHERE name = $2`,
        [tokenHash, userName, createdAtMs, expiresAtMs],
      );
      return inserted === 0 ? undefined : { token, expiresAtMs };
    },

    async useSignInLink(token: string): Promise<User | undefined> {
      const tokenHash = hashInviteToken(token);
      if (tokenHash === undefined) {
        return undefined;
      }
      return transaction(async (client) => {
        const userId = await useInvite(client, tokenHash, "sign_in");
        const row = userId === undefined ? undefined : await selectUserById(client, userId);
        return row === undefined ? undefined : toUser(row);
      });
    },

    async checkPassword(userName: string, password: string): Promise<User | undefined> {
      const before = await passwordOf(userName);
      // An unknown name or an account without a password is checked against a dummy hash, in the same time.
      const matches = await verifyPassword(password, before?.password_hash ?? undefined);
      if (!matches || before === undefined) {
        return undefined;
      }
      // The account may have changed while scrypt ran: refuse it if it was disabled or its password replaced.
      const after = await passwordOf(userName);
      if (after === undefined || after.disabled_at_ms !== null || after.password_hash !== before.password_hash) {
        return undefined;
      }
      return toUser(after);
    },

    async setPassword(userName: string, password: string): Promise<User | undefined> {
      checkPasswordRule(password);
      if ((await userByName(userName)) === undefined) {
        return undefined;
      }
      const passwordHash = await hashPassword(password);
      const [row] = await rows<UserRow>(`UPDATE users SET password_hash = $1 WHERE name = $2 RETURNING ${USER_COLUMNS}`, [
        passwordHash,
        userName,
      ]);
      return row === undefined ? undefined : toUser(row);
    },

    async createSession(userId: string, ttlMs: number): Promise<CreatedSession> {
      assertDuration("ttlMs", ttlMs);
      return transaction(async (client) => {
        // FOR SHARE holds the account as it is until the session is stored: disabling it waits for this to commit.
        const [user] = (
          await client.query<{ disabled_at_ms: number | null }>("SELECT disabled_at_ms FROM users WHERE id = $1 FOR SHARE", [userId])
        ).rows;
        if (user === undefined || user.disabled_at_ms !== null) {
          throw new SessionRefusedError(userId);
        }
        const { sessionId, publicId } = generateSessionId();
        const createdAtMs = now();
        // A user's sessions that can never be used again go when they start a new one.
        await client.query("DELETE FROM sessions WHERE user_id = $1 AND (revoked_at_ms IS NOT NULL OR expires_at_ms <= $2)", [
          userId,
          createdAtMs,
        ]);
        const expiresAtMs = createdAtMs + ttlMs;
        await client.query("INSERT INTO sessions (id, secret_hash, user_id, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5)", [
          publicId,
          hashSessionId(sessionId),
          userId,
          createdAtMs,
          expiresAtMs,
        ]);
        return { sessionId, expiresAtMs };
      });
    },

    async resolveSession(sessionId: string): Promise<Principal | undefined> {
      const parsed = parseSessionId(sessionId);
      if (parsed === undefined) {
        return undefined;
      }
      const row = await sessionById(parsed.publicId);
      if (
        row === undefined ||
        !sessionIdMatches(sessionId, row.secret_hash) ||
        row.revoked_at_ms !== null ||
        row.expires_at_ms <= now() ||
        row.disabled_at_ms !== null
      ) {
        return undefined;
      }
      return { userId: row.user_id, userName: row.user_name, keyId: sessionKeyId(parsed.publicId) };
    },

    async revokeSession(sessionId: string): Promise<boolean> {
      const parsed = parseSessionId(sessionId);
      if (parsed === undefined) {
        return false;
      }
      // Only the whole id ends a session: its public id appears in usage records and must not be enough.
      const row = await sessionById(parsed.publicId);
      if (row === undefined || !sessionIdMatches(sessionId, row.secret_hash)) {
        return false;
      }
      const nowMs = now();
      const revoked = await changes(
        "UPDATE sessions SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL AND expires_at_ms > $1",
        [nowMs, parsed.publicId],
      );
      return revoked > 0;
    },

    async revokeUserSessions(userName: string): Promise<number> {
      return changes(
        `UPDATE sessions SET revoked_at_ms = $1
          WHERE user_id = (SELECT id FROM users WHERE name = $2) AND revoked_at_ms IS NULL AND expires_at_ms > $1`,
        [now(), userName],
      );
    },

    async recordUsage(records: readonly UsageRecordData[]): Promise<number> {
      if (records.length === 0) {
        return 0;
      }
      // One statement is one transaction: a bad record stores none of the batch.
      return changes(INSERT_USAGE, usageColumns(records));
    },

    async queryUsage(query: UsageQuery): Promise<UsageRowData[]> {
      // Times are whole milliseconds: for them, t >= x and t < x hold exactly when t >= ceil(x) and t < ceil(x).
      const { sql, params } = usageStatement({ ...query, fromMs: Math.ceil(query.fromMs), toMs: Math.ceil(query.toMs) });
      return toUsageRows(query, await rows<UsageSumsRow>(numberedPlaceholders(sql), params));
    },

    async providerSettings(providerIds?: readonly string[]): Promise<Map<string, ProviderSettings>> {
      const columns = "provider_id, paused, sharing_json, sharing_instance_id";
      const found =
        providerIds === undefined
          ? await rows<ProviderSettingsRow>(`SELECT ${columns} FROM provider_settings ORDER BY provider_id`)
          : await rows<ProviderSettingsRow>(
              `SELECT ${columns} FROM provider_settings WHERE provider_id = ANY($1::text[]) ORDER BY provider_id`,
              [[...new Set(providerIds)]],
            );
      return new Map(found.map((row) => [row.provider_id, toProviderSettings(row)]));
    },

    async saveProviderSettings(providerId: string, settings: ProviderSettings): Promise<void> {
      try {
        await changes(
          `INSERT INTO provider_settings (provider_id, paused, sharing_json, sharing_instance_id) VALUES ($1, $2, $3, $4)
             ON CONFLICT (provider_id) DO UPDATE
             SET paused = excluded.paused, sharing_json = excluded.sharing_json, sharing_instance_id = excluded.sharing_instance_id`,
          [providerId, settings.paused, sharingJson(settings.sharing), settings.sharingInstanceId],
        );
      } catch (error) {
        if (error instanceof pg.DatabaseError && error.code === FOREIGN_KEY_VIOLATION) {
          throw new Error(`provider ${JSON.stringify(providerId)} has no owner yet: settings are saved for claimed providers only`, {
            cause: error,
          });
        }
        throw error;
      }
    },

    async ownedProviders(userId: string): Promise<string[]> {
      return (await rows<{ id: string }>("SELECT id FROM providers WHERE owner_user_id = $1 ORDER BY id", [userId])).map((row) => row.id);
    },

    async close(): Promise<void> {
      // pg refuses to end a pool twice; closing a store twice is harmless, as it is for the SQLite store.
      closing ??= pool.end();
      await closing;
    },
  };
}

/**
 * numberedPlaceholders turns the "?" placeholders of usage-sql's statements into PostgreSQL's $1, $2, …; those
 * statements are fixed text with no "?" anywhere else.
 */
export function numberedPlaceholders(sql: string): string {
  let index = 0;
  return sql.replace(/\?/g, () => `$${++index}`);
}

/** usageColumns turns records into one array per USAGE_COLUMNS entry; times are stored as whole milliseconds. */
function usageColumns(records: readonly UsageRecordData[]): unknown[][] {
  return [
    records.map((record) => record.id),
    records.map((record) => Math.floor(record.timeMs)),
    records.map((record) => record.userId),
    records.map((record) => record.keyId),
    records.map((record) => record.providerId),
    records.map((record) => record.providerOwnerId),
    records.map((record) => record.providerName),
    records.map((record) => record.model),
    records.map((record) => record.operation),
    records.map((record) => record.status),
    records.map((record) => record.promptTokens),
    records.map((record) => record.completionTokens),
    records.map((record) => record.audioSeconds),
    records.map((record) => record.images),
    records.map((record) => record.ttfbMs),
    records.map((record) => record.durationMs),
  ];
}

/** redactedUrl is a connection string fit for a message: its password, if any, replaced. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") {
      parsed.password = "***";
    }
    return parsed.toString();
  } catch {
    return "(unparsable connection string)";
  }
}
