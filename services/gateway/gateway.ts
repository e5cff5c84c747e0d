import { randomUUID } from "node:crypto";
import fastifyMultipart from "@fastify/multipart";
import fastifySwagger from "@fastify/swagger";
import fastifySwaggerUi from "@fastify/swagger-ui";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply } from "fastify";
import { InferenceService } from "../../gen/infermesh/v1/inference_pb.js";
import type { Principal, Provider } from "../../gen/infermesh/v1/registry_pb.js";
import { bearerToken } from "../shared/bearer.js";
import { systemClock, type Clock } from "../shared/clock.js";
import { createAgentCalls, type AgentCalls } from "../shared/grpc/infer-client.js";
import { MEDIA_MAX_MESSAGE_BYTES } from "../shared/grpc/message-limits.js";
import { bindService, createGrpcServer } from "../shared/grpc/server.js";
import type { Logger } from "../shared/logger.js";
import fastifyRateLimit from "@fastify/rate-limit";
import { agentHttpRoutes } from "./agent-http-routes.js";
import { DEFAULT_KEEPALIVE_MS } from "./answer-writer.js";
import { AuthCache } from "./auth-cache.js";
import { DEFAULT_FAILOVER_ATTEMPTS, Dispatcher } from "./dispatcher.js";
import {
  answerClientError,
  GatewayError,
  internalError,
  invalidApiKey,
  refusedHttp,
  tooLarge,
  unavailable,
  unknownRoute,
} from "./gateway-errors.js";
import { createGatewayMetrics, observeInferenceRequests, type GatewayMetrics } from "./gateway-metrics.js";
import { DEFAULT_GUARDRAILS, type Guardrails } from "./guardrails.js";
import { createInferenceHandler } from "./inference-handler.js";
import { createInferenceService } from "./inference-service.js";
import { registerMediaRoutes } from "./media-routes.js";
import { DEFAULT_MAX_UPLOAD_BYTES } from "./multipart-form.js";
import { registerOpenAIRoutes } from "./openai-routes.js";
import { BEARER_AUTH, HEALTH_SCHEMA, METRICS_SCHEMA, OPENAPI_INFO } from "./openai-schemas.js";
import { ProviderHealth } from "./provider-health.js";
import { DEFAULT_RATE_LIMITS, perKeyRateLimit, type RateLimits } from "./rate-limits.js";
import { connectRegistry, type RegistryLink } from "./registry-link.js";
import { requestValidatorCompiler } from "./request-validation.js";
import { RoutingTable } from "./routing-table.js";

declare module "fastify" {
  interface FastifyRequest {
    /** principal is the authenticated caller of a /v1/ route, set by the gateway's auth hook. */
    principal: Principal;
  }
}

/** DEFAULT_REQUEST_TIMEOUT_MS bounds one inference request end to end, as inference.club's upstream timeout does. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 300_000;
/** DEFAULT_STREAM_TIMEOUT_MS bounds one streamed request end to end. */
export const DEFAULT_STREAM_TIMEOUT_MS = 30 * 60_000;
/** DEFAULT_BODY_LIMIT_BYTES bounds a JSON request body. */
export const DEFAULT_BODY_LIMIT_BYTES = 16 * 1024 * 1024;
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** GatewayOptions configures a gateway. */
export interface GatewayOptions {
  /** registry is the registry's base URL, "http://host:port". */
  readonly registry: string;
  readonly meshToken: string;
  readonly log: Logger;
  readonly clock?: Clock;
  /** requestTimeoutMs is the deadline of a non-streamed request. */
  readonly requestTimeoutMs?: number;
  /** streamTimeoutMs is the deadline of a streamed request, longer: a long answer is still a good answer. */
  readonly streamTimeoutMs?: number;
  readonly keepaliveMs?: number;
  readonly bodyLimitBytes?: number;
  /** maxUploadBytes bounds the files of one multipart request together. */
  readonly maxUploadBytes?: number;
  readonly authTtlMs?: number;
  /** reconnectGraceMs keeps providers a reconnect snapshot lacks for this long (default the registry's TTL). */
  readonly reconnectGraceMs?: number;
  /** failoverAttempts is how many other providers a request may try when one fails before the first byte. */
  readonly failoverAttempts?: number;
  readonly guardrails?: Guardrails;
  /** rateLimits bound each API key: requests per minute (inference, /v1/models) and concurrent streams; 0 is off. */
  readonly rateLimits?: Partial<RateLimits>;
  /** circuit tunes passive health: failures in a row that open a provider's circuit, and the cooldown. */
  readonly circuit?: { readonly failureThreshold?: number; readonly cooldownMs?: number };
}

/** Gateway is a gateway ready to listen: the OpenAI HTTP façade and the InferenceService gRPC face. */
export interface Gateway {
  readonly http: FastifyInstance;
  readonly metrics: GatewayMetrics;
  readonly table: RoutingTable;
  readonly registryLink: RegistryLink;
  /** listen binds the HTTP and gRPC ports (0 for any) and resolves them. */
  listen(http: { host: string; port: number }, grpcAddress?: string): Promise<{ httpPort: number; grpcPort?: number }>;
  close(graceMs?: number): Promise<void>;
}

/** createGateway builds the gateway and connects it to the registry's watch stream. */
export function createGateway(options: GatewayOptions): Gateway {
  const clock = options.clock ?? systemClock;
  // Late-bound: the table is built before the agent channels and the circuit breakers it reports to.
  let onJoined = (_provider: Provider) => {};
  let onLeft = (_provider: Provider) => {};
  const table = new RoutingTable({
    clock,
    ...(options.reconnectGraceMs === undefined ? {} : { reconnectGraceMs: options.reconnectGraceMs }),
    onJoined: (provider) => onJoined(provider),
    onLeft: (provider) => onLeft(provider),
  });
  const registryLink = connectRegistry({ registry: options.registry, meshToken: options.meshToken, table, log: options.log });
  const agents: AgentCalls = createAgentCalls({ maxMessageBytes: MEDIA_MAX_MESSAGE_BYTES, clock });
  const providerHealth = new ProviderHealth({ clock, ...options.circuit });
  // A provider that comes back starts with a clean record; a channel to an agent that left is closed.
  onJoined = (provider) => providerHealth.forget(provider.id);
  onLeft = (provider) => {
    providerHealth.forget(provider.id);
    if (![...table.providers()].some((p) => p.endpoint === provider.endpoint)) agents.forget(provider.endpoint);
  };
  const dispatcher = new Dispatcher({ table, agents, health: providerHealth, failoverAttempts: options.failoverAttempts ?? DEFAULT_FAILOVER_ATTEMPTS });
  const metrics = createGatewayMetrics();
  const auth = new AuthCache({
    authenticate: (key) => registryLink.authenticate(key),
    clock,
    ...(options.authTtlMs === undefined ? {} : { ttlMs: options.authTtlMs }),
  });
  const authenticate = async (apiKey: string): Promise<Principal | undefined> => {
    try {
      return await auth.principal(apiKey);
    } catch (error) {
      throw unavailable("cannot check the API key: the registry is unreachable", error);
    }
  };

  const http = Fastify({
    // pino's Logger is Fastify's logger; the cast only bridges the two packages' type declarations.
    loggerInstance: options.log as FastifyBaseLogger,
    // One line per request is the access log's job, not the service log's: it would cost more than the proxying.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES,
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
    frameworkErrors: (error, _request, reply) => {
      const failure = fromFastifyError(error);
      void (reply as FastifyReply).code(failure.status).header("content-type", "application/json").send(failure.body());
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
  const maxUploadBytes = options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES;
  void http.register(fastifyMultipart, { limits: { fileSize: maxUploadBytes } });
  // Registered before every route, so its onRoute hook sees each one's schema.
  void http.register(fastifySwagger, {
    openapi: {
      openapi: "3.1.0",
      info: OPENAPI_INFO,
      components: { securitySchemes: { bearerAuth: BEARER_AUTH } },
      security: [{ bearerAuth: [] }],
    },
  });
  void http.register(fastifySwaggerUi, { routePrefix: "/docs", uiConfig: { deepLinking: true } });
  http.addHook("onRequest", async (request, reply) => {
    reply.header("x-request-id", request.id);
    if (!request.url.startsWith("/v1/")) return;
    const header = request.headers.authorization;
    const apiKey = bearerToken(header);
    if (!apiKey) throw invalidApiKey(typeof header === "string" && header.length > 0);
    const principal = await authenticate(apiKey);
    if (!principal) throw invalidApiKey(true);
    request.principal = principal;
  });
  http.setErrorHandler((error: FastifyError | GatewayError, request, reply) => {
    const failure = error instanceof GatewayError ? error : fromFastifyError(error);
    if (failure.status >= 500) {
      const answeredBy = request.dispatch?.answeredBy;
      request.log.warn({ err: error, requestId: request.id, provider: answeredBy?.provider.id, model: answeredBy?.model.id }, failure.message);
    }
    if (failure.retryAfterSeconds !== undefined) void reply.header("retry-after", String(failure.retryAfterSeconds));
    if (failure.status === 413 && !request.raw.readableEnded) {
      // Read and drop the rest of the upload, so the client gets to read this answer instead of a reset.
      void reply.header("connection", "close");
      request.raw.resume();
    }
    void reply.code(failure.status).header("content-type", "application/json").send(failure.body());
  });
  http.setNotFoundHandler((request, reply) => {
    void reply.code(404).send(unknownRoute(request.method, request.url).body());
  });
  // A plugin, so these routes are added once @fastify/swagger is loaded and it documents them.
  void http.register(async (ops) => {
    ops.get("/openapi.json", { schema: { hide: true } }, async () => http.swagger());
    ops.get("/health", { schema: HEALTH_SCHEMA }, async () => ({ status: "ok", registry: registryLink.connected ? "connected" : "disconnected" }));
    ops.get("/metrics", { schema: METRICS_SCHEMA }, async (_request, reply) => {
      void reply.header("content-type", metrics.registry.contentType);
      return metrics.registry.metrics();
    });
  });
  void http.register(agentHttpRoutes, { registry: registryLink.registry, authenticate, metrics });
  const rateLimits = { ...DEFAULT_RATE_LIMITS, ...options.rateLimits };
  void http.register(fastifyRateLimit, perKeyRateLimit(rateLimits));
  observeInferenceRequests(http, metrics, options.log as FastifyBaseLogger);
  const handle = createInferenceHandler({
    maxConcurrentStreams: rateLimits.concurrentStreams,
    dispatcher,
    metrics,
    clock,
    requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    streamTimeoutMs: options.streamTimeoutMs ?? DEFAULT_STREAM_TIMEOUT_MS,
    keepaliveMs: options.keepaliveMs ?? DEFAULT_KEEPALIVE_MS,
  });
  // Registered as a plugin, after the rate limiter, so that its hooks reach these routes.
  void http.register(async (api) => {
    registerOpenAIRoutes(api, { table, handle, guardrails: options.guardrails ?? DEFAULT_GUARDRAILS });
    registerMediaRoutes(api, { handle, maxUploadBytes });
  });

  const inferenceService = createInferenceService({
    dispatcher,
    authenticate,
    clock,
    requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
  });
  const grpcServer = createGrpcServer({ services: [bindService(InferenceService, inferenceService)], maxMessageBytes: MEDIA_MAX_MESSAGE_BYTES });

  return {
    http,
    metrics,
    table,
    registryLink,
    async listen(address, grpcAddress) {
      await http.listen({ host: address.host, port: address.port });
      const httpPort = (http.server.address() as { port: number }).port;
      if (grpcAddress === undefined) return { httpPort };
      const grpcPort = await grpcServer.listen(grpcAddress);
      return { httpPort, grpcPort };
    },
    async close(graceMs = 5_000) {
      grpcServer.notServing();
      registryLink.close();
      table.close();
      const stopped = Promise.all([http.close(), grpcServer.close(graceMs)]);
      const force = setTimeout(() => http.server.closeAllConnections(), graceMs);
      // A stream that ends during the grace period leaves a kept-alive connection behind; close those as they idle.
      const sweep = setInterval(() => http.server.closeIdleConnections(), 50);
      await stopped;
      clearTimeout(force);
      clearInterval(sweep);
      agents.close();
    },
  };
}

/** fromFastifyError maps Fastify's own errors (body too large, bad content) to OpenAI's envelope. */
function fromFastifyError(error: FastifyError): GatewayError {
  const status = error.statusCode ?? 500;
  if (status === 413) return tooLarge("The request body is too large.", { cause: error });
  if (status >= 400 && status < 500) return refusedHttp(status, error.message, undefined, error);
  return internalError("The gateway failed to handle the request.", error);
}
