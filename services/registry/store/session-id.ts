import { prefixedSecret } from "./prefixed-secret.js";

/** SESSION_ID_PREFIX marks infermesh session ids, as API_KEY_PREFIX marks keys, so a leaked one is recognisable. */
export const SESSION_ID_PREFIX = "ims_";

/** SESSION_IDS is the session id's shape: `ims_<publicId>_<secret>`. */
const SESSION_IDS = prefixedSecret(SESSION_ID_PREFIX);

/** GeneratedSessionId is a fresh session id and the public id under which its hash is stored. */
export interface GeneratedSessionId {
  readonly sessionId: string;
  readonly publicId: string;
}

/** generateSessionId makes a new session id `ims_<publicId>_<secret>` from the system's cryptographic random source. */
export function generateSessionId(): GeneratedSessionId {
  const { secret, publicId } = SESSION_IDS.generate();
  return { sessionId: secret, publicId };
}

/**
 * parseSessionId extracts the public id from a presented session id, or returns undefined when it does not have the
 * exact shape generateSessionId produces. It never throws, whatever a browser sends.
 */
export const parseSessionId = SESSION_IDS.parse;

/** hashSessionId is the SHA-256 digest of the whole session id, the only form in which it is stored. */
export const hashSessionId = SESSION_IDS.hash;

/** sessionIdMatches tells whether sessionId hashes to storedHash, in time that does not depend on where they differ. */
export const sessionIdMatches = SESSION_IDS.matches;

/** sessionKeyId is how a session appears where a key id is expected: in a Principal and in usage records. */
export function sessionKeyId(publicId: string): string {
  return `session:${publicId}`;
}
