import { csrfTokenFor } from "../../services/gateway/session-cookie.js";
import { bytes, json, MiB, OMIT, type Overrides, utf8, withOverrides } from "./bodies.js";
import type { Auth, ContextValue, CorpusContext, HttpCase, HttpExpectation } from "./corpus-types.js";
import { BAD_CREDENTIALS, badJson, invalid, JSON_TYPE, tooLarge, unauthorized, unknownRoute } from "./http-corpus.js";

// The members' half of the HTTP corpus: every route of the control-plane API under /api/ (sign-in, keys, usage,
// providers), each request wrong in one way. The agents' HTTP heartbeat under /api/inference/ is tested on its own.

/** The members' outcome classes, beside the façade's. */
const sessionExpired: HttpExpectation = { status: 401, type: "authentication_error", code: "session_expired" };
const csrfInvalid: HttpExpectation = { status: 403, type: "permission_error", code: "csrf_token_invalid" };
const notFound: HttpExpectation = { status: 404, type: "invalid_request_error", code: "not_found" };
const signupClosed: HttpExpectation = { status: 403, type: "permission_error", code: "signup_closed" };
const invalidCredentials: HttpExpectation = { status: 401, type: "authentication_error", code: "invalid_credentials" };
const invalidSignInLink: HttpExpectation = { status: 401, type: "authentication_error", code: "invalid_sign_in_link" };
/** refused is a path parameter or a query its schema refuses: Fastify's validation error, as a 400. */
const refused: HttpExpectation = invalid();
/** notAnObject is a JSON body that is not the object the route's schema asks for. */
const notAnObject: HttpExpectation = invalid("invalid_type", "body");
/** extraField is a body with a property its schema does not have (additionalProperties: false). */
/** extraField: a field the route does not take, named as OpenAI names one. */
const extraField: HttpExpectation = invalid("unknown_parameter", "admin");

/** BOGUS_SESSION is a session cookie no registry issued. */
const BOGUS_SESSION = "not-a-session-id";
/** STRONG_PASSWORD passes the password rule (8 characters or more), so that only the case's one fault is left. */
const STRONG_PASSWORD = "correct horse battery";
const NO_SUCH_KEY = "0123456789abcdef";
const NO_SUCH_PROVIDER = "no-such-provider";

const ownSession = (csrf?: ContextValue): Auth => ({ session: (c) => c.sessionId, ...(csrf === undefined ? {} : { csrf }) });
const bogusSession = (csrf?: ContextValue): Auth => ({ session: BOGUS_SESSION, ...(csrf === undefined ? {} : { csrf }) });
/** ownCsrf is the CSRF token of the user's own session, so that a case gets past the session's checks. */
const ownCsrf = (c: CorpusContext) => csrfTokenFor(c.sessionId);
const otherUser: Auth = { header: (c) => `Bearer ${c.otherKey}` };

/**
 * ApiRoute is one documented route: its template as /openapi.json writes it, and the concrete path and body of a
 * request that is valid for it and harmless (nothing of the corpus's users changes should a check let it through).
 */
interface ApiRoute {
  readonly method: string;
  readonly template: string;
  readonly path: ContextValue;
  readonly body?: (context: CorpusContext) => Buffer;
}

const loginBody = (overrides: Overrides = {}) => withOverrides({ name: "alice", password: "not alice's password" }, overrides);
const signupBody = (overrides: Overrides = {}) => withOverrides({ name: "bad-input-newcomer", password: STRONG_PASSWORD }, overrides);
const inviteBody = (overrides: Overrides = {}) => withOverrides({ token: "no-such-invite-token", password: STRONG_PASSWORD }, overrides);
const signInLinkBody = (overrides: Overrides = {}) => withOverrides({ token: "no-such-sign-in-link" }, overrides);
const keyBody = (overrides: Overrides = {}) => withOverrides({ label: "bad-input" }, overrides);
const sharingBody = (overrides: Overrides = {}) => withOverrides({ visibility: "private" }, overrides);

const providerPath = (action: string, id: ContextValue) => (c: CorpusContext) =>
  `/api/providers/${encodeURIComponent(typeof id === "string" ? id : id(c))}/${action}`;

const ROUTES = {
  login: { method: "POST", template: "/api/auth/login", path: "/api/auth/login", body: () => json(loginBody()) },
  signup: { method: "POST", template: "/api/auth/signup", path: "/api/auth/signup", body: () => json(signupBody()) },
  invite: { method: "POST", template: "/api/auth/invite", path: "/api/auth/invite", body: () => json(inviteBody()) },
  signInLink: {
    method: "POST",
    template: "/api/auth/sign-in-link",
    path: "/api/auth/sign-in-link",
    body: () => json(signInLinkBody()),
  },
  session: { method: "GET", template: "/api/auth/session", path: "/api/auth/session" },
  options: { method: "GET", template: "/api/auth/options", path: "/api/auth/options" },
  logout: { method: "POST", template: "/api/auth/logout", path: "/api/auth/logout" },
  me: { method: "GET", template: "/api/me", path: "/api/me" },
  listKeys: { method: "GET", template: "/api/keys", path: "/api/keys" },
  createKey: { method: "POST", template: "/api/keys", path: "/api/keys", body: () => json(keyBody()) },
  revokeKey: { method: "DELETE", template: "/api/keys/{id}", path: `/api/keys/${NO_SUCH_KEY}` },
  usage: { method: "GET", template: "/api/usage", path: "/api/usage?group_by=day" },
  providers: { method: "GET", template: "/api/providers", path: "/api/providers" },
  pause: { method: "POST", template: "/api/providers/{id}/pause", path: providerPath("pause", NO_SUCH_PROVIDER) },
  resume: { method: "POST", template: "/api/providers/{id}/resume", path: providerPath("resume", NO_SUCH_PROVIDER) },
  sharing: {
    method: "PUT",
    template: "/api/providers/{id}/sharing",
    path: providerPath("sharing", NO_SUCH_PROVIDER),
    body: () => json(sharingBody()),
  },
} as const satisfies Record<string, ApiRoute>;

/** CaseOptions change a route's valid request: who sends it, to which path, with which body. */
interface CaseOptions {
  readonly auth?: Auth;
  readonly path?: ContextValue;
  /** body replaces the valid body; null sends none. */
  readonly body?: ((context: CorpusContext) => Buffer) | null;
  readonly headers?: Readonly<Record<string, string>>;
}

function apiCase(route: ApiRoute, name: string, expect: HttpExpectation, options: CaseOptions = {}): HttpCase {
  const body = options.body === null ? undefined : (options.body ?? route.body);
  return {
    kind: "http",
    name: `${route.method} ${route.template}: ${name}`,
    method: route.method,
    path: options.path ?? route.path,
    auth: options.auth ?? "valid",
    headers: options.headers ?? (body ? JSON_TYPE : {}),
    ...(body ? { body } : {}),
    expect,
  };
}

/** credentialCases send an authenticated route its valid request with a credential that is no one's. */
function credentialCases(route: ApiRoute): HttpCase[] {
  return [
    ...BAD_CREDENTIALS.map(({ name, auth }) => apiCase(route, name, unauthorized, { auth })),
    apiCase(route, "a session cookie no registry issued", sessionExpired, { auth: bogusSession() }),
    // A cookie counts only without an Authorization header: a bad key is not rescued by a good session.
    apiCase(route, "a bad API key beside the user's own session cookie", unauthorized, {
      auth: { session: (c) => c.sessionId, authorization: "Bearer sk-infermesh-not-a-real-key" },
    }),
  ];
}

/**
 * csrfCases send a write its valid request with a session cookie but no good X-CSRF-Token. The session is checked
 * first, so a cookie no registry issued gets 401 whatever token goes with it.
 */
function csrfCases(route: ApiRoute): HttpCase[] {
  return [
    apiCase(route, "the user's session without X-CSRF-Token", csrfInvalid, { auth: ownSession() }),
    apiCase(route, "the user's session with a forged X-CSRF-Token", csrfInvalid, { auth: ownSession("forged-token") }),
    apiCase(route, "the user's session with another session's X-CSRF-Token", csrfInvalid, {
      auth: ownSession(csrfTokenFor(BOGUS_SESSION)),
    }),
    apiCase(route, "the user's session with its X-CSRF-Token upper-cased", csrfInvalid, {
      auth: ownSession((c) => ownCsrf(c).toUpperCase()),
    }),
    apiCase(route, "a bogus session with the X-CSRF-Token that would match it", sessionExpired, {
      auth: bogusSession(csrfTokenFor(BOGUS_SESSION)),
    }),
  ];
}

/** bodyCases send a JSON route bodies that are not the one JSON object its schema describes. */
function bodyCases(route: ApiRoute, valid: (overrides?: Overrides) => Record<string, unknown>, auth: Auth = "valid"): HttpCase[] {
  const text = (raw: string) => () => utf8(raw);
  const validText = () => JSON.stringify(valid());
  return [
    apiCase(route, "a lone '{'", badJson, { auth, body: text("{") }),
    apiCase(route, "truncated JSON", badJson, { auth, body: () => utf8(validText().slice(0, -3)) }),
    apiCase(route, "invalid UTF-8 in a string", badJson, {
      auth,
      body: () => bytes(validText().replace(/}$/, ',"x":"'), [0xff, 0xfe], '"}'),
    }),
    apiCase(route, "a JSON array", notAnObject, { auth, body: text("[]") }),
    apiCase(route, "a JSON string", notAnObject, { auth, body: text('"hello"') }),
    apiCase(route, "JSON null", notAnObject, { auth, body: text("null") }),
    apiCase(route, "an extra field", extraField, { auth, body: () => json(valid({ admin: true })) }),
    apiCase(route, "17 MiB body over the 16 MiB limit", tooLarge, {
      auth,
      body: () => utf8(validText().replace(/}$/, `,"pad":"${"x".repeat(17 * MiB)}"}`)),
    }),
  ];
}

/**
 * loginCases refuse sign-ins. A gateway takes 30 failed sign-ins per address in 15 minutes, and the heap test runs the
 * corpus four times from 127.0.0.1: only the two invalid_credentials cases reach the password check (8 failures in
 * all; the coverage test holds the count), the rest fail their schema first, which counts nothing.
 */
function loginCases(): HttpCase[] {
  const route = ROUTES.login;
  const body = (overrides: Overrides) => () => json(loginBody(overrides));
  return [
    ...bodyCases(route, loginBody, "none"),
    apiCase(route, "an empty body", badJson, { auth: "none", body: null }),
    apiCase(route, "name missing", invalid("missing_required_parameter", "name"), { auth: "none", body: body({ name: OMIT }) }),
    apiCase(route, "password missing", invalid("missing_required_parameter", "password"), {
      auth: "none",
      body: body({ password: OMIT }),
    }),
    apiCase(route, "name a number", invalid("invalid_type", "name"), { auth: "none", body: body({ name: 7 }) }),
    apiCase(route, "password an array", invalid("invalid_type", "password"), { auth: "none", body: body({ password: ["x"] }) }),
    apiCase(route, "name empty", invalid("missing_required_parameter", "name"), { auth: "none", body: body({ name: "" }) }),
    apiCase(route, "a name of 65 characters", invalid("string_above_max_length", "name"), {
      auth: "none",
      body: body({ name: "n".repeat(65) }),
    }),
    apiCase(route, "a password of 1,025 characters", invalid("string_above_max_length", "password"), {
      auth: "none",
      body: body({ password: "p".repeat(1025) }),
    }),
    apiCase(route, "a wrong password", invalidCredentials, { auth: "none" }),
    apiCase(route, "a user nobody has", invalidCredentials, { auth: "none", body: body({ name: "nobody-at-all" }) }),
  ];
}

/** signupCases: this mesh takes new accounts by invitation only, so even a valid sign-up is refused. */
function signupCases(): HttpCase[] {
  const route = ROUTES.signup;
  const body = (overrides: Overrides) => () => json(signupBody(overrides));
  return [
    ...bodyCases(route, signupBody, "none"),
    apiCase(route, "a valid sign-up on a mesh that takes invites only", signupClosed, { auth: "none" }),
    apiCase(route, "a taken name on a mesh that takes invites only", signupClosed, { auth: "none", body: body({ name: "alice" }) }),
    apiCase(route, "a password of 7 characters", invalid("invalid_value", "password"), {
      auth: "none",
      body: body({ password: "1234567" }),
    }),
    apiCase(route, "name missing", invalid("missing_required_parameter", "name"), { auth: "none", body: body({ name: OMIT }) }),
    apiCase(route, "name null", invalid("missing_required_parameter", "name"), { auth: "none", body: body({ name: null }) }),
    apiCase(route, "a name of 65 characters", invalid("string_above_max_length", "name"), {
      auth: "none",
      body: body({ name: "n".repeat(65) }),
    }),
  ];
}

function inviteCases(): HttpCase[] {
  const route = ROUTES.invite;
  const body = (overrides: Overrides) => () => json(inviteBody(overrides));
  return [
    ...bodyCases(route, inviteBody, "none"),
    apiCase(route, "an invite token nobody issued", notFound, { auth: "none" }),
    apiCase(route, "a password of 7 characters", invalid("invalid_value", "password"), {
      auth: "none",
      body: body({ password: "1234567" }),
    }),
    apiCase(route, "token missing", invalid("missing_required_parameter", "token"), { auth: "none", body: body({ token: OMIT }) }),
    apiCase(route, "token empty", invalid("missing_required_parameter", "token"), { auth: "none", body: body({ token: "" }) }),
    apiCase(route, "token a number", invalid("invalid_type", "token"), { auth: "none", body: body({ token: 42 }) }),
    apiCase(route, "a token of 257 characters", invalid("string_above_max_length", "token"), {
      auth: "none",
      body: body({ token: "t".repeat(257) }),
    }),
  ];
}

/**
 * signInLinkCases refuse one-time sign-in links. Only the two that reach the registry fail as a sign-in and count
 * against the address (see loginCases); the rest fail their schema first.
 */
function signInLinkCases(): HttpCase[] {
  const route = ROUTES.signInLink;
  const body = (overrides: Overrides) => () => json(signInLinkBody(overrides));
  return [
    ...bodyCases(route, signInLinkBody, "none"),
    apiCase(route, "an empty body", badJson, { auth: "none", body: null }),
    apiCase(route, "a token nobody issued", invalidSignInLink, { auth: "none" }),
    apiCase(route, "a well-formed token nobody issued", invalidSignInLink, { auth: "none", body: body({ token: "A".repeat(43) }) }),
    apiCase(route, "token missing", invalid("missing_required_parameter", "token"), { auth: "none", body: body({ token: OMIT }) }),
    apiCase(route, "token empty", invalid("missing_required_parameter", "token"), { auth: "none", body: body({ token: "" }) }),
    apiCase(route, "token null", invalid("missing_required_parameter", "token"), { auth: "none", body: body({ token: null }) }),
    apiCase(route, "token a number", invalid("invalid_type", "token"), { auth: "none", body: body({ token: 42 }) }),
    apiCase(route, "token an object", invalid("invalid_type", "token"), { auth: "none", body: body({ token: { value: "x" } }) }),
    apiCase(route, "a token of 257 characters", invalid("string_above_max_length", "token"), {
      auth: "none",
      body: body({ token: "t".repeat(257) }),
    }),
    apiCase(route, "a password beside the token", invalid("unknown_parameter", "password"), {
      auth: "none",
      body: body({ password: STRONG_PASSWORD }),
    }),
  ];
}

/** meCases ask who the caller is without saying. */
function meCases(): HttpCase[] {
  return credentialCases(ROUTES.me);
}

/** sessionCases ask for the session without a session: the API key does not count here. */
function sessionCases(): HttpCase[] {
  const route = ROUTES.session;
  return [
    apiCase(route, "no cookie", sessionExpired, { auth: "none" }),
    apiCase(route, "a session cookie no registry issued", sessionExpired, { auth: bogusSession() }),
    apiCase(route, "an empty session cookie", sessionExpired, { auth: { session: "" } }),
    apiCase(route, "the user's API key instead of a session", sessionExpired),
    apiCase(route, "a session cookie of 1,000 characters", sessionExpired, { auth: { session: "s".repeat(1000) } }),
  ];
}

/** optionsCases: the public sign-in options take no parameters, and no credential makes them fail. */
function optionsCases(): HttpCase[] {
  const route = ROUTES.options;
  const query = (name: string, search: string) => apiCase(route, name, refused, { auth: "none", path: `/api/auth/options?${search}` });
  return [
    query("an unknown query parameter", "signup=open"),
    query("a query parameter of 1,000 characters", `${"x".repeat(1000)}=1`),
    query("an unknown parameter given twice", "a=1&a=2"),
    apiCase(route, "an unknown query parameter beside a bogus session", refused, {
      auth: bogusSession(),
      path: "/api/auth/options?debug=1",
    }),
  ];
}

/**
 * logoutCases: signing out checks no session (there may be none left to end), but a cookie to end needs its CSRF
 * token, so that another site cannot sign a member out.
 */
function logoutCases(): HttpCase[] {
  const route = ROUTES.logout;
  return [
    apiCase(route, "the user's session without X-CSRF-Token", csrfInvalid, { auth: ownSession() }),
    apiCase(route, "the user's session with a forged X-CSRF-Token", csrfInvalid, { auth: ownSession("forged-token") }),
    apiCase(route, "the user's session with another session's X-CSRF-Token", csrfInvalid, {
      auth: ownSession(csrfTokenFor(BOGUS_SESSION)),
    }),
    apiCase(route, "a bogus session without X-CSRF-Token", csrfInvalid, { auth: bogusSession() }),
    apiCase(route, "17 MiB body over the 16 MiB limit", tooLarge, {
      auth: "none",
      body: () => Buffer.alloc(17 * MiB, 0x20),
      headers: JSON_TYPE,
    }),
  ];
}

function keyCases(): HttpCase[] {
  const create = ROUTES.createKey;
  const revoke = ROUTES.revokeKey;
  const body = (overrides: Overrides) => () => json(keyBody(overrides));
  return [
    ...credentialCases(ROUTES.listKeys),
    ...credentialCases(create),
    ...csrfCases(create),
    ...bodyCases(create, keyBody),
    apiCase(create, "label a number", invalid("invalid_type", "label"), { body: body({ label: 7 }) }),
    apiCase(create, "label null", invalid("invalid_type", "label"), { body: body({ label: null }) }),
    apiCase(create, "a label of 257 characters", invalid("string_above_max_length", "label"), { body: body({ label: "l".repeat(257) }) }),
    // The session's CSRF token gets a write past the session's checks, to the schema's.
    apiCase(create, "the user's session and its X-CSRF-Token, a label of 257 characters", invalid("string_above_max_length", "label"), {
      auth: ownSession(ownCsrf),
      body: body({ label: "l".repeat(257) }),
    }),
    ...credentialCases(revoke),
    ...csrfCases(revoke),
    apiCase(revoke, "a key id nobody has", notFound),
    apiCase(revoke, "another user's key id", notFound, { auth: otherUser, path: (c) => `/api/keys/${c.spareKeyId}` }),
    apiCase(revoke, "a key id of 65 characters", refused, { path: `/api/keys/${"k".repeat(65)}` }),
    apiCase(revoke, "a key id of spaces", notFound, { path: "/api/keys/%20%20" }),
    apiCase(revoke, "the user's session and its X-CSRF-Token, a key id nobody has", notFound, { auth: ownSession(ownCsrf) }),
  ];
}

function usageCases(): HttpCase[] {
  const route = ROUTES.usage;
  const query = (name: string, search: string, expect: HttpExpectation) => apiCase(route, name, expect, { path: `/api/usage?${search}` });
  const param = (name: string) => invalid(null, name);
  return [
    ...credentialCases(route),
    query("group_by=bogus", "group_by=bogus", param("group_by")),
    query("group_by with one bogus group of two", "group_by=day,bogus", param("group_by")),
    query("group_by of 65 characters", `group_by=${"d".repeat(65)}`, refused),
    query("from=yesterday", "from=yesterday", param("from")),
    query("from a date with month 13", "from=2024-13-45", param("from")),
    query("to=soon", "to=soon", param("to")),
    query("from later than to", "from=2000000000&to=1000000000", param("from")),
    query("from in the year 33658, later than now", "from=999999999999", param("from")),
    query("from of 41 characters", `from=${"1".repeat(41)}`, refused),
    query("from given twice", "from=1&from=2", refused),
    query("scope=everyone", "scope=everyone", refused),
    query("scope=all, the operators' scope", "scope=all", refused),
    query("an unknown query parameter", "user=bob", refused),
    apiCase(route, "the user's session, group_by=bogus", param("group_by"), { auth: ownSession(), path: "/api/usage?group_by=bogus" }),
  ];
}

function providerCases(): HttpCase[] {
  const sharing = ROUTES.sharing;
  const own = (action: string) => providerPath(action, (c) => c.providerId);
  const body = (overrides: Overrides) => () => json(sharingBody(overrides));
  const users = (count: number) => Array.from({ length: count }, (_, i) => `user-${i}`);
  const switchCases = (route: ApiRoute, action: string): HttpCase[] => [
    ...credentialCases(route),
    ...csrfCases(route),
    apiCase(route, "a provider nobody has", notFound),
    apiCase(route, "another user's provider", notFound, { auth: otherUser, path: own(action) }),
    // Provider ids have up to 128 characters (the registry's rule): the longest must reach the handler.
    apiCase(route, "a provider id of 128 characters nobody has", notFound, { path: providerPath(action, "p".repeat(128)) }),
    apiCase(route, "a provider id of 129 characters", refused, { path: providerPath(action, "p".repeat(129)) }),
    apiCase(route, "17 MiB body over the 16 MiB limit", tooLarge, { body: () => Buffer.alloc(17 * MiB, 0x20), headers: JSON_TYPE }),
  ];
  return [
    ...credentialCases(ROUTES.providers),
    ...switchCases(ROUTES.pause, "pause"),
    ...switchCases(ROUTES.resume, "resume"),
    ...credentialCases(sharing),
    ...csrfCases(sharing),
    // The schema is checked before the provider is looked up: the user's own provider, unchanged.
    ...bodyCases({ ...sharing, path: own("sharing") }, sharingBody),
    apiCase(sharing, 'visibility "friends"', invalid("invalid_value", "visibility"), {
      path: own("sharing"),
      body: body({ visibility: "friends" }),
    }),
    apiCase(sharing, "visibility a number", invalid("invalid_type", "visibility"), { path: own("sharing"), body: body({ visibility: 2 }) }),
    apiCase(sharing, "visibility missing", invalid("missing_required_parameter", "visibility"), {
      path: own("sharing"),
      body: body({ visibility: OMIT, users: ["bob"] }),
    }),
    apiCase(sharing, "users not an array", invalid("invalid_type", "users"), {
      path: own("sharing"),
      body: body({ visibility: "users", users: "bob" }),
    }),
    apiCase(sharing, "257 users, over the 256 allowed", invalid("invalid_value", "users"), {
      path: own("sharing"),
      body: body({ visibility: "users", users: users(257) }),
    }),
    apiCase(sharing, "a user name of 65 characters", invalid("string_above_max_length", "users[0]"), {
      path: own("sharing"),
      body: body({ visibility: "users", users: ["u".repeat(65)] }),
    }),
    apiCase(sharing, "a user name that is a number", invalid("invalid_type", "users[0]"), {
      path: own("sharing"),
      body: body({ visibility: "users", users: [7] }),
    }),
    apiCase(sharing, "a provider nobody has", notFound),
    apiCase(sharing, "another user's provider", notFound, { auth: otherUser, path: own("sharing") }),
    apiCase(sharing, "a provider id of 128 characters nobody has", notFound, { path: providerPath("sharing", "p".repeat(128)) }),
    apiCase(sharing, "a provider id of 129 characters", refused, { path: providerPath("sharing", "p".repeat(129)) }),
  ];
}

/** routeCases are routes under /api/ that no one documents: 404 unknown_url, after authentication outside /api/auth/. */
function routeCases(): HttpCase[] {
  const route = (method: string, path: string, auth: Auth = "valid", expect: HttpExpectation = unknownRoute): HttpCase => ({
    kind: "http",
    name: `${method} ${path}${auth === "none" ? " without credentials" : ""}`,
    method,
    path,
    auth,
    expect,
  });
  return [
    route("GET", "/api/no-such-route"),
    route("GET", "/api/no-such-route", "none", unauthorized),
    route("GET", "/api/auth/no-such-route", "none"),
    route("GET", "/api/auth/login", "none"),
    route("PATCH", "/api/me"),
    route("DELETE", "/api/keys"),
    route("GET", "/api/keys/abc"),
    route("DELETE", "/api/keys/abc/extra"),
    route("POST", "/api/providers/x/explode"),
    route("GET", "/api/providers/x/sharing"),
  ];
}

/** apiCorpus is every case of the members' control-plane API. */
export function apiCorpus(): HttpCase[] {
  return [
    ...loginCases(),
    ...signupCases(),
    ...inviteCases(),
    ...signInLinkCases(),
    ...sessionCases(),
    ...optionsCases(),
    ...logoutCases(),
    ...meCases(),
    ...keyCases(),
    ...usageCases(),
    ...providerCases(),
    ...routeCases(),
  ];
}
