import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { apiKeyMatches, generateApiKey, hashApiKey, parseApiKey } from "./api-key.js";
import { assertDuration } from "./assert-duration.js";
import { generateHashedInviteToken, hashInviteToken } from "./invite-token.js";
import { checkPasswordRule, hashPassword, verifyPassword } from "./passwords.js";
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
import { migrateSqliteSchema } from "./sqlite-schema.js";
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

// Existing importers take the error from here; it now lives beside the store's other errors.
export { InvalidUserNameError } from "./store-errors.js";

/** SqliteStoreOptions configures createSqliteStore. */
export interface SqliteStoreOptions {
  /** path is the database file, created with its parent directory if missing, or ":memory:" for tests. */
  readonly path: string;
  /** now is the clock for every stored time and every expiry check, in milliseconds since the epoch; Date.now by default. */
  readonly now?: () => number;
}

/**
 * DEFAULT_BUSY_TIMEOUT_MS is how long a write waits for another process's lock, since `infermesh keys create` writes
 * to the file a running registry holds open.
 */
export const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/** InvitePurpose is what an invites row's token does: set the account's password, or sign it in. */
type InvitePurpose = "password" | "sign_in";

/** USER_COLUMNS selects a UserRow from users; has_password is 0 or 1 so that the hash itself is never read. */
const USER_COLUMNS = `id, name, created_at_ms, disabled_at_ms, CASE WHEN password_hash IS NULL THEN 0 ELSE 1 END AS has_password`;

/**
 * API_KEY_COLUMNS selects an ApiKeyRow from api_keys k joined with users u; the last use is one descent of the
 * usage (key_id, time_ms) index.
 */
const API_KEY_COLUMNS = `k.id, k.user_id, u.name AS user_name, k.label, k.created_at_ms, k.revoked_at_ms,
  (SELECT MAX(r.time_ms) FROM usage r WHERE r.key_id = k.id) AS last_used_at_ms`;

/** USAGE_COLUMNS are the usage table's columns, each bound by insertUsage from the parameter of the same name. */
const USAGE_COLUMNS = [
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
] as const;

/** UsageParams are one usage record as insertUsage binds it. */
type UsageParams = Readonly<Record<(typeof USAGE_COLUMNS)[number], string | number>>;

/**
 * createSqliteStore opens (or creates) the embedded SQLite store at options.path. Every read goes to the database,
 * never to a cache, so keys, users and sessions changed by another process on the same file take effect at once.
 */
export function createSqliteStore(options: SqliteStoreOptions): RegistryStore {
  const now = options.now ?? Date.now;
  const db = openDatabase(options.path);

  const insertUser = db.prepare<[id: string, name: string, createdAtMs: number]>(
    `INSERT OR IGNORE INTO users (id, name, created_at_ms) VALUES (?, ?, ?)`,
  );
  const insertAccount = db.prepare<[id: string, name: string, createdAtMs: number, passwordHash: string | null]>(
    `INSERT INTO users (id, name, created_at_ms, password_hash) VALUES (?, ?, ?, ?)`,
  );
  const selectUserByName = db.prepare<[name: string], UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE name = ?`);
  const selectUserById = db.prepare<[id: string], UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE id = ?`);
  const selectUsers = db.prepare<[], UserRow>(`SELECT ${USER_COLUMNS} FROM users ORDER BY name`);
  const selectPassword = db.prepare<[name: string], PasswordRow>(`SELECT ${USER_COLUMNS}, password_hash FROM users WHERE name = ?`);
  const updatePassword = db.prepare<[passwordHash: string, id: string]>(`UPDATE users SET password_hash = ? WHERE id = ?`);
  // Disabling twice keeps the first time, as revoking a key does.
  const updateDisabled = db.prepare<[disabledAtMs: number, name: string]>(
    `UPDATE users SET disabled_at_ms = ? WHERE name = ? AND disabled_at_ms IS NULL`,
  );
  const updateEnabled = db.prepare<[name: string]>(`UPDATE users SET disabled_at_ms = NULL WHERE name = ?`);

  const insertApiKey = db.prepare<[id: string, userId: string, keyHash: Buffer, label: string, createdAtMs: number]>(
    `INSERT INTO api_keys (id, user_id, key_hash, label, created_at_ms) VALUES (?, ?, ?, ?, ?)`,
  );
  const selectApiKey = db.prepare<[id: string], ApiKeyRow>(
    `SELECT ${API_KEY_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = ?`,
  );
  const selectCredential = db.prepare<[id: string], CredentialRow>(
    `SELECT k.user_id, u.name AS user_name, k.key_hash, k.revoked_at_ms, u.disabled_at_ms
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

  const insertInvite = db.prepare<[tokenHash: Buffer, userId: string, createdAtMs: number, expiresAtMs: number, purpose: InvitePurpose]>(
    `INSERT INTO invites (token_hash, user_id, created_at_ms, expires_at_ms, purpose) VALUES (?, ?, ?, ?, ?)`,
  );
  // A disabled account's invite waits, unused, until the account is enabled again or the invite expires. A token
  // works for its own purpose only: an invite never signs in, a sign-in link never sets a password.
  const selectUsableInvite = db.prepare<[tokenHash: Buffer, nowMs: number, purpose: InvitePurpose], { user_id: string }>(
    `SELECT i.user_id FROM invites i JOIN users u ON u.id = i.user_id
      WHERE i.token_hash = ? AND i.used_at_ms IS NULL AND i.expires_at_ms > ? AND u.disabled_at_ms IS NULL AND i.purpose = ?`,
  );
  const updateInviteUsed = db.prepare<[usedAtMs: number, tokenHash: Buffer]>(`UPDATE invites SET used_at_ms = ? WHERE token_hash = ?`);

  const insertSession = db.prepare<[id: string, secretHash: Buffer, userId: string, createdAtMs: number, expiresAtMs: number]>(
    `INSERT INTO sessions (id, secret_hash, user_id, created_at_ms, expires_at_ms) VALUES (?, ?, ?, ?, ?)`,
  );
  const selectSession = db.prepare<[id: string], SessionRow>(
    `SELECT s.secret_hash, s.expires_at_ms, s.revoked_at_ms, u.id AS user_id, u.name AS user_name, u.disabled_at_ms
       FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?`,
  );
  const updateSessionRevoked = db.prepare<[revokedAtMs: number, id: string, nowMs: number]>(
    `UPDATE sessions SET revoked_at_ms = ? WHERE id = ? AND revoked_at_ms IS NULL AND expires_at_ms > ?`,
  );
  const updateUserSessionsRevoked = db.prepare<[revokedAtMs: number, name: string, nowMs: number]>(
    `UPDATE sessions SET revoked_at_ms = ?
      WHERE user_id = (SELECT id FROM users WHERE name = ?) AND revoked_at_ms IS NULL AND expires_at_ms > ?`,
  );

  // ON CONFLICT DO NOTHING skips only a repeated id, where INSERT OR IGNORE would also hide a broken record.
  const insertUsage = db.prepare<[UsageParams]>(
    `INSERT INTO usage (${USAGE_COLUMNS.join(", ")}) VALUES (${USAGE_COLUMNS.map((column) => `@${column}`).join(", ")})
       ON CONFLICT (id) DO NOTHING`,
  );

  const insertProvider = db.prepare<[id: string, ownerUserId: string, createdAtMs: number]>(
    `INSERT OR IGNORE INTO providers (id, owner_user_id, created_at_ms) VALUES (?, ?, ?)`,
  );
  const selectProviderOwner = db.prepare<[id: string], { owner_user_id: string }>(`SELECT owner_user_id FROM providers WHERE id = ?`);
  const selectOwnedProviders = db.prepare<[ownerUserId: string], { id: string }>(
    `SELECT id FROM providers WHERE owner_user_id = ? ORDER BY id`,
  );
  const selectProviderSettings = db.prepare<[providerId: string], ProviderSettingsRow>(
    `SELECT provider_id, paused, sharing_json, sharing_instance_id FROM provider_settings WHERE provider_id = ?`,
  );
  const selectAllProviderSettings = db.prepare<[], ProviderSettingsRow>(
    `SELECT provider_id, paused, sharing_json, sharing_instance_id FROM provider_settings ORDER BY provider_id`,
  );
  const upsertProviderSettings = db.prepare<[providerId: string, paused: 0 | 1, sharingJson: string | null, sharingInstanceId: string]>(
    `INSERT INTO provider_settings (provider_id, paused, sharing_json, sharing_instance_id) VALUES (?, ?, ?, ?)
       ON CONFLICT (provider_id) DO UPDATE
       SET paused = excluded.paused, sharing_json = excluded.sharing_json, sharing_instance_id = excluded.sharing_instance_id`,
  );

  /** userByName reads an account that must exist because the caller just wrote it. */
  function userByName(userName: string): User {
    const row = selectUserByName.get(userName);
    if (row === undefined) {
      throw new Error(`user ${JSON.stringify(userName)} vanished while it was being written`);
    }
    return toUser(row);
  }

  const createApiKeyTransaction = db.transaction((userName: string, label: string): CreatedApiKey => {
    const createdAtMs = now();
    insertUser.run(randomUUID(), userName, createdAtMs);
    const user = userByName(userName);
    const { apiKey, keyId } = generateApiKey();
    insertApiKey.run(keyId, user.id, hashApiKey(apiKey), label, createdAtMs);
    return {
      apiKey,
      record: {
        id: keyId,
        userId: user.id,
        userName: user.name,
        label,
        createdAtMs,
        revokedAtMs: undefined,
        lastUsedAtMs: undefined,
      },
    };
  });

  const revokeApiKeyTransaction = db.transaction((keyId: string): ApiKeyRecord | undefined => {
    updateRevoked.run(now(), keyId);
    const row = selectApiKey.get(keyId);
    return row === undefined ? undefined : toApiKeyRecord(row);
  });

  /**
   * insertNewAccount adds an account, inside a write transaction, or throws UserExistsError. The name is checked
   * under the write lock even when the caller checked it already, since a password may have been hashed since.
   */
  function insertNewAccount(userName: string, passwordHash: string | null, createdAtMs: number): User {
    if (selectUserByName.get(userName) !== undefined) {
      throw new UserExistsError(userName);
    }
    insertAccount.run(randomUUID(), userName, createdAtMs, passwordHash);
    return userByName(userName);
  }

  const signUpTransaction = db.transaction(
    (userName: string, passwordHash: string): User => insertNewAccount(userName, passwordHash, now()),
  );

  const createUserTransaction = db.transaction((userName: string, inviteTtlMs: number): CreatedUser => {
    const createdAtMs = now();
    const user = insertNewAccount(userName, null, createdAtMs);
    const { token: inviteToken, tokenHash } = generateHashedInviteToken();
    const inviteExpiresAtMs = createdAtMs + inviteTtlMs;
    insertInvite.run(tokenHash, user.id, createdAtMs, inviteExpiresAtMs, "password");
    return { user, inviteToken, inviteExpiresAtMs };
  });

  // A user's sessions that can never be used again go when they start a new one; expired invites when one is used.
  const deleteDeadSessions = db.prepare<[userId: string, nowMs: number]>(
    `DELETE FROM sessions WHERE user_id = ? AND (revoked_at_ms IS NOT NULL OR expires_at_ms <= ?)`,
  );
  const deleteExpiredInvites = db.prepare<[nowMs: number]>(`DELETE FROM invites WHERE expires_at_ms <= ?`);

  /** useInvite marks a usable token of the purpose used, inside a write transaction, and returns its user's id. */
  function useInvite(tokenHash: Buffer, purpose: InvitePurpose): string | undefined {
    const nowMs = now();
    const invite = selectUsableInvite.get(tokenHash, nowMs, purpose);
    if (invite === undefined) {
      return undefined;
    }
    updateInviteUsed.run(nowMs, tokenHash);
    deleteExpiredInvites.run(nowMs);
    return invite.user_id;
  }

  const acceptInviteTransaction = db.transaction((tokenHash: Buffer, passwordHash: string): User | undefined => {
    const userId = useInvite(tokenHash, "password");
    if (userId === undefined) {
      return undefined;
    }
    updatePassword.run(passwordHash, userId);
    const row = selectUserById.get(userId);
    return row === undefined ? undefined : toUser(row);
  });

  const createSignInLinkTransaction = db.transaction((userName: string, ttlMs: number): CreatedSignInLink | undefined => {
    const user = selectUserByName.get(userName);
    if (user === undefined) {
      return undefined;
    }
    const createdAtMs = now();
    const { token, tokenHash } = generateHashedInviteToken();
    const expiresAtMs = createdAtMs + ttlMs;
    insertInvite.run(tokenHash, user.id, createdAtMs, expiresAtMs, "sign_in");
    return { token, expiresAtMs };
  });

  const useSignInLinkTransaction = db.transaction((tokenHash: Buffer): User | undefined => {
    const userId = useInvite(tokenHash, "sign_in");
    const row = userId === undefined ? undefined : selectUserById.get(userId);
    return row === undefined ? undefined : toUser(row);
  });

  const setPasswordTransaction = db.transaction((userName: string, passwordHash: string): User | undefined => {
    const row = selectUserByName.get(userName);
    if (row === undefined) {
      return undefined;
    }
    updatePassword.run(passwordHash, row.id);
    return userByName(userName);
  });

  const setUserDisabledTransaction = db.transaction((userName: string, disabled: boolean): User | undefined => {
    if (disabled) {
      updateDisabled.run(now(), userName);
    } else {
      updateEnabled.run(userName);
    }
    const row = selectUserByName.get(userName);
    return row === undefined ? undefined : toUser(row);
  });

  const createSessionTransaction = db.transaction((userId: string, ttlMs: number): CreatedSession => {
    const user = selectUserById.get(userId);
    if (user === undefined || user.disabled_at_ms !== null) {
      throw new SessionRefusedError(userId);
    }
    const { sessionId, publicId } = generateSessionId();
    const createdAtMs = now();
    deleteDeadSessions.run(userId, createdAtMs);
    const expiresAtMs = createdAtMs + ttlMs;
    insertSession.run(publicId, hashSessionId(sessionId), userId, createdAtMs, expiresAtMs);
    return { sessionId, expiresAtMs };
  });

  const recordUsageTransaction = db.transaction((records: readonly UsageRecordData[]): number => {
    let stored = 0;
    for (const record of records) {
      stored += insertUsage.run(toUsageParams(record)).changes;
    }
    return stored;
  });

  // The methods are async so that a synchronous failure (bad input, closed database) reaches callers as a rejection.
  // Writes use IMMEDIATE transactions, which take the write lock up front so that a concurrent writer waits on
  // busy_timeout instead of failing; password hashing happens before, never while the lock is held.
  return {
    async createApiKey(userName: string, label?: string): Promise<CreatedApiKey> {
      assertUserName(userName);
      return createApiKeyTransaction.immediate(userName, label ?? "");
    },

    async authenticate(apiKey: string): Promise<Principal | undefined> {
      const parsed = parseApiKey(apiKey);
      if (parsed === undefined) {
        return undefined;
      }
      const row = selectCredential.get(parsed.keyId);
      if (row === undefined || !apiKeyMatches(apiKey, row.key_hash) || row.revoked_at_ms !== null || row.disabled_at_ms !== null) {
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
      return row === undefined ? undefined : toUser(row);
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

    async createUser(userName: string, inviteTtlMs: number): Promise<CreatedUser> {
      assertUserName(userName);
      assertDuration("inviteTtlMs", inviteTtlMs);
      return createUserTransaction.immediate(userName, inviteTtlMs);
    },

    async listUsers(): Promise<User[]> {
      return selectUsers.all().map(toUser);
    },

    async setUserDisabled(userName: string, disabled: boolean): Promise<User | undefined> {
      return setUserDisabledTransaction.immediate(userName, disabled);
    },

    async signUp(userName: string, password: string): Promise<User> {
      assertUserName(userName);
      checkPasswordRule(password);
      // A taken name is refused before the costly hash; the transaction checks again.
      if (selectUserByName.get(userName) !== undefined) {
        throw new UserExistsError(userName);
      }
      const passwordHash = await hashPassword(password);
      return signUpTransaction.immediate(userName, passwordHash);
    },

    async acceptInvite(inviteToken: string, password: string): Promise<User | undefined> {
      checkPasswordRule(password);
      const tokenHash = hashInviteToken(inviteToken);
      // A bad token costs no hash; the transaction checks the invite again, so it is used up once.
      if (tokenHash === undefined || selectUsableInvite.get(tokenHash, now(), "password") === undefined) {
        return undefined;
      }
      const passwordHash = await hashPassword(password);
      return acceptInviteTransaction.immediate(tokenHash, passwordHash);
    },

    async createSignInLink(userName: string, ttlMs: number): Promise<CreatedSignInLink | undefined> {
      assertDuration("ttlMs", ttlMs);
      return createSignInLinkTransaction.immediate(userName, ttlMs);
    },

    async useSignInLink(token: string): Promise<User | undefined> {
      const tokenHash = hashInviteToken(token);
      return tokenHash === undefined ? undefined : useSignInLinkTransaction.immediate(tokenHash);
    },

    async checkPassword(userName: string, password: string): Promise<User | undefined> {
      const before = selectPassword.get(userName);
      // An unknown name or an account without a password is checked against a dummy hash, in the same time.
      const matches = await verifyPassword(password, before?.password_hash ?? undefined);
      if (!matches || before === undefined) {
        return undefined;
      }
      // The account may have changed while scrypt ran: refuse it if it was disabled or its password replaced.
      const after = selectPassword.get(userName);
      if (after === undefined || after.disabled_at_ms !== null || after.password_hash !== before.password_hash) {
        return undefined;
      }
      return toUser(after);
    },

    async setPassword(userName: string, password: string): Promise<User | undefined> {
      checkPasswordRule(password);
      if (selectUserByName.get(userName) === undefined) {
        return undefined;
      }
      const passwordHash = await hashPassword(password);
      return setPasswordTransaction.immediate(userName, passwordHash);
    },

    async createSession(userId: string, ttlMs: number): Promise<CreatedSession> {
      assertDuration("ttlMs", ttlMs);
      return createSessionTransaction.immediate(userId, ttlMs);
    },

    async resolveSession(sessionId: string): Promise<Principal | undefined> {
      const parsed = parseSessionId(sessionId);
      if (parsed === undefined) {
        return undefined;
      }
      const row = selectSession.get(parsed.publicId);
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
      const row = selectSession.get(parsed.publicId);
      if (row === undefined || !sessionIdMatches(sessionId, row.secret_hash)) {
        return false;
      }
      const nowMs = now();
      return updateSessionRevoked.run(nowMs, parsed.publicId, nowMs).changes > 0;
    },

    async revokeUserSessions(userName: string): Promise<number> {
      const nowMs = now();
      return updateUserSessionsRevoked.run(nowMs, userName, nowMs).changes;
    },

    async recordUsage(records: readonly UsageRecordData[]): Promise<number> {
      return records.length === 0 ? 0 : recordUsageTransaction.immediate(records);
    },

    async queryUsage(query: UsageQuery): Promise<UsageRowData[]> {
      const { sql, params } = usageStatement(query);
      const rows = db.prepare<unknown[], UsageSumsRow>(sql).all(...params);
      return toUsageRows(query, rows);
    },

    async providerSettings(providerIds?: readonly string[]): Promise<Map<string, ProviderSettings>> {
      const rows =
        providerIds === undefined
          ? selectAllProviderSettings.all()
          : [...new Set(providerIds)].flatMap((providerId) => selectProviderSettings.get(providerId) ?? []);
      return new Map(rows.map((row) => [row.provider_id, toProviderSettings(row)]));
    },

    async saveProviderSettings(providerId: string, settings: ProviderSettings): Promise<void> {
      try {
        upsertProviderSettings.run(providerId, settings.paused ? 1 : 0, sharingJson(settings.sharing), settings.sharingInstanceId);
      } catch (error) {
        if (error instanceof Database.SqliteError && error.code === "SQLITE_CONSTRAINT_FOREIGNKEY") {
          throw new Error(`provider ${JSON.stringify(providerId)} has no owner yet: settings are saved for claimed providers only`, {
            cause: error,
          });
        }
        throw error;
      }
    },

    async ownedProviders(userId: string): Promise<string[]> {
      return selectOwnedProviders.all(userId).map((row) => row.id);
    },

    async close(): Promise<void> {
      db.close();
    },
  };
}

/**
 * openDatabase opens the file, configures the connection and brings the schema up to date. Any failure becomes one
 * Error naming the path and the cause, which the CLI prints as a single line.
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
    migrateSqliteSchema(db);
    return db;
  } catch (error) {
    db?.close();
    const cause = error instanceof Error ? error.message : String(error);
    throw new Error(`cannot open registry store ${path}: ${cause}`, { cause: error });
  }
}

/** toUsageParams maps a record to insertUsage's parameters; times are stored as whole milliseconds. */
function toUsageParams(record: UsageRecordData): UsageParams {
  return {
    id: record.id,
    time_ms: Math.floor(record.timeMs),
    user_id: record.userId,
    key_id: record.keyId,
    provider_id: record.providerId,
    provider_owner_id: record.providerOwnerId,
    provider_name: record.providerName,
    model: record.model,
    operation: record.operation,
    status: record.status,
    prompt_tokens: record.promptTokens,
    completion_tokens: record.completionTokens,
    audio_seconds: record.audioSeconds,
    images: record.images,
    ttfb_ms: record.ttfbMs,
    duration_ms: record.durationMs,
  };
}
