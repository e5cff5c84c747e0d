import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { AccountService, User } from "../../gen/infermesh/v1/accounts_pb.js";
import type { ApiKey, RegistryService } from "../../gen/infermesh/v1/registry_pb.js";
import {
  INVITE_SCHEMA,
  KEYS_CREATE_SCHEMA,
  KEYS_LIST_SCHEMA,
  KEYS_REVOKE_SCHEMA,
  LOGIN_SCHEMA,
  LOGOUT_SCHEMA,
  ME_SCHEMA,
  SESSION_SCHEMA,
  SIGN_IN_LINK_SCHEMA,
  SIGNUP_SCHEMA,
} from "./api-schemas.js";
import { csrfRefused, GatewayError, rateLimited, sessionExpired } from "./gateway-errors.js";
import type { SignupMode } from "./gateway-options.js";
import type { LoginLimiter } from "./login-limiter.js";
import { controlPlaneRoute, fromControlPlane } from "./registry-errors.js";
import type { JsonBody } from "./request-validation.js";
import { CSRF_HEADER, clearSessionCookie, csrfTokenFor, csrfTokenMatches, sessionIdOf, setSessionCookie } from "./session-cookie.js";

/** CONTROL_PLANE_TIMEOUT_MS bounds one registry call made for a member. */
export const CONTROL_PLANE_TIMEOUT_MS = 10_000;

/** AccountRoutesOptions are what the sign-in and key routes work with. */
export interface AccountRoutesOptions {
  readonly registry: Client<typeof RegistryService>;
  readonly accounts: Client<typeof AccountService>;
  readonly meshHeaders: Readonly<Record<string, string>>;
  readonly signup: SignupMode;
  /** tls marks session cookies Secure: the gateway serves TLS itself. */
  readonly tls: boolean;
  readonly limiter: LoginLimiter;
  /** forgetSession drops a session from the gateway's cache, so that signing out takes effect here at once. */
  readonly forgetSession: (sessionId: string) => void;
}

type Body<T> = { Body: JsonBody & { json: T } };

/**
 * accountRoutes serves sign-in (by password or one-time link), sign-up, invites, sign-out and the caller's API keys.
 * Passwords, link tokens and session ids go to the registry and into the cookie, never into a log line; a failed
 * sign-in looks the same whether the name exists or not, and counts against the client's address and the name it gave.
 */
export async function accountRoutes(app: FastifyInstance, options: AccountRoutesOptions): Promise<void> {
  const call = { headers: options.meshHeaders, timeoutMs: CONTROL_PLANE_TIMEOUT_MS };
  const { accounts, registry } = options;

  async function signIn(request: FastifyRequest, reply: FastifyReply, user: User | undefined, status: number) {
    if (!user) throw fromControlPlane(new Error("the registry answered without the user"));
    // A new session id at every sign-in; the one the browser held before, if any, ends.
    const previous = sessionIdOf(request);
    if (previous) await endSession(previous);
    const session = await accounts.createSession({ userId: user.id }, call);
    const expiresAtMs = millis(session.expireTime) ?? Date.now();
    setSessionCookie(request, reply, session.sessionId, expiresAtMs, options.tls);
    return reply.code(status).send({
      user: { id: user.id, name: user.name },
      csrf_token: csrfTokenFor(session.sessionId),
      expires_at: Math.floor(expiresAtMs / 1000),
    });
  }

  /**
   * limitedCheck runs a sign-in check under the login limiter: refused with 429 while the address (or the name) is
   * over its limit, and a check the registry refuses counts against them and becomes the refusal given.
   */
  async function limitedCheck(
    address: string,
    userName: string | undefined,
    check: () => Promise<User | undefined>,
    refusal: () => GatewayError,
  ): Promise<User | undefined> {
    const waitSeconds = options.limiter.retryAfterSeconds(address, userName);
    if (waitSeconds > 0) throw rateLimited("Too many failed sign-ins; try again later.", "login_rate_limited", waitSeconds);
    try {
      return await check();
    } catch (error) {
      if (!(error instanceof ConnectError && error.code === Code.Unauthenticated)) throw error;
      options.limiter.failed(address, userName);
      throw refusal();
    }
  }

  async function endSession(sessionId: string): Promise<void> {
    options.forgetSession(sessionId);
    await accounts.revokeSessions({ sessionId }, call);
  }

  app.post(
    "/api/auth/login",
    { schema: LOGIN_SCHEMA },
    controlPlaneRoute(async (request: FastifyRequest<Body<{ name: string; password: string }>>, reply) => {
      const { name, password } = request.body.json;
      const user = await limitedCheck(
        request.ip,
        name,
        async () => (await accounts.checkPassword({ userName: name, password }, call)).user,
        () => new GatewayError(401, "authentication_error", "Wrong user name or password.", { code: "invalid_credentials" }),
      );
      options.limiter.succeeded(name);
      return signIn(request, reply, user, 200);
    }),
  );

  app.post(
    "/api/auth/sign-in-link",
    { schema: SIGN_IN_LINK_SCHEMA },
    controlPlaneRoute(async (request: FastifyRequest<Body<{ token: string }>>, reply) => {
      // A link names no user, so its failures count against the address alone.
      const user = await limitedCheck(
        request.ip,
        undefined,
        async () => (await accounts.useSignInLink({ token: request.body.json.token }, call)).user,
        () =>
          new GatewayError(401, "authentication_error", "This sign-in link was used, expired, or never existed: ask for a new one.", {
            code: "invalid_sign_in_link",
          }),
      );
      return signIn(request, reply, user, 200);
    }),
  );

  app.post(
    "/api/auth/signup",
    { schema: SIGNUP_SCHEMA },
    controlPlaneRoute(async (request: FastifyRequest<Body<{ name: string; password: string }>>, reply) => {
      if (options.signup !== "open") throw signupRefused(options.signup);
      const { name, password } = request.body.json;
      const { user } = await accounts.signUp({ userName: name, password }, call);
      return signIn(request, reply, user, 201);
    }),
  );

  app.post(
    "/api/auth/invite",
    { schema: INVITE_SCHEMA },
    controlPlaneRoute(async (request: FastifyRequest<Body<{ token: string; password: string }>>, reply) => {
      if (options.signup === "closed") throw signupRefused("closed");
      const { token, password } = request.body.json;
      const { user } = await accounts.acceptInvite({ inviteToken: token, password }, call);
      return signIn(request, reply, user, 200);
    }),
  );

  app.get(
    "/api/auth/session",
    { schema: SESSION_SCHEMA },
    controlPlaneRoute(async (request) => {
      const sessionId = sessionIdOf(request);
      if (!sessionId) throw sessionExpired();
      const principal = await sessionPrincipal(sessionId);
      return { user: { id: principal.userId, name: principal.userName }, csrf_token: csrfTokenFor(sessionId) };
    }),
  );

  app.post(
    "/api/auth/logout",
    { schema: LOGOUT_SCHEMA },
    controlPlaneRoute(async (request, reply) => {
      const sessionId = sessionIdOf(request);
      if (sessionId) {
        if (!csrfTokenMatches(sessionId, request.headers[CSRF_HEADER])) throw csrfRefused();
        await endSession(sessionId);
      }
      clearSessionCookie(reply);
      return reply.code(204).send();
    }),
  );

  async function sessionPrincipal(sessionId: string) {
    try {
      const { principal } = await accounts.resolveSession({ sessionId }, call);
      if (principal) return principal;
    } catch (error) {
      if (!(error instanceof ConnectError && error.code === Code.Unauthenticated)) throw error;
    }
    throw sessionExpired();
  }

  app.get("/api/me", { schema: ME_SCHEMA }, async (request) => ({
    id: request.principal.userId,
    name: request.principal.userName,
    auth: request.sessionId === undefined ? "api_key" : "session",
  }));

  app.get(
    "/api/keys",
    { schema: KEYS_LIST_SCHEMA },
    controlPlaneRoute(async (request) => {
      const { keys } = await registry.listApiKeys({ userName: request.principal.userName }, call);
      return { object: "list", data: keys.map(keyEntry) };
    }),
  );

  app.post(
    "/api/keys",
    { schema: KEYS_CREATE_SCHEMA },
    controlPlaneRoute(async (request: FastifyRequest<Body<{ label?: string }>>, reply) => {
      const label = request.body.json.label ?? "";
      const created = await registry.createApiKey({ userName: request.principal.userName, label }, call);
      return reply.code(201).send({ ...(created.key ? keyEntry(created.key) : {}), key: created.apiKey });
    }),
  );

  app.delete(
    "/api/keys/:id",
    { schema: KEYS_REVOKE_SCHEMA },
    controlPlaneRoute(async (request: FastifyRequest<{ Params: { id: string } }>) => {
      const { key } = await registry.revokeApiKey({ keyId: request.params.id, userName: request.principal.userName }, call);
      return { id: key?.id ?? request.params.id, object: "api_key", revoked: true };
    }),
  );
}

function signupRefused(mode: SignupMode): GatewayError {
  const message =
    mode === "closed" ? "This mesh takes no new accounts." : "This mesh takes new accounts by invitation: ask its operator for an invite.";
  return new GatewayError(403, "permission_error", message, { code: "signup_closed" });
}

function keyEntry(key: ApiKey) {
  return {
    id: key.id,
    object: "api_key",
    label: key.label,
    created_at: seconds(key.createTime),
    last_used_at: seconds(key.lastUseTime),
  };
}

function millis(time: Timestamp | undefined): number | undefined {
  return time === undefined ? undefined : Number(time.seconds) * 1000 + Math.floor(time.nanos / 1e6);
}

function seconds(time: Timestamp | undefined): number | null {
  return time === undefined ? null : Number(time.seconds);
}
