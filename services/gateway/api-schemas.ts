import type { FastifySchema } from "fastify";
import { ERROR_RESPONSES, jsonResponse } from "./openai-schemas.js";

/**
 * The members' control-plane API under /api/: sign-in, keys, usage and providers. Each schema validates its route's
 * input (request-validation.ts) and documents it in /openapi.json, as the OpenAI routes' schemas do.
 */

const MEMBERS = ["members"];
const NO_AUTH: readonly Record<string, string[]>[] = [];
/** Routes under /api/ take the API key or the session cookie (with X-CSRF-Token on writes). */
const MEMBER_AUTH = [{ bearerAuth: [] }, { sessionCookie: [] }];

/** idParams is a route's `{id}` path parameter, up to maxLength characters. */
const idParams = (maxLength: number) =>
  ({ type: "object", required: ["id"], properties: { id: { type: "string", minLength: 1, maxLength } } }) as const;

/** listOf documents a `{"object": "list", "data": [...]}` answer. */
const listOf = (items: object, description: string) =>
  jsonResponse({ type: "object", properties: { object: { const: "list" }, data: { type: "array", items } } }, description);

const userName = {
  type: "string",
  minLength: 1,
  maxLength: 64,
  pattern: "^[A-Za-z0-9._@-]+$",
  description: "1 to 64 of A-Z a-z 0-9 . _ @ -",
} as const;
const password = { type: "string", minLength: 1, maxLength: 1024 } as const;
const unixSeconds = { type: ["integer", "null"], description: "Unix time in seconds" } as const;

const user = {
  type: "object",
  required: ["id", "name"],
  properties: { id: { type: "string" }, name: { type: "string" } },
} as const;

const signedIn = {
  type: "object",
  required: ["user", "csrf_token"],
  properties: {
    user,
    csrf_token: { type: "string", description: "Send it as X-CSRF-Token with every write the session cookie authenticates." },
    expires_at: unixSeconds,
  },
} as const;

/** LOGIN_SCHEMA is POST /api/auth/login. */
export const LOGIN_SCHEMA = {
  summary: "Sign in: starts a session (HttpOnly cookie) and returns its CSRF token",
  tags: MEMBERS,
  security: NO_AUTH,
  body: {
    type: "object",
    required: ["name", "password"],
    additionalProperties: false,
    properties: { name: userName, password },
  },
  response: { 200: jsonResponse(signedIn, "Signed in; the session cookie is set."), ...ERROR_RESPONSES },
} as const satisfies FastifySchema;

/** SIGNUP_SCHEMA is POST /api/auth/signup. */
export const SIGNUP_SCHEMA = {
  summary: "Make an account and sign in (only where sign-up is open)",
  tags: MEMBERS,
  security: NO_AUTH,
  body: {
    type: "object",
    required: ["name", "password"],
    additionalProperties: false,
    properties: { name: userName, password: { ...password, minLength: 8 } },
  },
  response: { 201: jsonResponse(signedIn, "Account made and signed in."), ...ERROR_RESPONSES },
} as const satisfies FastifySchema;

/** INVITE_SCHEMA is POST /api/auth/invite. */
export const INVITE_SCHEMA = {
  summary: "Use an invite: set the account's password and sign in",
  tags: MEMBERS,
  security: NO_AUTH,
  body: {
    type: "object",
    required: ["token", "password"],
    additionalProperties: false,
    properties: { token: { type: "string", minLength: 1, maxLength: 256 }, password: { ...password, minLength: 8 } },
  },
  response: { 200: jsonResponse(signedIn, "Password set and signed in."), ...ERROR_RESPONSES },
} as const satisfies FastifySchema;

/** SIGN_IN_LINK_SCHEMA is POST /api/auth/sign-in-link. */
export const SIGN_IN_LINK_SCHEMA = {
  summary: "Use a one-time sign-in link: starts a session (HttpOnly cookie) and returns its CSRF token",
  description:
    "The token comes from a link that `infermesh users sign-in-link` or `infermesh dev` printed, in its `#token=` fragment. " +
    "A link works once, until it expires; failures count against the client's address like failed sign-ins.",
  tags: MEMBERS,
  security: NO_AUTH,
  body: {
    type: "object",
    required: ["token"],
    additionalProperties: false,
    properties: { token: { type: "string", minLength: 1, maxLength: 256 } },
  },
  response: { 200: jsonResponse(signedIn, "Signed in; the session cookie is set."), ...ERROR_RESPONSES },
} as const satisfies FastifySchema;

/** SESSION_SCHEMA is GET /api/auth/session. */
export const SESSION_SCHEMA = {
  summary: "The signed-in user and the session's CSRF token",
  tags: MEMBERS,
  security: [{ sessionCookie: [] }],
  response: { 200: jsonResponse(signedIn, "The session is valid."), ...ERROR_RESPONSES },
} as const satisfies FastifySchema;

/** LOGOUT_SCHEMA is POST /api/auth/logout. */
export const LOGOUT_SCHEMA = {
  summary: "Sign out: ends the session",
  tags: MEMBERS,
  security: [{ sessionCookie: [] }],
  response: { 204: { description: "Signed out; the cookie is cleared." }, ...ERROR_RESPONSES },
} as const satisfies FastifySchema;

/** ME_SCHEMA is GET /api/me. */
export const ME_SCHEMA = {
  summary: "Who the caller is",
  tags: MEMBERS,
  security: MEMBER_AUTH,
  response: {
    200: jsonResponse(
      {
        type: "object",
        required: ["id", "name", "auth"],
        properties: { id: { type: "string" }, name: { type: "string" }, auth: { type: "string", enum: ["api_key", "session"] } },
      },
      "The caller.",
    ),
    ...ERROR_RESPONSES,
  },
} as const satisfies FastifySchema;

const apiKey = {
  type: "object",
  required: ["id", "object", "label", "created_at", "last_used_at"],
  properties: {
    id: { type: "string" },
    object: { const: "api_key" },
    label: { type: "string" },
    created_at: unixSeconds,
    last_used_at: unixSeconds,
    key: { type: "string", description: "The secret key: in the answer that creates it, and never again." },
  },
} as const;

/** KEYS_LIST_SCHEMA is GET /api/keys. */
export const KEYS_LIST_SCHEMA = {
  summary: "The caller's API keys (never the secrets)",
  tags: MEMBERS,
  security: MEMBER_AUTH,
  response: {
    200: listOf(apiKey, "Keys."),
    ...ERROR_RESPONSES,
  },
} as const satisfies FastifySchema;

/** KEYS_CREATE_SCHEMA is POST /api/keys. */
export const KEYS_CREATE_SCHEMA = {
  summary: "Create an API key; the answer shows it once",
  tags: MEMBERS,
  security: MEMBER_AUTH,
  body: {
    type: "object",
    additionalProperties: false,
    properties: { label: { type: "string", maxLength: 256, description: "A note to tell keys apart." } },
  },
  response: { 201: jsonResponse(apiKey, "The new key, with its secret."), ...ERROR_RESPONSES },
} as const satisfies FastifySchema;

/** KEYS_REVOKE_SCHEMA is DELETE /api/keys/{id}. */
export const KEYS_REVOKE_SCHEMA = {
  summary: "Revoke an API key: it stops working within 2 s on every gateway",
  tags: MEMBERS,
  security: MEMBER_AUTH,
  params: idParams(64),
  response: {
    200: jsonResponse(
      { type: "object", properties: { id: { type: "string" }, object: { const: "api_key" }, revoked: { const: true } } },
      "Revoked.",
    ),
    ...ERROR_RESPONSES,
  },
} as const satisfies FastifySchema;

/** USAGE_GROUPS are the dimensions /api/usage groups by. */
export const USAGE_GROUPS = ["day", "hour", "model", "key", "provider", "user"] as const;

const usageRow = {
  type: "object",
  description: "One group's sums, with one property per group_by dimension holding the group's value.",
  properties: {
    day: { type: "string" },
    hour: { type: "string" },
    model: { type: "string" },
    key: { type: "string" },
    provider: { type: "string" },
    user: { type: "string" },
    requests: { type: "integer" },
    errors: { type: "integer" },
    prompt_tokens: { type: "integer" },
    completion_tokens: { type: "integer" },
    total_tokens: { type: "integer" },
    audio_seconds: { type: "number" },
    images: { type: "integer" },
    ttfb_ms_avg: { type: "number" },
    duration_ms_avg: { type: "number" },
  },
} as const;

/** USAGE_SCHEMA is GET /api/usage. */
export const USAGE_SCHEMA = {
  summary: "Usage summed over a time range: the caller's calls, or the calls the caller's providers answered",
  tags: MEMBERS,
  security: MEMBER_AUTH,
  querystring: {
    type: "object",
    additionalProperties: false,
    properties: {
      from: { type: "string", maxLength: 40, description: "ISO-8601 time or Unix seconds; default 30 days ago" },
      to: { type: "string", maxLength: 40, description: "ISO-8601 time or Unix seconds, exclusive; default now" },
      group_by: { type: "string", maxLength: 64, description: `comma-separated: ${USAGE_GROUPS.join(", ")}` },
      scope: {
        type: "string",
        enum: ["mine", "providers"],
        description: "mine: the caller's calls (default); providers: calls the caller's providers answered, by anyone",
      },
    },
  },
  response: {
    200: jsonResponse(
      {
        type: "object",
        properties: {
          object: { const: "list" },
          scope: { type: "string" },
          group_by: { type: "array", items: { type: "string" } },
          from: { type: "string" },
          to: { type: "string" },
          data: { type: "array", items: usageRow },
        },
      },
      "Sums.",
    ),
    ...ERROR_RESPONSES,
  },
} as const satisfies FastifySchema;

const sharing = {
  type: "object",
  required: ["visibility"],
  additionalProperties: false,
  properties: {
    visibility: { type: "string", enum: ["private", "users", "public"] },
    users: { type: "array", maxItems: 256, items: userName },
  },
} as const;

const provider = {
  type: "object",
  properties: {
    id: { type: "string" },
    name: { type: "string" },
    status: { type: "string", enum: ["online", "offline", "paused", "draining"] },
    online: { type: "boolean" },
    paused: { type: "boolean" },
    last_seen: unixSeconds,
    sharing,
    models: { type: "array", items: { type: "object" } },
    load: { type: "object" },
    version: { type: "string" },
  },
} as const;

/** PROVIDERS_LIST_SCHEMA is GET /api/providers. */
export const PROVIDERS_LIST_SCHEMA = {
  summary: "The caller's providers, online or not",
  tags: MEMBERS,
  security: MEMBER_AUTH,
  response: {
    200: listOf(provider, "Providers."),
    ...ERROR_RESPONSES,
  },
} as const satisfies FastifySchema;

const providerParams = idParams(128);

/** PROVIDER_PAUSE_SCHEMA is POST /api/providers/{id}/pause and /resume. */
export const PROVIDER_PAUSE_SCHEMA = {
  summary: "Pause (or resume) one of the caller's providers: no new call reaches it; calls in flight finish",
  tags: MEMBERS,
  security: MEMBER_AUTH,
  params: providerParams,
  response: { 200: jsonResponse(provider, "The provider after the change."), ...ERROR_RESPONSES },
} as const satisfies FastifySchema;

/** PROVIDER_SHARING_SCHEMA is PUT /api/providers/{id}/sharing. */
export const PROVIDER_SHARING_SCHEMA = {
  summary: "Set who besides the owner may use a provider; holds until its agent restarts with --share",
  tags: MEMBERS,
  security: MEMBER_AUTH,
  params: providerParams,
  body: sharing,
  response: { 200: jsonResponse(provider, "The provider after the change."), ...ERROR_RESPONSES },
} as const satisfies FastifySchema;

/** AUTH_OPTIONS_SCHEMA is GET /api/auth/options. */
export const AUTH_OPTIONS_SCHEMA = {
  summary: "How one joins and signs in here, and where the gateway's other pages are",
  description: "Public, so that a sign-in page can offer sign-up only where it is open.",
  tags: MEMBERS,
  security: NO_AUTH,
  querystring: { type: "object", additionalProperties: false, properties: {} },
  response: {
    200: jsonResponse(
      {
        type: "object",
        required: ["signup", "metrics_path"],
        properties: {
          signup: { type: "string", enum: ["open", "invite", "closed"], description: "Who may make an account: anyone, invitees, nobody." },
          metrics_path: {
            type: ["string", "null"],
            description: "Where this port serves Prometheus metrics; null when only a private port does.",
          },
        },
      },
      "The gateway's sign-in options.",
    ),
    ...ERROR_RESPONSES,
  },
} as const satisfies FastifySchema;
