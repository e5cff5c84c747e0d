import { prefixedSecret } from "./prefixed-secret.js";

/** API_KEY_PREFIX marks infermesh keys so that secret scanners and humans can recognise a leaked one. */
export const API_KEY_PREFIX = "im_";

/** API_KEYS is the API key's shape: `im_<keyId>_<secret>`. */
const API_KEYS = prefixedSecret(API_KEY_PREFIX);

/** GeneratedApiKey is a fresh key and the public id under which its hash is stored. */
export interface GeneratedApiKey {
  readonly apiKey: string;
  readonly keyId: string;
}

/** generateApiKey makes a new key `im_<keyId>_<secret>` from the system's cryptographic random source. */
export function generateApiKey(): GeneratedApiKey {
  const { secret, publicId } = API_KEYS.generate();
  return { apiKey: secret, keyId: publicId };
}

/**
 * parseApiKey extracts the key id from a presented key, or returns undefined when the key does not have the exact
 * shape generateApiKey produces. It never throws, whatever a client sends.
 */
export function parseApiKey(apiKey: string): { keyId: string } | undefined {
  const parsed = API_KEYS.parse(apiKey);
  return parsed === undefined ? undefined : { keyId: parsed.publicId };
}

/** hashApiKey is the SHA-256 digest of the whole key, the only form in which a key is stored. */
export const hashApiKey = API_KEYS.hash;

/** apiKeyMatches tells whether apiKey hashes to storedHash, in time that does not depend on where they differ. */
export const apiKeyMatches = API_KEYS.matches;
