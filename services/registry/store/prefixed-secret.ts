import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** PUBLIC_ID_BYTES is the size of a secret's public id; 8 random bytes make collisions negligible at any mesh's scale. */
const PUBLIC_ID_BYTES = 8;

/** SECRET_BYTES is the size of the secret part: 256 bits, so the unsalted SHA-256 we store cannot be brute-forced. */
const SECRET_BYTES = 32;

/** GeneratedSecret is a fresh credential and the public id under which its hash is stored. */
export interface GeneratedSecret {
  readonly secret: string;
  readonly publicId: string;
}

/**
 * PrefixedSecret is a kind of credential shaped `<prefix><16 hex public id>_<43 base64url secret>`: API keys ("im_")
 * and session ids ("ims_"). The prefix lets secret scanners and people recognise a leaked one; the public id names it
 * in logs and looks it up; only the SHA-256 of the whole string is stored.
 */
export interface PrefixedSecret {
  /** generate makes a new credential from the system's cryptographic random source. */
  generate(): GeneratedSecret;
  /** parse extracts the public id, or undefined when text is not exactly this kind's shape. It never throws. */
  parse(text: string): { readonly publicId: string } | undefined;
  /** hash is the SHA-256 digest of the whole credential, the only form in which it is stored. */
  hash(text: string): Buffer;
  /** matches tells whether text hashes to storedHash, in time that does not depend on where they differ. */
  matches(text: string, storedHash: Uint8Array): boolean;
}

/** prefixedSecret is the credential kind marked by prefix. */
export function prefixedSecret(prefix: string): PrefixedSecret {
  const length = prefix.length + PUBLIC_ID_BYTES * 2 + 1 + Math.ceil((SECRET_BYTES * 8) / 6);
  const pattern = new RegExp(`^${prefix.replace(/[^A-Za-z0-9]/g, "\\$&")}([0-9a-f]{16})_[A-Za-z0-9_-]{43}$`);
  const hash = (text: string) => createHash("sha256").update(text, "utf8").digest();
  return {
    generate() {
      const publicId = randomBytes(PUBLIC_ID_BYTES).toString("hex");
      return { secret: `${prefix}${publicId}_${randomBytes(SECRET_BYTES).toString("base64url")}`, publicId };
    },
    parse(text) {
      // The length check first keeps arbitrarily long input away from the regular expression.
      if (typeof text !== "string" || text.length !== length) return undefined;
      const publicId = pattern.exec(text)?.[1];
      return publicId === undefined ? undefined : { publicId };
    },
    hash,
    matches(text, storedHash) {
      const digest = hash(text);
      // timingSafeEqual throws on a length mismatch; a stored hash's length is not a secret.
      return digest.length === storedHash.length && timingSafeEqual(digest, storedHash);
    },
  };
}
