import { createHash, randomBytes } from "node:crypto";

/** INVITE_TOKEN_BYTES is the size of an invite token: 256 bits, so the unsalted SHA-256 we store cannot be brute-forced. */
const INVITE_TOKEN_BYTES = 32;

/** INVITE_TOKEN_LENGTH is the exact length of a token: its bytes in unpadded base64url, 43 characters. */
const INVITE_TOKEN_LENGTH = Math.ceil((INVITE_TOKEN_BYTES * 8) / 6);

/** INVITE_TOKEN_PATTERN is the exact shape of a token: 43 base64url characters. */
const INVITE_TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** generateInviteToken makes a new invite token from the system's cryptographic random source. */
export function generateInviteToken(): string {
  return randomBytes(INVITE_TOKEN_BYTES).toString("base64url");
}

/**
 * hashInviteToken is the SHA-256 digest of a well-formed token, the only form in which tokens are stored and the key
 * they are looked up by; undefined for a token generateInviteToken could not have made. It never throws.
 */
export function hashInviteToken(inviteToken: string): Buffer | undefined {
  // The length check first keeps arbitrarily long input away from the regular expression.
  if (typeof inviteToken !== "string" || inviteToken.length !== INVITE_TOKEN_LENGTH || !INVITE_TOKEN_PATTERN.test(inviteToken)) {
    return undefined;
  }
  return createHash("sha256").update(inviteToken, "utf8").digest();
}

/** HashedInviteToken is a new token, to be shown once, and the hash under which it is stored. */
export interface HashedInviteToken {
  readonly token: string;
  readonly tokenHash: Buffer;
}

/** generateHashedInviteToken makes a new token (generateInviteToken) together with its hash (hashInviteToken). */
export function generateHashedInviteToken(): HashedInviteToken {
  const token = generateInviteToken();
  const tokenHash = hashInviteToken(token);
  if (tokenHash === undefined) {
    throw new Error("a generated invite token is malformed");
  }
  return { token, tokenHash };
}
