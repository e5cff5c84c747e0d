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
  /** close releases the store's resources. */
  close(): Promise<void>;
}

/** User is someone who owns keys and providers. */
export interface User {
  readonly id: string;
  readonly name: string;
  readonly createdAtMs: number;
}

/** Principal is a user as authenticated through one of their keys. */
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
