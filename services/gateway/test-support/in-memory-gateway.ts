import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { FastifyInstance } from "fastify";
import {
  type Principal,
  PrincipalSchema,
  type ProviderSchema,
  WatchProvidersResponseSchema,
} from "../../../gen/infermesh/v1/registry_pb.js";
import { ManualClock } from "../../../test/support/manual-clock.js";
import { createLogger } from "../../shared/logger.js";
import type { UsageRecordData } from "../../shared/usage-record.js";
import { registerAnthropicRoutes } from "../anthropic-routes.js";
import { Dispatcher } from "../dispatcher.js";
import { createGatewayMetrics, type GatewayMetrics, observeInferenceRequests } from "../gateway-metrics.js";
import type { Guardrails } from "../guardrails.js";
import { createHttpApp } from "../http-app.js";
import { createInferenceHandler } from "../inference-handler.js";
import { createInferenceService } from "../inference-service.js";
import { registerMediaRoutes } from "../media-routes.js";
import type { AgentCalls } from "../mesh-calls.js";
import { registerOpenAIRoutes } from "../openai-routes.js";
import { ProviderHealth } from "../provider-health.js";
import { RoutingTable } from "../routing-table.js";
import { UsageCapture } from "../usage-capture.js";
import { UsageRecorder } from "../usage-recorder.js";

/** ProviderInit is a provider as a test writes it into the registry's snapshot. */
export type ProviderInit = Exclude<MessageInitShape<typeof ProviderSchema>, { $typeName: string }>;

/** ALICE_KEY is the one API key the in-memory gateway accepts, as ALICE's. */
export const ALICE_KEY = "sk-alice";

/** ALICE is the caller behind ALICE_KEY. */
export const ALICE: Principal = create(PrincipalSchema, { userId: "u-alice", userName: "alice", keyId: "key-alice" });

/** InMemoryGatewayOptions is what a test chooses of the gateway's request path; the rest is as the gateway builds it. */
export interface InMemoryGatewayOptions {
  /** providers are the registry's snapshot. */
  readonly providers: readonly ProviderInit[];
  /** agents answer the dispatched calls in place of the agents' links. */
  readonly agents: AgentCalls;
  readonly failureThreshold: number;
  readonly cooldownMs: number;
  readonly failoverAttempts: number;
  /** bodyLimitBytes bounds JSON bodies and uploads alike. */
  readonly bodyLimitBytes: number;
  readonly guardrails: Guardrails;
}

/** InMemoryGateway is the gateway's request path over injected agents: the HTTP façade, the gRPC face, and the usage they record. */
export interface InMemoryGateway {
  readonly app: FastifyInstance;
  readonly clock: ManualClock;
  readonly health: ProviderHealth;
  readonly metrics: GatewayMetrics;
  readonly infer: ReturnType<typeof createInferenceService>["infer"];
  /** records flushes the recorder and returns what it sent so far. */
  records(): Promise<UsageRecordData[]>;
}

/**
 * createInMemoryGateway wires the gateway's request path (auth, schemas, guardrails, routing, dispatch, answer writing,
 * usage) as the gateway does, on a manual clock, for fastify.inject and direct gRPC handler calls; ALICE_KEY is the only
 * key it knows.
 */
export function createInMemoryGateway(options: InMemoryGatewayOptions): InMemoryGateway {
  const clock = new ManualClock();
  const log = createLogger("test", "silent");
  const metrics = createGatewayMetrics();
  const sent: UsageRecordData[] = [];
  const recorder = new UsageRecorder({ send: async (batch) => void sent.push(...batch), clock, flushMs: 1_000, metrics, log });
  const usage = new UsageCapture(recorder, clock);
  const table = new RoutingTable({ clock });
  table.apply(create(WatchProvidersResponseSchema, { event: { case: "snapshot", value: { providers: [...options.providers] } } }));
  const health = new ProviderHealth({ clock, failureThreshold: options.failureThreshold, cooldownMs: options.cooldownMs });
  const dispatcher = new Dispatcher({ table, agents: options.agents, health, failoverAttempts: options.failoverAttempts });
  const authenticate = async (key: string) => (key === ALICE_KEY ? ALICE : undefined);
  const app = createHttpApp({
    log,
    bodyLimitBytes: options.bodyLimitBytes,
    maxUploadBytes: options.bodyLimitBytes,
    authenticate,
    resolveSession: async () => undefined,
  });
  observeInferenceRequests(app, metrics, log, usage.answered);
  const handle = createInferenceHandler({
    maxConcurrentStreams: 0,
    dispatcher,
    metrics,
    clock,
    requestTimeoutMs: 60_000,
    streamTimeoutMs: 60_000,
    keepaliveMs: 60_000,
  });
  void app.register(async (api) => {
    registerOpenAIRoutes(api, { table, handle, guardrails: options.guardrails });
    registerAnthropicRoutes(api, { handle, guardrails: options.guardrails });
    registerMediaRoutes(api, { handle, maxUploadBytes: options.bodyLimitBytes });
  });
  const service = createInferenceService({ dispatcher, authenticate, clock, requestTimeoutMs: 60_000, usage });
  return {
    app,
    clock,
    health,
    metrics,
    infer: service.infer,
    async records() {
      await recorder.flush();
      return sent;
    },
  };
}
