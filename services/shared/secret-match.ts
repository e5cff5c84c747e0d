import { createHash, timingSafeEqual } from "node:crypto";

/**
 * secretMatcher returns a check of presented credentials against one secret. Comparing fixed-size SHA-256 digests in
 * constant time keeps the check's duration independent of both the contents and the length of a guess.
 */
export function secretMatcher(secret: string): (presented: string) => boolean {
  const expected = digest(secret);
  return (presented) => timingSafeEqual(digest(presented), expected);
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}
