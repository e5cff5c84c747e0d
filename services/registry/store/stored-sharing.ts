import type { SharingData } from "./registry-store.js";

/** sharingJson is how a store keeps a sharing policy: JSON of exactly its two fields, or NULL for none (private). */
export function sharingJson(sharing: SharingData | undefined): string | null {
  return sharing === undefined ? null : JSON.stringify({ visibility: sharing.visibility, allowedUsers: [...sharing.allowedUsers] });
}

/**
 * parseSharingJson reads stored sharing JSON. A value that is not a well-formed policy reads as undefined, private,
 * so that a damaged row can only narrow who may use a provider.
 */
export function parseSharingJson(json: string | null): SharingData | undefined {
  if (json === null) {
    return undefined;
  }
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) {
    return undefined;
  }
  const { visibility, allowedUsers } = value as Record<string, unknown>;
  if (visibility !== "private" && visibility !== "users" && visibility !== "public") {
    return undefined;
  }
  if (!Array.isArray(allowedUsers) || !allowedUsers.every((user) => typeof user === "string")) {
    return undefined;
  }
  return { visibility, allowedUsers };
}
