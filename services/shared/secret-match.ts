import { hash, timingSafeEqual } from "node:crypto";

/**
 * secretMatcher returns a check of presented credentials against one secret. Comparing fixed-size SHA-256 digests in
 * constant time keeps the check's duration independent of both the contents and the length of a guess.
 *
 * It keeps no cache of accepted credentials: comparing a guess with a remembered secret as strings would end at the
 * first differing character, and so tell an attacker how much of the guess is right. The one-shot hash() costs about
 * half of a createHash() object per check instead.
 */
export function secretMatcher(secret: string): (presented: string) => boolean {
  const expected = digest(secret);
  return (presented) => timingSafeEqual(digest(presented), expected);
}

function digest(value: string): Buffer {
  return hash("sha256", value, "buffer");
}
