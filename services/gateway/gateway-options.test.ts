import { expect } from "chai";
import { systemClock } from "../shared/clock.js";
import { ConfigError } from "../shared/config-error.js";
import { createLogger } from "../shared/logger.js";
import { DEFAULT_KEEPALIVE_MS } from "./answer-writer.js";
import { DEFAULT_AUTH_TTL_MS } from "./auth-cache.js";
import { DEFAULT_FAILOVER_ATTEMPTS } from "./dispatcher.js";
import {
  DEFAULT_BODY_LIMIT_BYTES,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_SESSION_TTL_MS,
  DEFAULT_SHUTDOWN_GRACE_MS,
  DEFAULT_STREAM_TIMEOUT_MS,
  DEFAULT_USAGE_FLUSH_MS,
  type GatewayOptions,
  resolveGatewayOptions,
} from "./gateway-options.js";
import { DEFAULT_GUARDRAILS } from "./guardrails.js";
import { DEFAULT_MAX_UPLOAD_BYTES } from "./multipart-form.js";
import { DEFAULT_COOLDOWN_MS, DEFAULT_FAILURE_THRESHOLD } from "./provider-health.js";
import { DEFAULT_RATE_LIMITS } from "./rate-limits.js";
import { DEFAULT_RECONNECT_GRACE_MS } from "./routing-table.js";

const log = createLogger("gateway", "silent");
const REQUIRED: GatewayOptions = {
  registry: "http://127.0.0.1:7700",
  meshToken: "mesh-token-0123456789",
  log,
  listen: { host: "127.0.0.1", port: 0 },
};

function refusal(options: Partial<GatewayOptions>): { setting: string; message: string } {
  try {
    resolveGatewayOptions({ ...REQUIRED, ...options });
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return { setting: (error as ConfigError).setting, message: (error as Error).message };
  }
  throw new Error("expected a ConfigError");
}

describe("gateway options", () => {
  it("apply every default once, into complete frozen settings", () => {
    const settings = resolveGatewayOptions(REQUIRED);
    // A gateway names itself in the registry's records of where agents are attached: a fresh id per process.
    expect(settings.gatewayId).to.match(/^[0-9a-f-]{36}$/);
    expect(resolveGatewayOptions(REQUIRED).gatewayId).to.not.equal(settings.gatewayId);
    const { registry: _registry, ...required } = REQUIRED;
    expect(settings).to.deep.equal({
      ...required,
      registries: ["http://127.0.0.1:7700"],
      redis: undefined,
      grpcListen: undefined,
      advertise: undefined,
      tls: undefined,
      ca: undefined,
      gatewayId: settings.gatewayId,
      clock: systemClock,
      requestTimeoutMs: DEFAULT_REQUEST_TIMEOUT_MS,
      streamTimeoutMs: DEFAULT_STREAM_TIMEOUT_MS,
      keepaliveMs: DEFAULT_KEEPALIVE_MS,
      bodyLimitBytes: DEFAULT_BODY_LIMIT_BYTES,
      maxUploadBytes: DEFAULT_MAX_UPLOAD_BYTES,
      authTtlMs: DEFAULT_AUTH_TTL_MS,
      reconnectGraceMs: DEFAULT_RECONNECT_GRACE_MS,
      failoverAttempts: DEFAULT_FAILOVER_ATTEMPTS,
      guardrails: DEFAULT_GUARDRAILS,
      rateLimits: DEFAULT_RATE_LIMITS,
      circuit: { failureThreshold: DEFAULT_FAILURE_THRESHOLD, cooldownMs: DEFAULT_COOLDOWN_MS },
      shutdownGraceMs: DEFAULT_SHUTDOWN_GRACE_MS,
      signup: "invite",
      metricsListen: undefined,
      publicMetrics: false,
      sessionTtlMs: DEFAULT_SESSION_TTL_MS,
      usageFlushMs: DEFAULT_USAGE_FLUSH_MS,
      usageSpool: undefined,
      trustProxy: undefined,
    });
    expect(Object.isFrozen(settings)).to.equal(true);
  });

  it("merge partial guardrails, rate limits and circuit settings over their defaults", () => {
    const settings = resolveGatewayOptions({
      ...REQUIRED,
      guardrails: { maxTokens: 100 },
      rateLimits: { concurrentStreams: 0 },
      circuit: { cooldownMs: 50 },
    });
    expect(settings.guardrails).to.deep.equal({ ...DEFAULT_GUARDRAILS, maxTokens: 100 });
    expect(settings.rateLimits).to.deep.equal({ ...DEFAULT_RATE_LIMITS, concurrentStreams: 0 });
    expect(settings.circuit).to.deep.equal({ failureThreshold: DEFAULT_FAILURE_THRESHOLD, cooldownMs: 50 });
  });

  it("refuse a value out of range, naming the option", () => {
    expect(refusal({ requestTimeoutMs: 0 })).to.deep.equal({
      setting: "requestTimeoutMs",
      message: "the gateway's requestTimeoutMs must be a whole number of at least 1, got 0",
    });
    expect(refusal({ bodyLimitBytes: 10 }).setting).to.equal("bodyLimitBytes");
    expect(refusal({ registry: [] })).to.deep.equal({ setting: "registry", message: "the gateway needs at least one registry address" });
    expect(resolveGatewayOptions({ ...REQUIRED, registry: ["http://a:1", "http://b:1"] }).registries).to.deep.equal([
      "http://a:1",
      "http://b:1",
    ]);
    expect(refusal({ guardrails: { maxMessages: -1 } }).setting).to.equal("guardrails.maxMessages");
    expect(refusal({ circuit: { failureThreshold: 0 } }).setting).to.equal("circuit.failureThreshold");
    expect(refusal({ keepaliveMs: 1.5 }).setting).to.equal("keepaliveMs");
  });
});
