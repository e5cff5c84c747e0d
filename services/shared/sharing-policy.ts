import { USER_NAME_PATTERN } from "./user-name.js";

/**
 * SharingPolicy is who besides its owner may use a provider's models: nobody (private), everybody in the mesh
 * (public), or the users named in allowedUsers (users).
 */
export interface SharingPolicy {
  readonly visibility: "private" | "users" | "public";
  /** allowedUsers are user names, each once; empty unless visibility is "users". */
  readonly allowedUsers: readonly string[];
}

/** SHARING_FORMS are the written forms of a sharing policy, as messages name them. */
export const SHARING_FORMS = "private, public or users:NAME[,NAME...]";

/**
 * parseSharingPolicy reads a policy as people write one (the agent's --share, `infermesh providers share`): "private",
 * "public" or "users:alice,bob", keywords in any case, each user once. A policy it cannot read gives the reason.
 */
export function parseSharingPolicy(value: string): SharingPolicy | { readonly refusal: string } {
  const text = value.trim();
  const keyword = text.toLowerCase();
  if (keyword === "private" || keyword === "public") return Object.freeze({ visibility: keyword, allowedUsers: Object.freeze([]) });
  if (!keyword.startsWith("users:")) return { refusal: `expects ${SHARING_FORMS}, got '${value}'` };
  const list = text.slice("users:".length);
  if (list.trim() === "") return { refusal: `expects ${SHARING_FORMS} naming at least one user, got '${value}'` };
  const names = list.split(",").map((name) => name.trim());
  const bad = names.find((name) => !USER_NAME_PATTERN.test(name));
  if (bad !== undefined) {
    return { refusal: `expects ${SHARING_FORMS} with user names of 1 to 64 of A-Z a-z 0-9 . _ @ -, got '${bad}' in '${value}'` };
  }
  return Object.freeze({ visibility: "users", allowedUsers: Object.freeze([...new Set(names)]) });
}
