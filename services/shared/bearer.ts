import type { Metadata } from "@grpc/grpc-js";

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** bearerToken extracts the token of an `Authorization: Bearer <token>` header value. */
export function bearerToken(value: unknown): string | undefined {
  return typeof value === "string" ? BEARER.exec(value)?.[1] : undefined;
}

/** bearerCredential extracts the token of a call's `authorization: Bearer <token>` metadata entry. */
export function bearerCredential(metadata: Metadata): string | undefined {
  return bearerToken(metadata.get("authorization")[0]);
}
