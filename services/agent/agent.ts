import { randomUUID } from "node:crypto";
import { hostname as osHostname } from "node:os";
import type { Model } from "../../gen/infermesh/v1/capabilities_pb.js";
import { ProviderState, Visibility } from "../../gen/infermesh/v1/registry_pb.js";
import { type Clock, systemClock } from "../shared/clock.js";
import { MEDIA_MAX_MESSAGE_BYTES } from "../shared/grpc/message-limits.js";
import type { HostPort } from "../shared/host-port.js";
import { serviceTypeName } from "../shared/inference-catalog.js";
import { createLogger, type Logger } from "../shared/logger.js";
import { createMetricsServer } from "../shared/metrics-server.js";
import { trustedCas } from "../shared/tls-files.js";
import type { AgentConfig, SharingData } from "./agent-config.js";
import { type AgentMetrics, createAgentMetrics } from "./agent-metrics.js";
import { createAgentService, type ServingUpstream } from "./agent-service.js";
import { AgentShuttingDown, CallTracker } from "./call-tracker.js";
import { ConcurrencyLimiter } from "./concurrency-limiter.js";
import { DEFAULT_MAX_BODY_BYTES } from "./json-forwarder.js";
import { type HeartbeatReport, MeshLink } from "./mesh-link.js";
import { ModelDiscovery } from "./model-discovery.js";
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
  /** version is reported to the registry. */
  readonly version?: string;
  /** hostname names the agent by default, and so its provider id; os.hostname() by default. */
  readonly hostname?: string;
  /** linkRetry overrides the link's reconnect backoff (tests shorten it). */
  readonly linkRetry?: { readonly initialMs: number; readonly maxMs: number };
  /** discoveryBackoff overrides the retry backoff of upstreams that are down (tests shorten it). */
  readonly discoveryBackoff?: { readonly initialMs: number; readonly maxMs: number };
  readonly maxBodyBytes?: number;
  /**
   * instanceId names this run of the agent in its heartbeats, the same across its reconnects: the registry applies
   * the agent's --share over its owner's choice only when a new run reports it. A random UUID by default.
   */
  readonly instanceId?: string;
}

/** AgentAddresses tell where a started agent serves metrics, if anywhere, and who it is in the mesh. */
export interface AgentAddresses {
  readonly metrics: HostPort | undefined;
  /** providerId is the agent's id in the mesh, once its link was attached; undefined while it is still dialling. */
  readonly providerId: string | undefined;
}

/** AgentLoad is the agent's work now, summed over its upstreams. */
export interface AgentLoad {
  readonly inFlight: number;
  readonly maxConcurrency: number;
  readonly queued: number;
}

/** Agent is an agent ready to start. */
export interface Agent {
  readonly metrics: AgentMetrics;
  /** draining is true from the start of close(). */
  readonly draining: boolean;
  /** connected is true while the agent's link to the mesh is attached. */
  readonly connected: boolean;
  /** providerId is the agent's id in the mesh, once a link was attached. */
  readonly providerId: string | undefined;
  /**
   * listen binds the metrics port when configured (the agent opens no other), discovers the upstreams' models once,
   * then dials the mesh and resolves once attached, or once a first attempt failed for a reason a retry may fix. It
   * rejects with LinkRefused when the mesh refuses the key or the provider. Calling it again returns the same promise.
   */
  listen(): Promise<AgentAddresses>;
  /**
   * close drains: it refuses new calls (UNAVAILABLE), tells the mesh (DRAINING), lets calls in flight finish for the
   * config's shutdown grace period, cuts the rest, closes its link (the provider goes offline) and every connection.
   * Calling it again returns the same promise.
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
  const hostname = options.hostname ?? osHostname();
  const version = options.version ?? "dev";
  const instanceId = options.instanceId ?? randomUUID();
  const sharing = config.share === undefined ? {} : { sharing: sharingMessage(config.share) };

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
  let link: MeshLink | undefined;
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
    reportUnreachable: (cause: string) => discovery.reportUnreachable(index, cause),
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
  const serve = createAgentService({
    log,
    metrics,
    calls,
    upstreams: () => serving,
    isDraining: () => draining,
    upstreamTimeoutMs: config.upstreamTimeoutMs,
    maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    clock,
  });
  const metricsServer = config.metricsListen ? createMetricsServer(metrics.registry) : undefined;

  let listening: Promise<AgentAddresses> | undefined;
  let closing: Promise<void> | undefined;

  async function run(): Promise<AgentAddresses> {
    const metricsPort =
      metricsServer && config.metricsListen ? await metricsServer.listen(config.metricsListen.host, config.metricsListen.port) : undefined;
    await discovery.start();
    const name = config.name ?? hostname;
    const report = (): HeartbeatReport => ({
      providerId: config.id ?? "",
      name,
      models: discovery.models(),
      load: load(),
      state: draining ? ProviderState.DRAINING : ProviderState.ACCEPTING,
      version,
      instanceId,
      ...sharing,
    });
    link = new MeshLink({
      meshUrl: config.mesh,
      apiKey: config.apiKey,
      ca: trustedCas(config.caFile, "--ca-file"),
      clock,
      log,
      report,
      serve,
      // Uploads reach the agent inside the call: up to the gateway's upload limit (25 MiB by default).
      maxMessageBytes: MEDIA_MAX_MESSAGE_BYTES,
      onHeartbeat: (ok) => metrics.heartbeats.inc({ outcome: ok ? "ok" : "failed" }),
      ...(options.linkRetry ? { initialRetryMs: options.linkRetry.initialMs, maxRetryMs: options.linkRetry.maxMs } : {}),
    });
    await link.start();
    const states = discovery.states();
    log.info(
      {
        mesh: config.mesh,
        attached: link.connected,
        providerId: link.providerId,
        name,
        ...(config.share === undefined ? {} : { share: config.share }),
        metricsPort,
        upstreams: serving.map((upstream, index) => ({
          url: upstream.config.url,
          type: upstream.config.type,
          up: states[index]?.up ?? false,
          ...(states[index]?.cause === undefined ? {} : { cause: states[index]?.cause }),
          models: upstream.models.map((model) => ({ id: model.id, type: serviceTypeName(model.serviceType) })),
        })),
      },
      "agent ready",
    );
    return {
      metrics: config.metricsListen && metricsPort !== undefined ? { host: config.metricsListen.host, port: metricsPort } : undefined,
      providerId: link.providerId,
    };
  }

  async function drain(graceMs: number): Promise<void> {
    draining = true;
    discovery.stop();
    if (link) await within(link.heartbeatNow(), DRAIN_HEARTBEAT_WAIT_MS, clock);
    if (link) log.info({ inFlight: calls.size, graceMs }, "draining: no new calls, waiting for calls in flight");
    if (!(await within(calls.whenIdle(), graceMs, clock))) {
      log.warn({ cutOff: calls.size, graceMs }, "grace period over; cutting off the calls still running");
      calls.abortAll(new AgentShuttingDown("the agent shut down before the answer was complete"));
      await within(calls.whenIdle(), ABORTED_CALLS_WAIT_MS, clock);
    }
    await link?.close();
    await metricsServer?.close();
    await Promise.all(upstreams.map((upstream) => upstream.client.close()));
    log.info("agent stopped");
  }

  return {
    metrics,
    get draining() {
      return draining;
    },
    get connected() {
      return link?.connected ?? false;
    },
    get providerId() {
      return link?.providerId;
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

/** VISIBILITIES are the configured visibilities' proto values. */
const VISIBILITIES: Readonly<Record<SharingData["visibility"], Visibility>> = {
  private: Visibility.PRIVATE,
  users: Visibility.USERS,
  public: Visibility.PUBLIC,
};

/** sharingMessage is a configured sharing as a heartbeat carries it. */
function sharingMessage(share: SharingData): NonNullable<HeartbeatReport["sharing"]> {
  return { visibility: VISIBILITIES[share.visibility], allowedUsers: [...share.allowedUsers] };
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}
