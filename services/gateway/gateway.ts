import fastifyRateLimit from "@fastify/rate-limit";
import type { FastifyInstance } from "fastify";
import { InferenceService } from "../../gen/infermesh/v1/inference_pb.js";
import type { Principal, Provider } from "../../gen/infermesh/v1/registry_pb.js";
import { createAgentCalls } from "../shared/grpc/infer-client.js";
import { MEDIA_MAX_MESSAGE_BYTES } from "../shared/grpc/message-limits.js";
import { bindService, createGrpcServer } from "../shared/grpc/server.js";
import { formatHostPort, type HostPort } from "../shared/host-port.js";
import { agentHttpRoutes } from "./agent-http-routes.js";
import { AuthCache } from "./auth-cache.js";
import { Dispatcher } from "./dispatcher.js";
import { unavailable } from "./gateway-errors.js";
import { createGatewayMetrics, type GatewayMetrics, observeInferenceRequests } from "./gateway-metrics.js";
import { type GatewayOptions, type GatewaySettings, resolveGatewayOptions } from "./gateway-options.js";
import { createHttpApp } from "./http-app.js";
import { createInferenceHandler } from "./inference-handler.js";
import { createInferenceService } from "./inference-service.js";
import { registerMediaRoutes } from "./media-routes.js";
import { registerOpenAIRoutes } from "./openai-routes.js";
import { HEALTH_SCHEMA, METRICS_SCHEMA } from "./openai-schemas.js";
import { ProviderHealth } from "./provider-health.js";
import { perKeyRateLimit } from "./rate-limits.js";
import { connectRegistry, type RegistryLink } from "./registry-link.js";
import { RoutingTable } from "./routing-table.js";

export type { GatewayOptions, GatewaySettings } from "./gateway-options.js";

/** GatewayAddresses are where a listening gateway is. */
export interface GatewayAddresses {
  readonly http: HostPort;
  readonly grpc: HostPort | undefined;
}

/** Gateway is a gateway ready to listen: the OpenAI HTTP façade and the InferenceService gRPC face. */
export interface Gateway {
  readonly settings: GatewaySettings;
  readonly http: FastifyInstance;
  readonly metrics: GatewayMetrics;
  readonly table: RoutingTable;
  readonly registryLink: RegistryLink;
  /** listen binds the HTTP port (and the gRPC port when configured) and resolves the bound addresses. */
  listen(): Promise<GatewayAddresses>;
  /** close stops taking requests, lets those in flight finish for the shutdown grace period, cuts the rest, and stops. */
  close(): Promise<void>;
}

/**
 * createGateway builds the gateway and connects it to the registry's watch stream: a routing table fed by the watch,
 * a dispatcher over the agents' connections with a circuit breaker per provider, the OpenAI routes and InferenceService
 * over the one dispatcher, and the operator's /health, /metrics, /openapi.json and /docs.
 */
export function createGateway(options: GatewayOptions): Gateway {
  const settings = resolveGatewayOptions(options);
  const { clock } = settings;
  // Late-bound: the table is built before the agent connections and the circuit breakers it reports to.
  let onJoined = (_provider: Provider) => {};
  let onLeft = (_provider: Provider) => {};
  const table = new RoutingTable({
    clock,
    reconnectGraceMs: settings.reconnectGraceMs,
    onJoined: (provider) => onJoined(provider),
    onLeft: (provider) => onLeft(provider),
  });
  const registryLink = connectRegistry({ registry: settings.registry, meshToken: settings.meshToken, table, log: settings.log });
  const agents = createAgentCalls({ maxMessageBytes: MEDIA_MAX_MESSAGE_BYTES, clock });
  const providerHealth = new ProviderHealth({ clock, ...settings.circuit });
  // A provider that comes back starts with a clean record; a connection to an agent that left is closed.
  onJoined = (provider) => providerHealth.forget(provider.id);
  onLeft = (provider) => {
    providerHealth.forget(provider.id);
    if (![...table.providers()].some((p) => p.endpoint === provider.endpoint)) agents.forget(provider.endpoint);
  };
  const dispatcher = new Dispatcher({ table, agents, health: providerHealth, failoverAttempts: settings.failoverAttempts });
  const metrics = createGatewayMetrics();
  const auth = new AuthCache({ authenticate: (key) => registryLink.authenticate(key), clock, ttlMs: settings.authTtlMs });
  const authenticate = async (apiKey: string): Promise<Principal | undefined> => {
    try {
      return await auth.principal(apiKey);
    } catch (error) {
      throw unavailable("cannot check the API key: the registry is unreachable", error);
    }
  };

  const http = createHttpApp({
    log: settings.log,
    bodyLimitBytes: settings.bodyLimitBytes,
    maxUploadBytes: settings.maxUploadBytes,
    authenticate,
  });
  // A plugin, so these routes are added once @fastify/swagger is loaded and it documents them.
  void http.register(async (ops) => {
    ops.get("/openapi.json", { schema: { hide: true } }, async () => http.swagger());
    ops.get("/health", { schema: HEALTH_SCHEMA }, async () => ({
      status: "ok",
      registry: registryLink.connected ? "connected" : "disconnected",
    }));
    ops.get("/metrics", { schema: METRICS_SCHEMA }, async (_request, reply) => {
      void reply.header("content-type", metrics.registry.contentType);
      return metrics.registry.metrics();
    });
  });
  void http.register(agentHttpRoutes, { registry: registryLink.registry, authenticate, metrics });
  void http.register(fastifyRateLimit, perKeyRateLimit(settings.rateLimits));
  observeInferenceRequests(http, metrics, settings.log);
  const handle = createInferenceHandler({
    maxConcurrentStreams: settings.rateLimits.concurrentStreams,
    dispatcher,
    metrics,
    clock,
    requestTimeoutMs: settings.requestTimeoutMs,
    streamTimeoutMs: settings.streamTimeoutMs,
    keepaliveMs: settings.keepaliveMs,
  });
  // Registered as a plugin, after the rate limiter, so that its hooks reach these routes.
  void http.register(async (api) => {
    registerOpenAIRoutes(api, { table, handle, guardrails: settings.guardrails });
    registerMediaRoutes(api, { handle, maxUploadBytes: settings.maxUploadBytes });
  });

  const inferenceService = createInferenceService({ dispatcher, authenticate, clock, requestTimeoutMs: settings.requestTimeoutMs });
  const grpcServer = createGrpcServer({
    services: [bindService(InferenceService, inferenceService)],
    maxMessageBytes: MEDIA_MAX_MESSAGE_BYTES,
  });

  return {
    settings,
    http,
    metrics,
    table,
    registryLink,
    async listen() {
      await http.listen({ host: settings.listen.host, port: settings.listen.port });
      const httpPort = (http.server.address() as { port: number }).port;
      const grpc = settings.grpcListen && {
        host: settings.grpcListen.host,
        port: await grpcServer.listen(formatHostPort(settings.grpcListen)),
      };
      return { http: { host: settings.listen.host, port: httpPort }, grpc: grpc || undefined };
    },
    async close() {
      const graceMs = settings.shutdownGraceMs;
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
