import { randomUUID } from "node:crypto";
import { type Clock, systemClock } from "../shared/clock.js";
import { ConfigError } from "../shared/config-error.js";
import type { HostPort } from "../shared/host-port.js";
import type { Logger } from "../shared/logger.js";
import type { ServerTls } from "../shared/tls-files.js";
import { DEFAULT_KEEPALIVE_MS } from "./answer-writer.js";
import { DEFAULT_AUTH_TTL_MS } from "./auth-cache.js";
import { DEFAULT_FAILOVER_ATTEMPTS } from "./dispatcher.js";
import { DEFAULT_GUARDRAILS, type Guardrails } from "./guardrails.js";
import { DEFAULT_MAX_UPLOAD_BYTES } from "./multipart-form.js";
import { DEFAULT_COOLDOWN_MS, DEFAULT_FAILURE_THRESHOLD } from "./provider-health.js";
import { DEFAULT_RATE_LIMITS, type RateLimits } from "./rate-limits.js";
import { DEFAULT_RECONNECT_GRACE_MS } from "./routing-table.js";

/** DEFAULT_REQUEST_TIMEOUT_MS bounds one inference request end to end, as inference.club's upstream timeout does. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 300_000;
/** DEFAULT_STREAM_TIMEOUT_MS bounds one streamed request end to end. */
export const DEFAULT_STREAM_TIMEOUT_MS = 30 * 60_000;
/** DEFAULT_BODY_LIMIT_BYTES bounds a JSON request body. */
export const DEFAULT_BODY_LIMIT_BYTES = 16 * 1024 * 1024;
/** DEFAULT_SHUTDOWN_GRACE_MS is how long close() lets requests in flight finish. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 5_000;
/** MIN_BODY_BYTES is the smallest body or upload limit that still admits a request. */
const MIN_BODY_BYTES = 1024;

/** CircuitOptions tune passive health: failures in a row that open a provider's circuit, and the cooldown. */
export interface CircuitOptions {
  readonly failureThreshold: number;
  readonly cooldownMs: number;
}

/** GatewayOptions configure a gateway; what is left out takes its default. */
export interface GatewayOptions {
  /**
   * registry is the registry's base URL, "http://host:port", or several replicas' URLs: the gateway uses one at a time
   * and moves to the next when it fails.
   */
  readonly registry: string | readonly string[];
  /** redis, a redis:// URL, makes gateways share rate-limit counters and stream slots there; per process without it. */
  readonly redis?: string | undefined;
  readonly meshToken: string;
  readonly log: Logger;
  /** listen is the OpenAI HTTP address; port 0 picks a free one. */
  readonly listen: HostPort;
  /** grpcListen, when set, serves InferenceService there. */
  readonly grpcListen?: HostPort | undefined;
  /** advertise is the internal address other gateways forward calls to (the gRPC port); default: grpcListen's. */
  readonly advertise?: HostPort | undefined;
  /** tls makes both ports serve TLS. */
  readonly tls?: ServerTls | undefined;
  /** ca is what the gateway trusts when it dials the registry and its peers over TLS; Node's defaults when undefined. */
  readonly ca?: readonly string[] | undefined;
  /** gatewayId names this gateway in the registry's records; random per process by default. */
  readonly gatewayId?: string;
  readonly clock?: Clock;
  /** requestTimeoutMs is the deadline of a non-streamed request. */
  readonly requestTimeoutMs?: number;
  /** streamTimeoutMs is the deadline of a streamed request, longer: a long answer is still a good answer. */
  readonly streamTimeoutMs?: number;
  /** keepaliveMs is how long a stream may stay silent before the gateway writes a keep-alive comment. */
  readonly keepaliveMs?: number;
  readonly bodyLimitBytes?: number;
  /** maxUploadBytes bounds the files of one multipart request together. */
  readonly maxUploadBytes?: number;
  /** authTtlMs is how long a checked API key is trusted without asking the registry again. */
  readonly authTtlMs?: number;
  /** reconnectGraceMs keeps providers a reconnect snapshot lacks for this long (the registry's TTL). */
  readonly reconnectGraceMs?: number;
  /** failoverAttempts is how many other providers a request may try when one fails before the first byte. */
  readonly failoverAttempts?: number;
  readonly guardrails?: Partial<Guardrails>;
  /** rateLimits bound each API key: requests per minute (inference, /v1/models) and concurrent streams; 0 is off. */
  readonly rateLimits?: Partial<RateLimits>;
  readonly circuit?: Partial<CircuitOptions>;
  /** shutdownGraceMs is how long close() lets requests in flight finish before cutting them. */
  readonly shutdownGraceMs?: number;
  /** signup is who may make an account from the web: anyone ("open"), invited users ("invite", the default), nobody. */
  readonly signup?: SignupMode;
  /** metricsListen, when set, serves Prometheus' GET /metrics there: the operator's port, not the public one. */
  readonly metricsListen?: HostPort | undefined;
  /** publicMetrics also serves /metrics on the public port, as `infermesh dev` does on loopback. */
  readonly publicMetrics?: boolean;
  /** sessionTtlMs is how long a signed-in session lasts. */
  readonly sessionTtlMs?: number;
  /** usageFlushMs is how often answered requests' usage records go to the registry, in one batch. */
  readonly usageFlushMs?: number;
  /**
   * usageSpool, a file path, keeps usage records on disk until the registry took them, so that a gateway killed
   * (SIGKILL) before it sent them sends them when it starts again on the same path. One gateway per path.
   */
  readonly usageSpool?: string | undefined;
  /**
   * trustProxy names the load balancers in front of the gateway (addresses or CIDR ranges, comma-separated): their
   * X-Forwarded-For and X-Forwarded-Proto then give the client's address (sign-in limits count per address) and scheme.
   */
  readonly trustProxy?: string | undefined;
}

/** SIGNUP_MODES are the values of GatewayOptions.signup. */
export const SIGNUP_MODES = ["open", "invite", "closed"] as const;
/** SignupMode is one of SIGNUP_MODES. */
export type SignupMode = (typeof SIGNUP_MODES)[number];
/** DEFAULT_SESSION_TTL_MS is how long a signed-in session lasts: 7 days. */
export const DEFAULT_SESSION_TTL_MS = 7 * 24 * 60 * 60 * 1000;
/** DEFAULT_USAGE_FLUSH_MS is how often usage records are written: at most this much is lost when a gateway is killed. */
export const DEFAULT_USAGE_FLUSH_MS = 1_000;

/** GatewaySettings are a gateway's options with every default applied and checked. */
export interface GatewaySettings {
  /** registries are the registry replicas' base URLs, at least one. */
  readonly registries: readonly string[];
  readonly redis: string | undefined;
  readonly meshToken: string;
  readonly log: Logger;
  readonly listen: HostPort;
  readonly grpcListen: HostPort | undefined;
  readonly advertise: HostPort | undefined;
  readonly tls: ServerTls | undefined;
  readonly ca: readonly string[] | undefined;
  readonly gatewayId: string;
  readonly clock: Clock;
  readonly requestTimeoutMs: number;
  readonly streamTimeoutMs: number;
  readonly keepaliveMs: number;
  readonly bodyLimitBytes: number;
  readonly maxUploadBytes: number;
  readonly authTtlMs: number;
  readonly reconnectGraceMs: number;
  readonly failoverAttempts: number;
  readonly guardrails: Guardrails;
  readonly rateLimits: RateLimits;
  readonly circuit: CircuitOptions;
  readonly shutdownGraceMs: number;
  readonly signup: SignupMode;
  readonly metricsListen: HostPort | undefined;
  readonly publicMetrics: boolean;
  readonly sessionTtlMs: number;
  readonly usageFlushMs: number;
  readonly usageSpool: string | undefined;
  readonly trustProxy: string | undefined;
}

/**
 * resolveGatewayOptions applies every default once and checks every value, so that the gateway's parts get complete
 * settings and never default anything themselves. A bad value throws a ConfigError naming the option.
 */
export function resolveGatewayOptions(options: GatewayOptions): GatewaySettings {
  const settings: GatewaySettings = {
    registries: Object.freeze(typeof options.registry === "string" ? [options.registry] : [...options.registry]),
    redis: options.redis,
    meshToken: options.meshToken,
    log: options.log,
    listen: options.listen,
    grpcListen: options.grpcListen,
    advertise: options.advertise,
    tls: options.tls,
    ca: options.ca,
    gatewayId: options.gatewayId ?? randomUUID(),
    clock: options.clock ?? systemClock,
    requestTimeoutMs: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    streamTimeoutMs: options.streamTimeoutMs ?? DEFAULT_STREAM_TIMEOUT_MS,
    keepaliveMs: options.keepaliveMs ?? DEFAULT_KEEPALIVE_MS,
    bodyLimitBytes: options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES,
    maxUploadBytes: options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES,
    authTtlMs: options.authTtlMs ?? DEFAULT_AUTH_TTL_MS,
    reconnectGraceMs: options.reconnectGraceMs ?? DEFAULT_RECONNECT_GRACE_MS,
    failoverAttempts: options.failoverAttempts ?? DEFAULT_FAILOVER_ATTEMPTS,
    guardrails: Object.freeze({ ...DEFAULT_GUARDRAILS, ...options.guardrails }),
    rateLimits: Object.freeze({ ...DEFAULT_RATE_LIMITS, ...options.rateLimits }),
    circuit: Object.freeze({ failureThreshold: DEFAULT_FAILURE_THRESHOLD, cooldownMs: DEFAULT_COOLDOWN_MS, ...options.circuit }),
    shutdownGraceMs: options.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS,
    signup: options.signup ?? "invite",
    metricsListen: options.metricsListen,
    publicMetrics: options.publicMetrics ?? false,
    sessionTtlMs: options.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS,
    usageFlushMs: options.usageFlushMs ?? DEFAULT_USAGE_FLUSH_MS,
    usageSpool: options.usageSpool,
    trustProxy: options.trustProxy,
  };
  if (settings.registries.length === 0) throw new ConfigError("registry", "the gateway needs at least one registry address");
  if (!SIGNUP_MODES.includes(settings.signup))
    throw new ConfigError("signup", `the gateway's signup must be one of ${SIGNUP_MODES.join(", ")}, got ${String(settings.signup)}`);
  const counts: readonly (readonly [string, number, number])[] = [
    ["requestTimeoutMs", settings.requestTimeoutMs, 1],
    ["streamTimeoutMs", settings.streamTimeoutMs, 1],
    ["keepaliveMs", settings.keepaliveMs, 1],
    ["bodyLimitBytes", settings.bodyLimitBytes, MIN_BODY_BYTES],
    ["maxUploadBytes", settings.maxUploadBytes, MIN_BODY_BYTES],
    ["authTtlMs", settings.authTtlMs, 0],
    ["reconnectGraceMs", settings.reconnectGraceMs, 0],
    ["failoverAttempts", settings.failoverAttempts, 0],
    ["guardrails.maxMessages", settings.guardrails.maxMessages, 0],
    ["guardrails.maxInputChars", settings.guardrails.maxInputChars, 0],
    ["guardrails.maxTokens", settings.guardrails.maxTokens, 0],
    ["rateLimits.inferencePerMinute", settings.rateLimits.inferencePerMinute, 0],
    ["rateLimits.modelsPerMinute", settings.rateLimits.modelsPerMinute, 0],
    ["rateLimits.concurrentStreams", settings.rateLimits.concurrentStreams, 0],
    ["circuit.failureThreshold", settings.circuit.failureThreshold, 1],
    ["circuit.cooldownMs", settings.circuit.cooldownMs, 0],
    ["shutdownGraceMs", settings.shutdownGraceMs, 0],
    ["sessionTtlMs", settings.sessionTtlMs, 1000],
    ["usageFlushMs", settings.usageFlushMs, 1],
  ];
  for (const [name, value, min] of counts) {
    if (!Number.isSafeInteger(value) || value < min)
      throw new ConfigError(name, `the gateway's ${name} must be a whole number of at least ${min}, got ${value}`);
  }
  return Object.freeze(settings);
}
