import { networkInterfaces } from "node:os";
import { Code, ConnectError } from "@connectrpc/connect";
import fastifyRateLimit from "@fastify/rate-limit";
import type { FastifyInstance } from "fastify";
import { AgentService, InferenceService } from "../../gen/infermesh/v1/inference_pb.js";
import type { Principal, Provider } from "../../gen/infermesh/v1/registry_pb.js";
import { createPeerCalls } from "../shared/grpc/infer-client.js";
import { MEDIA_MAX_MESSAGE_BYTES } from "../shared/grpc/message-limits.js";
import { bindService, createGrpcServer } from "../shared/grpc/server.js";
import { AGENT_KEY_METADATA } from "../shared/heartbeat-relay.js";
import { advertisedAddress, formatHostPort, type HostPort } from "../shared/host-port.js";
import { createMetricsServer } from "../shared/metrics-server.js";
import { connectRedis } from "../shared/redis-connection.js";
import { accountRoutes } from "./account-routes.js";
import { agentHttpRoutes } from "./agent-http-routes.js";
import { AgentLinks } from "./agent-links.js";
import { registerAnthropicRoutes } from "./anthropic-routes.js";
import { AuthCache } from "./auth-cache.js";
import { dashboardRoutes } from "./dashboard-routes.js";
import { Dispatcher } from "./dispatcher.js";
import { unavailable } from "./gateway-errors.js";
import { createGatewayMetrics, type GatewayMetrics, observeInferenceRequests } from "./gateway-metrics.js";
import { type GatewayOptions, type GatewaySettings, resolveGatewayOptions } from "./gateway-options.js";
import { createHttpApp } from "./http-app.js";
import { createInferenceHandler } from "./inference-handler.js";
import { createInferenceService } from "./inference-service.js";
import { LoginLimiter } from "./login-limiter.js";
import { registerMediaRoutes } from "./media-routes.js";
import { meshCalls } from "./mesh-calls.js";
import { registerOpenAIRoutes } from "./openai-routes.js";
import { HEALTH_SCHEMA, METRICS_SCHEMA } from "./openai-schemas.js";
import { createPeerService } from "./peer-service.js";
import { ProviderHealth } from "./provider-health.js";
import { providerRoutes } from "./provider-routes.js";
import { perKeyRateLimit } from "./rate-limits.js";
import { recordUsageRequest } from "./record-usage-request.js";
import { connectRegistry, type RegistryLink } from "./registry-link.js";
import { RoutingTable } from "./routing-table.js";
import { createSharedPort } from "./shared-port.js";
import { SharedStreamSlots } from "./shared-stream-slots.js";
import { UsageCapture } from "./usage-capture.js";
import { UsageRecorder } from "./usage-recorder.js";
import { usageRoutes } from "./usage-routes.js";
import { UsageSpool } from "./usage-spool.js";

/** LINK_WINDOW_BYTES is the HTTP/2 window of an agent's link: many calls share it, so the default 64 KiB would stall them. */
const LINK_WINDOW_BYTES = 16 * 1024 * 1024;
/** REGISTRY_RELAY_TIMEOUT_MS bounds one heartbeat or deregistration relayed for an attached agent. */
const REGISTRY_RELAY_TIMEOUT_MS = 5_000;
/** USAGE_SEND_TIMEOUT_MS bounds one batch of usage records sent to the registry; a batch that times out goes again. */
const USAGE_SEND_TIMEOUT_MS = 5_000;

export type { GatewayOptions, GatewaySettings } from "./gateway-options.js";

/** GatewayAddresses are where a listening gateway is. */
export interface GatewayAddresses {
  readonly http: HostPort;
  readonly grpc: HostPort | undefined;
  /** metrics is where Prometheus' GET /metrics is served, when metricsListen is set. */
  readonly metrics: HostPort | undefined;
}

/** Gateway is a gateway ready to listen: the OpenAI HTTP façade and the InferenceService gRPC face. */
export interface Gateway {
  readonly settings: GatewaySettings;
  readonly http: FastifyInstance;
  readonly metrics: GatewayMetrics;
  readonly table: RoutingTable;
  readonly registryLink: RegistryLink;
  /** links are the agents' links to this gateway. */
  readonly links: AgentLinks;
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
  // First, before anything that keeps the process alive: a spool another gateway holds stops the start.
  const usageSpool = settings.usageSpool === undefined ? undefined : new UsageSpool({ path: settings.usageSpool, log: settings.log });
  // Late-bound: the table is built before the agent connections and the circuit breakers it reports to.
  let onJoined = (_provider: Provider) => {};
  let onLeft = (_provider: Provider) => {};
  const table = new RoutingTable({
    clock,
    reconnectGraceMs: settings.reconnectGraceMs,
    onJoined: (provider) => onJoined(provider),
    onLeft: (provider) => onLeft(provider),
  });
  const registryLink = connectRegistry({
    registries: settings.registries,
    meshToken: settings.meshToken,
    table,
    log: settings.log,
    ca: settings.ca,
  });
  const metrics = createGatewayMetrics();
  const auth = new AuthCache({ authenticate: (key) => registryLink.authenticate(key), clock, ttlMs: settings.authTtlMs });
  const authenticate = async (apiKey: string): Promise<Principal | undefined> => {
    try {
      return await auth.principal(apiKey);
    } catch (error) {
      throw unavailable("cannot check the API key: the registry is unreachable", error);
    }
  };
  const sessions = new AuthCache({ authenticate: (id) => registryLink.resolveSession(id), clock, ttlMs: settings.authTtlMs });
  const resolveSession = async (sessionId: string): Promise<Principal | undefined> => {
    try {
      return await sessions.principal(sessionId);
    } catch (error) {
      throw unavailable("cannot check the session: the registry is unreachable", error);
    }
  };

  // Peers forward calls to this gateway's gRPC port, at the address it advertises; without one it takes none.
  let endpoint = "";
  const meshHeaders = { authorization: `Bearer ${settings.meshToken}` };
  const links = new AgentLinks({
    gatewayId: settings.gatewayId,
    get endpoint() {
      return endpoint;
    },
    authenticate,
    registry: {
      async heartbeat(apiKey, request) {
        return registryLink.registry.heartbeat(request, {
          headers: { ...meshHeaders, [AGENT_KEY_METADATA]: apiKey },
          timeoutMs: REGISTRY_RELAY_TIMEOUT_MS,
        });
      },
      async deregister(providerId, linkId) {
        await registryLink.registry.deregister({ providerId, linkId }, { headers: meshHeaders, timeoutMs: REGISTRY_RELAY_TIMEOUT_MS });
      },
    },
    clock,
    log: settings.log,
    maxMessageBytes: MEDIA_MAX_MESSAGE_BYTES,
    onFrameDropped: () => metrics.linkFramesDropped.inc(),
    onLinkCount: (count) => metrics.agentLinks.set(count),
  });
  // Gateways of one mesh share their TLS setting: a peer's internal port speaks TLS when this one's does.
  const peers = createPeerCalls({
    meshToken: settings.meshToken,
    maxMessageBytes: MEDIA_MAX_MESSAGE_BYTES,
    clock,
    tls: settings.tls ? { ca: settings.ca } : undefined,
  });
  const providerHealth = new ProviderHealth({ clock, ...settings.circuit });
  // A provider that comes back starts with a clean record.
  onJoined = (provider) => providerHealth.forget(provider.id);
  onLeft = (provider) => providerHealth.forget(provider.id);
  const dispatcher = new Dispatcher({
    table,
    agents: meshCalls(settings.gatewayId, links, peers, clock),
    health: providerHealth,
    failoverAttempts: settings.failoverAttempts,
  });
  // One public port: HTTP/1.1 for the OpenAI API and the dashboard, HTTP/2 for the agents' links.
  const port = createSharedPort({
    ...(settings.tls ? { tls: settings.tls } : {}),
    onStream: (stream, headers) => links.handleStream(stream, headers),
    http2Options: { settings: { initialWindowSize: LINK_WINDOW_BYTES } },
    http2ConnectionWindowBytes: LINK_WINDOW_BYTES,
    http2CloseGraceMs: settings.shutdownGraceMs,
  });

  const http = createHttpApp({
    serverFactory: port.serverFactory,
    log: settings.log,
    bodyLimitBytes: settings.bodyLimitBytes,
    maxUploadBytes: settings.maxUploadBytes,
    authenticate,
    resolveSession,
    trustProxy: settings.trustProxy,
  });
  // A plugin, so these routes are added once @fastify/swagger is loaded and it documents them.
  void http.register(async (ops) => {
    ops.get("/openapi.json", { schema: { hide: true } }, async () => http.swagger());
    ops.get("/health", { schema: HEALTH_SCHEMA }, async () => ({
      status: "ok",
      registry: registryLink.connected ? "connected" : "disconnected",
    }));
    // Metrics name every user's models: they are the operator's, on --metrics-listen, unless asked for here.
    if (!settings.publicMetrics) return;
    ops.get("/metrics", { schema: METRICS_SCHEMA }, async (_request, reply) => {
      void reply.header("content-type", metrics.registry.contentType);
      return metrics.registry.metrics();
    });
  });
  const metricsServer = settings.metricsListen ? createMetricsServer(metrics.registry, settings.tls) : undefined;
  void http.register(agentHttpRoutes, { registry: registryLink.registry, authenticate, metrics });
  const controlPlane = { accounts: registryLink.accounts, meshHeaders: registryLink.meshHeaders };
  void http.register(accountRoutes, {
    ...controlPlane,
    registry: registryLink.registry,
    signup: settings.signup,
    tls: settings.tls !== undefined,
    limiter: new LoginLimiter(clock),
    forgetSession: (sessionId) => sessions.forget(sessionId),
  });
  void http.register(providerRoutes, { ...controlPlane, table });
  void http.register(dashboardRoutes, { signup: settings.signup, metricsPath: settings.publicMetrics ? "/metrics" : undefined });
  void http.register(usageRoutes, { ...controlPlane, clock });
  // With a Redis, gateways share each key's request counters and stream slots there; without one, each counts alone.
  const redis =
    settings.redis === undefined
      ? undefined
      : connectRedis(settings.redis, { name: `infermesh-gateway-${settings.gatewayId}`, log: settings.log });
  const streamSlots =
    redis &&
    new SharedStreamSlots({
      redis,
      max: settings.rateLimits.concurrentStreams,
      clock,
      log: settings.log,
      onFallback: () => metrics.streamSlotFallbacks.inc(),
    });
  void http.register(fastifyRateLimit, perKeyRateLimit(settings.rateLimits, redis));
  const usageRecorder = new UsageRecorder({
    send: async (records) => {
      await registryLink.accounts.recordUsage(recordUsageRequest(records), {
        headers: registryLink.meshHeaders,
        timeoutMs: USAGE_SEND_TIMEOUT_MS,
      });
    },
    refused: (error) => error instanceof ConnectError && (error.code === Code.InvalidArgument || error.code === Code.ResourceExhausted),
    clock,
    flushMs: settings.usageFlushMs,
    metrics,
    log: settings.log,
    spool: usageSpool,
  });
  const usage = new UsageCapture(usageRecorder, clock);
  observeInferenceRequests(http, metrics, settings.log, usage.answered);
  const handle = createInferenceHandler({
    maxConcurrentStreams: settings.rateLimits.concurrentStreams,
    ...(streamSlots ? { streamSlots } : {}),
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
    registerAnthropicRoutes(api, { handle, guardrails: settings.guardrails });
    registerMediaRoutes(api, { handle, maxUploadBytes: settings.maxUploadBytes });
  });

  const inferenceService = createInferenceService({
    dispatcher,
    authenticate,
    clock,
    requestTimeoutMs: settings.requestTimeoutMs,
    usage,
  });
  const grpcServer = createGrpcServer({
    services: [
      bindService(InferenceService, inferenceService),
      bindService(AgentService, createPeerService(settings.meshToken, links, table)),
    ],
    maxMessageBytes: MEDIA_MAX_MESSAGE_BYTES,
    tls: settings.tls,
  });

  return {
    settings,
    http,
    metrics,
    table,
    registryLink,
    links,
    async listen() {
      await http.listen({ host: settings.listen.host, port: settings.listen.port });
      const httpPort = (http.server.address() as { port: number }).port;
      const grpc = settings.grpcListen && {
        host: settings.grpcListen.host,
        port: await grpcServer.listen(formatHostPort(settings.grpcListen)),
      };
      if (grpc) endpoint = advertisedAddress(grpc, settings.advertise, networkInterfaces());
      const metricsAt = settings.metricsListen && {
        host: settings.metricsListen.host,
        port: (await metricsServer?.listen(settings.metricsListen.host, settings.metricsListen.port)) ?? 0,
      };
      return { http: { host: settings.listen.host, port: httpPort }, grpc: grpc || undefined, metrics: metricsAt || undefined };
    },
    async close() {
      const graceMs = settings.shutdownGraceMs;
      grpcServer.notServing();
      table.close();
      const stopped = Promise.all([http.close(), grpcServer.close(graceMs)]);
      const force = setTimeout(() => http.server.closeAllConnections(), graceMs);
      // A stream that ends during the grace period leaves a kept-alive connection behind; close those as they idle.
      const sweep = setInterval(() => http.server.closeIdleConnections(), 50);
      // The links stay up while calls on them finish; then agents learn of the stop as their links close, and dial
      // again (another gateway, behind a load balancer). Their sockets are the server's too: it closes after them.
      await links.whenIdle(graceMs);
      await links.close();
      port.closeHttp2Sessions();
      await stopped;
      clearTimeout(force);
      clearInterval(sweep);
      // Every request has ended and been recorded: what is buffered goes to the registry before the link closes.
      await usageRecorder.close(graceMs);
      peers.close();
      registryLink.close();
      streamSlots?.close();
      // A Redis that does not answer must not hold the shutdown up: QUIT fails within the command timeout.
      await redis?.quit().catch(() => redis.disconnect());
      await metricsServer?.close();
    },
  };
}
