import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** API_KEY_PREFIX marks infermesh keys so that secret scanners and humans can recognise a leaked one. */
export const API_KEY_PREFIX = "im_";

/** KEY_ID_BYTES is the size of a key's public id; 8 random bytes make collisions negligible at any mesh's scale. */
const KEY_ID_BYTES = 8;

/** SECRET_BYTES is the size of a key's secret: 256 bits, so the unsalted SHA-256 we store cannot be brute-forced. */
const SECRET_BYTES = 32;

/** API_KEY_LENGTH is the exact length of a well-formed key: prefix, 16 hex, "_", 43 base64url characters. */
const API_KEY_LENGTH = API_KEY_PREFIX.length + KEY_ID_BYTES * 2 + 1 + Math.ceil((SECRET_BYTES * 8) / 6);

/** API_KEY_PATTERN is the strict shape of a key; the key id is captured because it is how a key is looked up. */
const API_KEY_PATTERN = /^im_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$/;

/** GeneratedApiKey is a fresh key and the public id under which its hash is stored. */
export interface GeneratedApiKey {
  readonly apiKey: string;
  readonly keyId: string;
}

/** generateApiKey makes a new key `im_<keyId>_<secret>` from the system's cryptographic random source. */
export function generateApiKey(): GeneratedApiKey {
  const keyId = randomBytes(KEY_ID_BYTES).toString("hex");
  const secret = randomBytes(SECRET_BYTES).toString("base64url");
  return { apiKey: `${API_KEY_PREFIX}${keyId}_${secret}`, keyId };
}

/**
 * parseApiKey extracts the key id from a presented key, or returns undefined when the key does not have the exact
 * shape generateApiKey produces. It never throws, whatever a client sends.
 */
export function parseApiKey(apiKey: string): { keyId: string } | undefined {
  // The length check first keeps arbitrarily long header values away from the regular expression.
  if (typeof apiKey !== "string" || apiKey.length !== API_KEY_LENGTH) {
    return undefined;
  }
  const keyId = API_KEY_PATTERN.exec(apiKey)?.[1];
  return keyId === undefined ? undefined : { keyId };
}

/** hashApiKey is the SHA-256 digest of the whole key, the only form in which a key is stored. */
export function hashApiKey(apiKey: string): Buffer {
  return createHash("sha256").update(apiKey, "utf8").digest();
}

/** apiKeyMatches tells whether apiKey hashes to storedHash, in time that does not depend on where they differ. */
export function apiKeyMatches(apiKey: string, storedHash: Uint8Array): boolean {
  const hash = hashApiKey(apiKey);
  // timingSafeEqual throws on a length mismatch; a stored hash's length is not a secret.
  if (hash.length !== storedHash.length) {
    return false;
  }
  return timingSafeEqual(hash, storedHash);
}
