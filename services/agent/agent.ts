import { networkInterfaces, hostname as osHostname } from "node:os";
import type { Model } from "../../gen/infermesh/v1/capabilities_pb.js";
import { AgentService } from "../../gen/infermesh/v1/inference_pb.js";
import { ProviderState } from "../../gen/infermesh/v1/registry_pb.js";
import { type Clock, systemClock } from "../shared/clock.js";
import { MEDIA_MAX_MESSAGE_BYTES } from "../shared/grpc/message-limits.js";
import { bindService, createGrpcServer } from "../shared/grpc/server.js";
import { formatHostPort, type HostPort } from "../shared/host-port.js";
import { createLogger, type Logger } from "../shared/logger.js";
import { createMetricsServer } from "../shared/metrics-server.js";
import type { AgentConfig } from "./agent-config.js";
import { type AgentMetrics, createAgentMetrics } from "./agent-metrics.js";
import { createAgentService, type ServingUpstream } from "./agent-service.js";
import { AgentShuttingDown, CallTracker } from "./call-tracker.js";
import { ConcurrencyLimiter } from "./concurrency-limiter.js";
import { DEFAULT_MAX_BODY_BYTES } from "./json-forwarder.js";
import { createMeshAuth } from "./mesh-auth.js";
import { ModelDiscovery } from "./model-discovery.js";
import { advertisedEndpoint, defaultProviderId, newAgentToken } from "./provider-identity.js";
import { type HeartbeatReport, RegistryLink } from "./registry-link.js";
import { UpstreamClient } from "./upstream-client.js";

/** DRAIN_HEARTBEAT_WAIT_MS bounds the wait for the DRAINING heartbeat; an unreachable registry must not stall a stop. */
const DRAIN_HEARTBEAT_WAIT_MS = 3_000;
/** ABORTED_CALLS_WAIT_MS is how long calls cut off at the end of the grace period get to send their last part. */
const ABORTED_CALLS_WAIT_MS = 1_000;

/** AgentOptions configures an agent; everything but the config has a production default. */
export interface AgentOptions {
  readonly config: AgentConfig;
  readonly log?: Logger;
  readonly clock?: Clock;
  /** agentToken is the mesh credential callers must present; random per process by default. */
  readonly agentToken?: string;
  /** version is reported to the registry. */
  readonly version?: string;
  /** hostname names the agent by default and feeds its default provider id; os.hostname() by default. */
  readonly hostname?: string;
  /** registryRetry overrides the heartbeat retry backoff (tests shorten it). */
  readonly registryRetry?: { readonly initialMs: number; readonly maxMs: number };
  /** discoveryBackoff overrides the retry backoff of upstreams that are down (tests shorten it). */
  readonly discoveryBackoff?: { readonly initialMs: number; readonly maxMs: number };
  readonly maxBodyBytes?: number;
}

/** AgentAddresses tell where a listening agent is and who it is. */
export interface AgentAddresses {
  readonly grpc: HostPort;
  readonly metrics: HostPort | undefined;
  /** endpoint is the "host:port" advertised to the registry. */
  readonly endpoint: string;
  readonly providerId: string;
}

/** AgentLoad is the agent's work now, summed over its upstreams. */
export interface AgentLoad {
  readonly inFlight: number;
  readonly maxConcurrency: number;
  readonly queued: number;
}

/** Agent is an agent ready to listen. */
export interface Agent {
  /** agentToken is the mesh credential (see mesh-auth.ts); it is never logged. */
  readonly agentToken: string;
  readonly metrics: AgentMetrics;
  /** draining is true from the start of close(). */
  readonly draining: boolean;
  /**
   * listen binds the gRPC port (and the metrics port when configured), discovers the upstreams' models once, then
   * heartbeats to the registry, and resolves the bound addresses. Calling it again returns the same promise.
   */
  listen(): Promise<AgentAddresses>;
  /**
   * close drains: it refuses new calls (UNAVAILABLE), tells the registry (DRAINING), lets calls in flight finish for
   * the config's shutdown grace period, cuts the rest, deregisters, and closes every port and connection. Calling it
   * again returns the same promise.
   */
  close(): Promise<void>;
  /** models are the models advertised now. */
  models(): Model[];
  load(): AgentLoad;
}

/** createAgent builds an agent: upstream clients, discovery, the Infer service, health, metrics, the registry link. */
export function createAgent(options: AgentOptions): Agent {
  const { config } = options;
  const clock = options.clock ?? systemClock;
  const log = options.log ?? createLogger("agent", config.logLevel);
  const agentToken = options.agentToken ?? newAgentToken();
  const hostname = options.hostname ?? osHostname();
  const version = options.version ?? "dev";

  const upstreams = config.upstreams.map((upstream) => ({
    config: upstream,
    // One connection more than the slots, so discovery never waits behind inference.
    client: new UpstreamClient({
      url: upstream.url,
      apiKey: upstream.apiKey,
      connections: upstream.maxConcurrency + 1,
      timeoutMs: config.upstreamTimeoutMs,
    }),
    limiter: new ConcurrencyLimiter(upstream.maxConcurrency, upstream.maxQueue),
  }));
  let link: RegistryLink | undefined;
  const discovery = new ModelDiscovery({
    targets: upstreams,
    clock,
    log,
    intervalMs: config.discoveryIntervalMs,
    ...(options.discoveryBackoff
      ? { initialBackoffMs: options.discoveryBackoff.initialMs, maxBackoffMs: options.discoveryBackoff.maxMs }
      : {}),
    onChange: () => void link?.heartbeatNow(),
  });
  const serving: ServingUpstream[] = upstreams.map((upstream, index) => ({
    ...upstream,
    get models() {
      return discovery.states()[index]?.models ?? [];
    },
    get load() {
      return { inFlight: upstream.limiter.inFlight, queued: upstream.limiter.queued };
    },
  }));
  const load = (): AgentLoad => ({
    inFlight: sum(upstreams.map((u) => u.limiter.inFlight)),
    maxConcurrency: sum(upstreams.map((u) => u.limiter.maxConcurrency)),
    queued: sum(upstreams.map((u) => u.limiter.queued)),
  });

  let draining = false;
  const calls = new CallTracker(clock);
  const metrics = createAgentMetrics({
    inFlight: () => load().inFlight,
    queued: () => load().queued,
    upstreamsUp: () => discovery.states().filter((state) => state.up).length,
    modelsAdvertised: () => discovery.models().length,
  });
  // Uploads reach the agent as bytes inside one InferRequest: up to the gateway's upload limit (25 MiB by default).
  const infer = createAgentService({
    auth: createMeshAuth(agentToken),
    log,
    metrics,
    calls,
    upstreams: () => serving,
    isDraining: () => draining,
    upstreamTimeoutMs: config.upstreamTimeoutMs,
    maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    clock,
  });
  const server = createGrpcServer({ services: [bindService(AgentService, infer)], maxMessageBytes: MEDIA_MAX_MESSAGE_BYTES });
  const metricsServer = config.metricsListen ? createMetricsServer(metrics.registry) : undefined;

  let listening: Promise<AgentAddresses> | undefined;
  let closing: Promise<void> | undefined;

  async function bind(): Promise<AgentAddresses> {
    const grpcPort = await server.listen(formatHostPort(config.listen));
    const metricsPort =
      metricsServer && config.metricsListen ? await metricsServer.listen(config.metricsListen.host, config.metricsListen.port) : undefined;
    const endpoint = advertisedEndpoint(config.listen, grpcPort, config.advertise, networkInterfaces());
    return {
      grpc: { host: config.listen.host, port: grpcPort },
      metrics: config.metricsListen && metricsPort !== undefined ? { host: config.metricsListen.host, port: metricsPort } : undefined,
      endpoint,
      providerId: config.id ?? defaultProviderId(hostname, endpoint, config.apiKey),
    };
  }

  async function run(): Promise<AgentAddresses> {
    const addresses = await bind();
    await discovery.start();
    const name = config.name ?? hostname;
    const report = (): HeartbeatReport => ({
      providerId: addresses.providerId,
      name,
      endpoint: addresses.endpoint,
      models: discovery.models(),
      load: load(),
      state: draining ? ProviderState.DRAINING : ProviderState.ACCEPTING,
      agentToken,
      version,
    });
    link = new RegistryLink({
      registryUrl: config.registry,
      apiKey: config.apiKey,
      providerId: addresses.providerId,
      clock,
      log,
      report,
      onHeartbeat: (ok) => metrics.heartbeats.inc({ outcome: ok ? "ok" : "failed" }),
      ...(options.registryRetry ? { initialRetryMs: options.registryRetry.initialMs, maxRetryMs: options.registryRetry.maxMs } : {}),
    });
    link.start();
    const states = discovery.states();
    log.info(
      {
        listen: formatHostPort(addresses.grpc),
        endpoint: addresses.endpoint,
        providerId: addresses.providerId,
        name,
        registry: config.registry,
        metricsPort: addresses.metrics?.port,
        upstreams: serving.map((upstream, index) => ({
          url: upstream.config.url,
          type: upstream.config.type,
          up: states[index]?.up ?? false,
          ...(states[index]?.cause === undefined ? {} : { cause: states[index]?.cause }),
          models: upstream.models.map((model) => ({ id: model.id, type: upstream.config.type })),
        })),
      },
      "agent ready",
    );
    return addresses;
  }

  async function drain(graceMs: number): Promise<void> {
    draining = true;
    server.notServing();
    discovery.stop();
    if (link) await within(link.heartbeatNow(), DRAIN_HEARTBEAT_WAIT_MS, clock);
    if (link) log.info({ inFlight: calls.size, graceMs }, "draining: no new calls, waiting for calls in flight");
    if (!(await within(calls.whenIdle(), graceMs, clock))) {
      log.warn({ cutOff: calls.size, graceMs }, "grace period over; cutting off the calls still running");
      calls.abortAll(new AgentShuttingDown("the agent shut down before the answer was complete"));
      await within(calls.whenIdle(), ABORTED_CALLS_WAIT_MS, clock);
    }
    if (link) {
      await link.deregister();
      link.close();
    }
    await server.close(ABORTED_CALLS_WAIT_MS);
    await metricsServer?.close();
    await Promise.all(upstreams.map((upstream) => upstream.client.close()));
    log.info("agent stopped");
  }

  return {
    agentToken,
    metrics,
    get draining() {
      return draining;
    },
    listen() {
      listening ??= run();
      return listening;
    },
    close() {
      closing ??= (async () => {
        // A listen still under way finishes first, so that nothing it opens outlives the close.
        await listening?.catch(() => undefined);
        await drain(config.shutdownGraceMs);
      })();
      return closing;
    },
    models: () => discovery.models(),
    load,
  };
}

/** within waits for promise for up to ms, and tells whether it settled in time. */
function within(promise: Promise<unknown>, ms: number, clock: Clock): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = clock.setTimer(() => resolve(false), ms);
    promise.then(
      () => {
        timer.cancel();
        resolve(true);
      },
      () => {
        timer.cancel();
        resolve(true);
      },
    );
  });
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}
