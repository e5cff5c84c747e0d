import type { SharingPolicy } from "../../shared/sharing-policy.js";
import type { UsageRecordData } from "../../shared/usage-record.js";

/**
 * RegistryStore is the registry's durable state: users, API keys and who owns which provider id. The embedded
 * SQLite store implements it for one registry; a shared store (PostgreSQL, Redis) can implement it for several
 * replicas, which is why every method is asynchronous.
 */
export interface RegistryStore {
  /** createApiKey creates a key for the named user, creating the user on first use. The key is in the result once. */
  createApiKey(userName: string, label?: string): Promise<CreatedApiKey>;
  /** authenticate resolves a presented key to its principal, or undefined when it is unknown, malformed or revoked. */
  authenticate(apiKey: string): Promise<Principal | undefined>;
  /** listApiKeys lists key metadata, oldest first, optionally for one user and including revoked keys. */
  listApiKeys(filter?: ApiKeyFilter): Promise<ApiKeyRecord[]>;
  /** revokeApiKey revokes a key by id; returns its record after revocation, or undefined for an unknown id. */
  revokeApiKey(keyId: string): Promise<ApiKeyRecord | undefined>;
  /** findUser looks a user up by name. */
  findUser(userName: string): Promise<User | undefined>;
  /**
   * claimProvider records userId as the owner of providerId on first use and returns the owner's user id, which
   * differs from userId when another user claimed the id first.
   */
  claimProvider(providerId: string, userId: string): Promise<string>;

  /**
   * createUser adds an account with no password and an invite that sets one, valid for inviteTtlMs. Throws
   * InvalidUserNameError for a bad name and UserExistsError when the name is taken.
   */
  createUser(userName: string, inviteTtlMs: number): Promise<CreatedUser>;
  /** listUsers lists every account, by name. */
  listUsers(): Promise<User[]>;
  /** setUserDisabled disables or enables an account; undefined for an unknown name. */
  setUserDisabled(userName: string, disabled: boolean): Promise<User | undefined>;
  /** signUp creates an account with a password (UserExistsError when taken, WeakPasswordError when too short). */
  signUp(userName: string, password: string): Promise<User>;
  /** acceptInvite sets the password of the invite's account and uses the invite up; undefined for a bad, used or expired one. */
  acceptInvite(inviteToken: string, password: string): Promise<User | undefined>;
  /**
   * createSignInLink makes a token that signs the named account in once, valid for ttlMs, whether or not it has a
   * password; undefined for an unknown name. Like an invite's, it waits unused while the account is disabled.
   */
  createSignInLink(userName: string, ttlMs: number): Promise<CreatedSignInLink | undefined>;
  /**
   * useSignInLink uses a sign-in link's token up and returns its account; undefined for a bad, used or expired token,
   * an invite's token, or a disabled account.
   */
  useSignInLink(token: string): Promise<User | undefined>;
  /** checkPassword returns the account when the password is its own and it is enabled; undefined otherwise, in similar time. */
  checkPassword(userName: string, password: string): Promise<User | undefined>;
  /** setPassword sets an account's password directly (the operator's and `infermesh dev`'s path); undefined for an unknown name. */
  setPassword(userName: string, password: string): Promise<User | undefined>;
  /** createSession starts a session for an enabled user, lasting ttlMs; the id is in the result once and stored hashed. */
  createSession(userId: string, ttlMs: number): Promise<CreatedSession>;
  /** resolveSession returns the session's principal, or undefined when it is unknown, expired, revoked or its user disabled. */
  resolveSession(sessionId: string): Promise<Principal | undefined>;
  /** revokeSession ends one session; returns whether it was live. */
  revokeSession(sessionId: string): Promise<boolean>;
  /** revokeUserSessions ends every session of a user; returns how many were live. */
  revokeUserSessions(userName: string): Promise<number>;

  /** recordUsage stores records in one transaction, skipping ids already stored; returns how many were new. */
  recordUsage(records: readonly UsageRecordData[]): Promise<number>;
  /**
   * queryUsage sums usage over [fromMs, toMs) for a scope, grouped as asked: one row per group that had requests,
   * ordered by its group values, so that an empty groupBy gives one row of totals, or none for a range without usage.
   */
  queryUsage(query: UsageQuery): Promise<UsageRowData[]>;

  /** providerSettings is what owners decided about their providers, by id, for the ids asked (all when omitted). */
  providerSettings(providerIds?: readonly string[]): Promise<Map<string, ProviderSettings>>;
  /** saveProviderSettings stores an owner's decisions about one provider. */
  saveProviderSettings(providerId: string, settings: ProviderSettings): Promise<void>;
  /** ownedProviders lists the ids of the providers a user owns. */
  ownedProviders(userId: string): Promise<string[]>;

  /** close releases the store's resources. */
  close(): Promise<void>;
}

/** User is someone who owns keys and providers. */
export interface User {
  readonly id: string;
  readonly name: string;
  readonly createdAtMs: number;
  /** disabledAtMs is when an operator disabled the account; undefined while it is enabled. */
  readonly disabledAtMs?: number | undefined;
  /** hasPassword is true once a password was set. */
  readonly hasPassword?: boolean;
}

/** CreatedUser is a new account and the invite that sets its password; inviteToken is shown once and stored hashed. */
export interface CreatedUser {
  readonly user: User;
  readonly inviteToken: string;
  readonly inviteExpiresAtMs: number;
}

/** CreatedSignInLink is a new one-time sign-in link's token, shown once and stored hashed, and when it stops working. */
export interface CreatedSignInLink {
  readonly token: string;
  readonly expiresAtMs: number;
}

/** CreatedSession is a new session; sessionId is the cookie's value, shown once and stored hashed. */
export interface CreatedSession {
  readonly sessionId: string;
  readonly expiresAtMs: number;
}

/** UsageRecordData is one answered request: the type gateways record (services/shared/usage-record.ts). */
export type { UsageRecordData } from "../../shared/usage-record.js";

/** UsageGroupBy is a dimension usage is grouped by. */
export type UsageGroupBy = "day" | "hour" | "model" | "key" | "provider" | "user";

/** UsageQuery selects usage: scope "caller" sums userId's calls, "provider_owner" the calls userId's providers answered. */
export interface UsageQuery {
  readonly scope: "caller" | "provider_owner" | "all";
  readonly userId: string;
  readonly fromMs: number;
  readonly toMs: number;
  readonly groupBy: readonly UsageGroupBy[];
}

/**
 * UsageRowData is one group's sums. group holds a value per groupBy dimension: an ISO-8601 UTC start for day and hour,
 * the key id, model, provider id or user name otherwise.
 */
export interface UsageRowData {
  readonly group: readonly string[];
  readonly requests: number;
  readonly errors: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly audioSeconds: number;
  readonly images: number;
  readonly ttfbMsAvg: number;
  readonly durationMsAvg: number;
}

/** ProviderSettings are an owner's decisions about a provider, kept across agent and registry restarts. */
export interface ProviderSettings {
  readonly paused: boolean;
  /** sharing is the policy in force, as JSON-ready data; undefined means private. */
  readonly sharing: SharingData | undefined;
  /** sharingInstanceId is the agent process whose own sharing was last applied, or that was running when the owner set it. */
  readonly sharingInstanceId: string;
}

/** SharingData is a sharing policy: who besides the owner may use a provider. */
export type SharingData = SharingPolicy;

/** Principal is a user as authenticated through one of their keys, or a session (keyId "session:<public id>"). */
export interface Principal {
  readonly userId: string;
  readonly userName: string;
  readonly keyId: string;
}

/** ApiKeyRecord is a key's metadata; the store never keeps the key itself, only its SHA-256 hash. */
export interface ApiKeyRecord {
  readonly id: string;
  readonly userId: string;
  readonly userName: string;
  readonly label: string;
  readonly createdAtMs: number;
  readonly revokedAtMs: number | undefined;
  /** lastUsedAtMs is the time of the key's latest usage record; undefined when it has none. */
  readonly lastUsedAtMs?: number | undefined;
}

/** CreatedApiKey is a new key and its metadata; apiKey is shown to its owner once and stored nowhere. */
export interface CreatedApiKey {
  readonly apiKey: string;
  readonly record: ApiKeyRecord;
}

/** ApiKeyFilter narrows listApiKeys. */
export interface ApiKeyFilter {
  readonly userName?: string;
  readonly includeRevoked?: boolean;
}
