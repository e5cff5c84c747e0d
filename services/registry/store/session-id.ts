import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** SESSION_ID_PREFIX marks infermesh session ids, as API_KEY_PREFIX marks keys, so a leaked one is recognisable. */
export const SESSION_ID_PREFIX = "ims_";

/** PUBLIC_ID_BYTES is the size of a session's public id, the part that names it in logs and usage records. */
const PUBLIC_ID_BYTES = 8;

/** SECRET_BYTES is the size of a session's secret: 256 bits, so the unsalted SHA-256 we store cannot be brute-forced. */
const SECRET_BYTES = 32;

/** SESSION_ID_LENGTH is the exact length of a well-formed session id: prefix, 16 hex, "_", 43 base64url characters. */
const SESSION_ID_LENGTH = SESSION_ID_PREFIX.length + PUBLIC_ID_BYTES * 2 + 1 + Math.ceil((SECRET_BYTES * 8) / 6);

/** SESSION_ID_PATTERN is the strict shape of a session id; the public id is captured because it is the lookup key. */
const SESSION_ID_PATTERN = /^ims_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$/;

/** GeneratedSessionId is a fresh session id and the public id under which its hash is stored. */
export interface GeneratedSessionId {
  readonly sessionId: string;
  readonly publicId: string;
}

/** generateSessionId makes a new session id `ims_<publicId>_<secret>` from the system's cryptographic random source. */
export function generateSessionId(): GeneratedSessionId {
  const publicId = randomBytes(PUBLIC_ID_BYTES).toString("hex");
  const secret = randomBytes(SECRET_BYTES).toString("base64url");
  return { sessionId: `${SESSION_ID_PREFIX}${publicId}_${secret}`, publicId };
}

/**
 * parseSessionId extracts the public id from a presented session id, or returns undefined when it does not have the
 * exact shape generateSessionId produces. It never throws, whatever a browser sends.
 */
export function parseSessionId(sessionId: string): { publicId: string } | undefined {
  // The length check first keeps arbitrarily long cookie values away from the regular expression.
  if (typeof sessionId !== "string" || sessionId.length !== SESSION_ID_LENGTH) {
    return undefined;
  }
  const publicId = SESSION_ID_PATTERN.exec(sessionId)?.[1];
  return publicId === undefined ? undefined : { publicId };
}

/** hashSessionId is the SHA-256 digest of the whole session id, the only form in which it is stored. */
export function hashSessionId(sessionId: string): Buffer {
  return createHash("sha256").update(sessionId, "utf8").digest();
}

/** sessionIdMatches tells whether sessionId hashes to storedHash, in time that does not depend on where they differ. */
export function sessionIdMatches(sessionId: string, storedHash: Uint8Array): boolean {
  const hash = hashSessionId(sessionId);
  // timingSafeEqual throws on a length mismatch; a stored hash's length is not a secret.
  if (hash.length !== storedHash.length) {
    return false;
  }
  return timingSafeEqual(hash, storedHash);
}

/** sessionKeyId is how a session appears where a key id is expected: in a Principal and in usage records. */
export function sessionKeyId(publicId: string): string {
  return `session:${publicId}`;
}
