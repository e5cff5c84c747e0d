import { createHash } from "node:crypto";

/**
 * providerIdFor derives the provider id of an owner's named agent: readable (the name), stable across restarts,
 * addresses and ports, and apart for two users whose agents share a name (host names such as "ubuntu" are common;
 * inference.club's default agent name is the same for everyone).
 */
export function providerIdFor(ownerUserId: string, name: string): string {
  const hash = createHash("sha256").update(`${ownerUserId}\u0000${name}`).digest("hex").slice(0, 12);
  const readable = name
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, "-")
    .replace(/^[-.]+|[-.]+$/g, "")
    .slice(0, 64);
  return readable === "" ? `agent-${hash}` : `${readable}-${hash}`;
}
