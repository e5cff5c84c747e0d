import { createHmac, timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";

/** SESSION_COOKIE is the cookie a signed-in browser carries: the session id, which the registry stores hashed. */
export const SESSION_COOKIE = "infermesh_session";
/**
 * SIGNED_IN_COOKIE tells the gateway's own pages, which cannot read the HttpOnly session cookie, that a session may
 * exist, so that a signed-out visit does not ask for one (and log a 401). It holds no secret.
 */
export const SIGNED_IN_COOKIE = "infermesh_signed_in";
/** CSRF_HEADER carries the CSRF token on every write a session cookie authenticates. */
export const CSRF_HEADER = "x-csrf-token";

/**
 * csrfTokenFor derives a session's CSRF token from its id: a page of the gateway's origin learns it from the
 * sign-in answer or GET /api/auth/session, another origin cannot read either, and the session id cannot be
 * recovered from it. Nothing needs storing.
 */
export function csrfTokenFor(sessionId: string): string {
  return createHmac("sha256", sessionId).update("infermesh csrf token").digest("base64url");
}

/** csrfTokenMatches checks a presented CSRF token in constant time. */
export function csrfTokenMatches(sessionId: string, presented: unknown): boolean {
  if (typeof presented !== "string") return false;
  const expected = Buffer.from(csrfTokenFor(sessionId));
  const given = Buffer.from(presented);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** sessionIdOf reads the session cookie of a request, undefined when it has none. */
export function sessionIdOf(request: FastifyRequest): string | undefined {
  const header = request.headers.cookie;
  if (typeof header !== "string" || !header.includes(SESSION_COOKIE)) return undefined;
  const value = request.server.parseCookie(header)[SESSION_COOKIE];
  return value === undefined || value === "" ? undefined : value;
}

/**
 * setSessionCookie gives the browser its session: HttpOnly (no script reads it), SameSite=Lax (no other site's form
 * or fetch sends it with a write), Secure when the page came over TLS, for as long as the session lasts.
 */
export function setSessionCookie(request: FastifyRequest, reply: FastifyReply, sessionId: string, expiresAtMs: number, tls: boolean): void {
  // request.protocol reads X-Forwarded-Proto only from a trusted proxy (trustProxy).
  const secure = tls || request.protocol === "https";
  const expires = new Date(expiresAtMs);
  void reply.setCookie(SESSION_COOKIE, sessionId, { path: "/", httpOnly: true, sameSite: "lax", secure, expires });
  void reply.setCookie(SIGNED_IN_COOKIE, "1", { path: "/", sameSite: "lax", secure, expires });
}

/** clearSessionCookie tells the browser to drop its session. */
export function clearSessionCookie(reply: FastifyReply): void {
  void reply.clearCookie(SESSION_COOKIE, { path: "/" });
  void reply.clearCookie(SIGNED_IN_COOKIE, { path: "/" });
}
