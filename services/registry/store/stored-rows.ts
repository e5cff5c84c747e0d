import type { ApiKeyRecord, ProviderSettings, User } from "./registry-store.js";
import { parseSharingJson } from "./stored-sharing.js";

/**
 * StoredFlag is a boolean column as an engine returns it: PostgreSQL a boolean, SQLite the number 0 or 1.
 */
export type StoredFlag = boolean | number;

/** UserRow is a users row as selected by a store's USER_COLUMNS, without the password hash. */
export interface UserRow {
  id: string;
  name: string;
  created_at_ms: number;
  disabled_at_ms: number | null;
  has_password: StoredFlag;
}

/** PasswordRow is a UserRow with the password hash, for checkPassword alone. */
export interface PasswordRow extends UserRow {
  password_hash: string | null;
}

/** ApiKeyRow is an api_keys row joined with its user's name and last use, without the hash. */
export interface ApiKeyRow {
  id: string;
  user_id: string;
  user_name: string;
  label: string;
  created_at_ms: number;
  revoked_at_ms: number | null;
  last_used_at_ms: number | null;
}

/** CredentialRow is what authenticate needs to check a presented key. */
export interface CredentialRow {
  user_id: string;
  user_name: string;
  key_hash: Buffer;
  revoked_at_ms: number | null;
  disabled_at_ms: number | null;
}

/** SessionRow is what resolveSession and revokeSession need to check a presented session id. */
export interface SessionRow {
  secret_hash: Buffer;
  expires_at_ms: number;
  revoked_at_ms: number | null;
  user_id: string;
  user_name: string;
  disabled_at_ms: number | null;
}

/** ProviderSettingsRow is a provider_settings row. */
export interface ProviderSettingsRow {
  provider_id: string;
  paused: StoredFlag;
  sharing_json: string | null;
  sharing_instance_id: string;
}

/** toUser maps a row to the store's user, turning SQL NULL into undefined; SQLite's has_password is 1 when set. */
export function toUser(row: UserRow): User {
  return {
    id: row.id,
    name: row.name,
    createdAtMs: row.created_at_ms,
    disabledAtMs: row.disabled_at_ms ?? undefined,
    hasPassword: typeof row.has_password === "number" ? row.has_password === 1 : row.has_password,
  };
}

/** toApiKeyRecord maps a row to the store's record, turning SQL NULL into undefined. */
export function toApiKeyRecord(row: ApiKeyRow): ApiKeyRecord {
  return {
    id: row.id,
    userId: row.user_id,
    userName: row.user_name,
    label: row.label,
    createdAtMs: row.created_at_ms,
    revokedAtMs: row.revoked_at_ms ?? undefined,
    lastUsedAtMs: row.last_used_at_ms ?? undefined,
  };
}

/** toProviderSettings maps a row to the store's settings; SQLite's paused is any number but 0 when set. */
export function toProviderSettings(row: ProviderSettingsRow): ProviderSettings {
  return {
    paused: typeof row.paused === "number" ? row.paused !== 0 : row.paused,
    sharing: parseSharingJson(row.sharing_json),
    sharingInstanceId: row.sharing_instance_id,
  };
}
