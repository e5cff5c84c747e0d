import type { RateLimitPluginOptions } from "@fastify/rate-limit";
import type { FastifyRequest } from "fastify";
import type { Redis } from "ioredis";
import { type GatewayError, rateLimited } from "./gateway-errors.js";
import { MODEL_ROUTES } from "./openai-routes.js";

/** RateLimits bound what one API key may do; 0 switches a bound off. */
export interface RateLimits {
  /** inferencePerMinute bounds inference requests per key per minute. */
  readonly inferencePerMinute: number;
  /** modelsPerMinute bounds GET /v1/models per key per minute. */
  readonly modelsPerMinute: number;
  /** concurrentStreams bounds a key's streamed answers in flight at once. */
  readonly concurrentStreams: number;
}

/**
 * DEFAULT_RATE_LIMITS are ten times inference.club's 60 and 120 a minute: a person's own mesh should not throttle
 * them, while a leaked key still cannot flood it.
 */
export const DEFAULT_RATE_LIMITS: RateLimits = Object.freeze({ inferencePerMinute: 600, modelsPerMinute: 1200, concurrentStreams: 32 });

/** RATE_LIMIT_NAMESPACE prefixes the per-key request counters that gateways sharing a Redis keep there. */
export const RATE_LIMIT_NAMESPACE = "infermesh-rate:";
const MINUTE_MS = 60_000;
const UNLIMITED = Number.MAX_SAFE_INTEGER;

/**
 * perKeyRateLimit configures @fastify/rate-limit per API key (after authentication, hence the preHandler hook),
 * with separate budgets for /v1/models (and a model's retrieval) and for inference. Every authenticated answer
 * carries the X-RateLimit-* headers; a 429 carries Retry-After and OpenAI's envelope.
 *
 * Given a Redis connection, the counters live there, so that every gateway sharing it draws on one budget per key.
 * A Redis that cannot answer lets requests through rather than refusing them (fail-open, as LiteLLM and most API
 * gateways do): the connection fails each command within its timeout, and a limit that lapses for that long costs
 * less than an outage of the whole API.
 */
export function perKeyRateLimit(limits: RateLimits, redis?: Redis): RateLimitPluginOptions {
  const budget = (request: FastifyRequest) => {
    const max = isModels(request) ? limits.modelsPerMinute : limits.inferencePerMinute;
    return max > 0 ? max : UNLIMITED;
  };
  return {
    global: true,
    hook: "preHandler",
    timeWindow: MINUTE_MS,
    max: (request) => budget(request),
    keyGenerator: (request) => `${request.principal.keyId}:${isModels(request) ? "models" : "inference"}`,
    allowList: (request) => !request.url.startsWith("/v1/") || request.principal === undefined || budget(request) === UNLIMITED,
    errorResponseBuilder: (_request, context) =>
      rateLimited(`Rate limit reached: ${context.max} requests per minute. Retry in ${context.after}.`, "rate_limit_exceeded"),
    ...(redis ? { redis, nameSpace: RATE_LIMIT_NAMESPACE, skipOnError: true } : {}),
  };
}

/** MODELS_ROUTES are the routes that list models and retrieve one: they share the models budget. */
const MODELS_ROUTES: ReadonlySet<string | undefined> = new Set(["/v1/models", ...MODEL_ROUTES]);

function isModels(request: FastifyRequest): boolean {
  return MODELS_ROUTES.has(request.routeOptions.url);
}

/** StreamSlotPool hands out stream slots: take gives the function that releases the slot, or throws the 429. */
export interface StreamSlotPool {
  take(keyId: string): (() => void) | Promise<() => void>;
}

/** tooManyStreams is the 429 of a key that already has its most streams open, wherever they were counted. */
export function tooManyStreams(max: number): GatewayError {
  return rateLimited(`Too many concurrent streams: at most ${max} per API key.`, "concurrent_streams_exceeded", 1);
}

/**
 * StreamSlots counts each key's streamed answers in flight on this gateway, so one key cannot hold every connection
 * of the mesh.
 */
export class StreamSlots implements StreamSlotPool {
  readonly #max: number;
  readonly #open = new Map<string, number>();

  constructor(max: number) {
    this.#max = max;
  }

  /** take reserves a slot for the key, or throws a 429; the returned function gives it back. */
  take(keyId: string): () => void {
    const open = this.#open.get(keyId) ?? 0;
    if (this.#max > 0 && open >= this.#max) {
      throw tooManyStreams(this.#max);
    }
    this.#open.set(keyId, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#open.get(keyId) ?? 1) - 1;
      if (left > 0) this.#open.set(keyId, left);
      else this.#open.delete(keyId);
    };
  }
}
