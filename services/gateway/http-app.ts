import { randomUUID } from "node:crypto";
import fastifyCookie from "@fastify/cookie";
import fastifyMultipart from "@fastify/multipart";
import fastifySwagger from "@fastify/swagger";
import fastifySwaggerUi from "@fastify/swagger-ui";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerFactory,
  LogController,
} from "fastify";
import type { Principal } from "../../gen/infermesh/v1/registry_pb.js";
import { bearerToken } from "../shared/bearer.js";
import { OPERATIONS } from "../shared/inference-catalog.js";
import type { Logger } from "../shared/logger.js";
import { anthropicErrorBody } from "./anthropic-errors.js";
import { API_KEY_HEADER_AUTH } from "./anthropic-schemas.js";
import {
  type Api,
  answerClientError,
  csrfRefused,
  GatewayError,
  internalError,
  invalidApiKey,
  refusedHttp,
  sessionExpired,
  tooLarge,
  unknownRoute,
} from "./gateway-errors.js";
import { BEARER_AUTH, OPENAPI_INFO, SESSION_COOKIE_AUTH } from "./openai-schemas.js";
import { requestValidatorCompiler } from "./request-validation.js";
import { CSRF_HEADER, csrfTokenMatches, sessionIdOf } from "./session-cookie.js";

declare module "fastify" {
  interface FastifyRequest {
    /** principal is the authenticated caller of a /v1/ or members' /api/ route, set by the auth hook. */
    principal: Principal;
    /** sessionId is the session that authenticated the request, when a session cookie did rather than an API key. */
    sessionId: string | undefined;
  }
}

/** SAFE_METHODS change nothing, so a session cookie alone authenticates them; other methods need the CSRF token too. */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** HttpAppOptions are what the gateway's HTTP face is built with. */
export interface HttpAppOptions {
  readonly log: Logger;
  /** serverFactory makes the server Fastify listens on (see shared-port.ts); Node's HTTP server by default. */
  readonly serverFactory?: FastifyServerFactory;
  readonly bodyLimitBytes: number;
  readonly maxUploadBytes: number;
  /** authenticate resolves an API key to its caller, undefined for a bad key; it throws when it cannot tell. */
  readonly authenticate: (apiKey: string) => Promise<Principal | undefined>;
  /** resolveSession resolves a session id to its user, undefined when it is not valid; it throws when it cannot tell. */
  readonly resolveSession: (sessionId: string) => Promise<Principal | undefined>;
  /** trustProxy names the proxies whose X-Forwarded-* headers are believed (Fastify's trustProxy). */
  readonly trustProxy?: string | undefined;
}

/**
 * authenticated tells whether a path needs a caller: the OpenAI routes and the members' /api/, but not sign-in
 * (/api/auth/) and not the agents' HTTP heartbeat (/api/inference/), which check their own credentials.
 */
function authenticated(url: string): boolean {
  if (url.startsWith("/v1/")) return true;
  return url.startsWith("/api/") && !url.startsWith("/api/auth/") && !url.startsWith("/api/inference/");
}

/**
 * createHttpApp builds the Fastify instance every gateway route runs in: bodies kept as bytes and validated by the
 * routes' schemas, an API key required under /v1/ (in x-api-key too on Anthropic's routes), the request id carried
 * both ways, /openapi.json and /docs from the schemas, and every failure, Fastify's and Node's own included, answered
 * in OpenAI's error envelope, or in Anthropic's on its routes.
 */
export function createHttpApp(options: HttpAppOptions): FastifyInstance {
  const http = Fastify({
    ...(options.serverFactory ? { serverFactory: options.serverFactory } : {}),
    // pino's Logger is Fastify's logger; the cast only bridges the two packages' type declarations.
    loggerInstance: options.log as FastifyBaseLogger,
    // One line per request is the access log's job, not the service log's: it would cost more than the proxying.
    logController: new LogController({ disableRequestLogging: true }),
    // Requests log through the service's logger itself: a pino child per request (its bindings, its redaction set-up)
    // cost more than all of a request's logging, and the lines that matter name the request id themselves.
    childLoggerFactory: (logger) => logger,
    bodyLimit: options.bodyLimitBytes,
    // Provider ids run to 128 characters; Fastify's default stops path parameters at 100.
    routerOptions: { maxParamLength: 256 },
    ...(options.trustProxy === undefined ? {} : { trustProxy: options.trustProxy }),
    genReqId: (request) => {
      const given = request.headers["x-request-id"];
      return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // Streams may run for minutes; deadlines are enforced per request, not by the socket.
    requestTimeout: 0,
    return503OnClosing: true,
    // Requests Node's parser refuses (headers over the limit, broken framing) and URLs the router cannot decode get
    // OpenAI's envelope too, not Fastify's default bodies.
    clientErrorHandler: answerClientError,
    frameworkErrors: (error, request, reply) => {
      const failure = fromFastifyError(error);
      void (reply as FastifyReply)
        .code(failure.status)
        .header("content-type", "application/json")
        .send(errorBody(failure, request as FastifyRequest));
    },
  });
  // Bodies stay bytes: the provider gets the client's exact JSON, and the gateway parses it once for routing.
  http.removeAllContentTypeParsers();
  http.addContentTypeParser("*", { parseAs: "buffer" }, (_request, body, done) => done(null, body));
  // The route schemas are the request contract: they validate each body (see request-validation.ts) and document it
  // in /openapi.json. Response schemas only document: replies (Buffers, hijacked streams, our own JSON) serialize
  // exactly as they would without one.
  http.setValidatorCompiler(requestValidatorCompiler);
  http.setSerializerCompiler(() => (data) => JSON.stringify(data));
  void http.register(fastifyMultipart, { limits: { fileSize: options.maxUploadBytes } });
  // Parsed on demand (sessionIdOf), not on every request: API-key traffic carries no cookie worth the work.
  void http.register(fastifyCookie, { hook: false });
  // Registered before every route, so its onRoute hook sees each one's schema.
  void http.register(fastifySwagger, {
    openapi: {
      openapi: "3.1.0",
      info: OPENAPI_INFO,
      components: { securitySchemes: { bearerAuth: BEARER_AUTH, apiKeyHeader: API_KEY_HEADER_AUTH, sessionCookie: SESSION_COOKIE_AUTH } },
      security: [{ bearerAuth: [] }],
    },
  });
  void http.register(fastifySwaggerUi, { routePrefix: "/docs", uiConfig: { deepLinking: true } });
  http.decorateRequest("sessionId", undefined);
  http.addHook("onRequest", async (request, reply) => {
    reply.header("x-request-id", request.id);
    if (!authenticated(request.url)) return;
    const api = apiOf(request);
    // Anthropic's clients send the key in x-api-key; on its routes that header comes first, then a bearer token.
    const keyHeader = api === "anthropic" ? headerValue(request.headers["x-api-key"]) : undefined;
    const header = request.headers.authorization;
    const sessionId = header === undefined && keyHeader === undefined ? sessionIdOf(request) : undefined;
    if (sessionId !== undefined) {
      const principal = await options.resolveSession(sessionId);
      if (!principal) throw sessionExpired();
      if (!SAFE_METHODS.has(request.method) && !csrfTokenMatches(sessionId, request.headers[CSRF_HEADER])) throw csrfRefused();
      request.principal = principal;
      request.sessionId = sessionId;
      return;
    }
    const presented = keyHeader ?? header;
    const apiKey = keyHeader === undefined ? bearerToken(header) : keyHeader.trim() || undefined;
    if (!apiKey) throw invalidApiKey(typeof presented === "string" && presented.length > 0, api);
    const principal = await options.authenticate(apiKey);
    if (!principal) throw invalidApiKey(true, api);
    request.principal = principal;
  });
  http.setErrorHandler((error: FastifyError | GatewayError, request, reply) => {
    const failure = error instanceof GatewayError ? error : fromFastifyError(error);
    if (failure.status >= 500) {
      const answeredBy = request.dispatch?.answeredBy;
      request.log.warn(
        { err: error, requestId: request.id, provider: answeredBy?.provider.id, model: answeredBy?.model.id },
        failure.message,
      );
    }
    if (failure.retryAfterSeconds !== undefined) void reply.header("retry-after", String(failure.retryAfterSeconds));
    if (failure.status === 413 && !request.raw.readableEnded) {
      // Read and drop the rest of the upload, so the client gets to read this answer instead of a reset.
      void reply.header("connection", "close");
      request.raw.resume();
    }
    void reply.code(failure.status).header("content-type", "application/json").send(errorBody(failure, request));
  });
  http.setNotFoundHandler((request, reply) => {
    void reply.code(404).send(errorBody(unknownRoute(request.method, request.url), request));
  });
  return http;
}

/**
 * apiOf is whose API a request is for: its route's operation's, or, for a request no route took (a wrong method, an
 * unknown path), Anthropic's under /v1/messages, so that Anthropic's clients read every answer there.
 */
export function apiOf(request: FastifyRequest): Api {
  const operation = request.routeOptions.config?.operation;
  if (operation !== undefined) return OPERATIONS[operation].api;
  const path = request.url.split("?")[0] ?? "";
  return path === ANTHROPIC_PREFIX || path.startsWith(`${ANTHROPIC_PREFIX}/`) ? "anthropic" : "openai";
}

/** headerValue is a header's value as one string; Node joins most repeated headers so, but may hand over a list. */
function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(", ") : value;
}

/** ANTHROPIC_PREFIX is where the Anthropic routes live. */
const ANTHROPIC_PREFIX = "/v1/messages";

/** errorBody is a failure in the envelope of the API the request is for: OpenAI's, or Anthropic's with the request id. */
function errorBody(failure: GatewayError, request: FastifyRequest): object {
  return apiOf(request) === "anthropic" ? anthropicErrorBody(failure, request.id) : failure.body();
}

/** fromFastifyError maps Fastify's own errors (body too large, bad content) to OpenAI's envelope. */
function fromFastifyError(error: FastifyError): GatewayError {
  const status = error.statusCode ?? 500;
  if (status === 413) return tooLarge("The request body is too large.", { cause: error });
  if (status >= 400 && status < 500) return refusedHttp(status, error.message, undefined, error);
  return internalError("The gateway failed to handle the request.", error);
}
