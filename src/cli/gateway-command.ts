import { createGateway, DEFAULT_BODY_LIMIT_BYTES, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_STREAM_TIMEOUT_MS } from "../../services/gateway/gateway.js";
import { DEFAULT_KEEPALIVE_MS } from "../../services/gateway/answer-writer.js";
import { DEFAULT_GUARDRAILS, type Guardrails } from "../../services/gateway/guardrails.js";
import { DEFAULT_MAX_UPLOAD_BYTES } from "../../services/gateway/multipart-form.js";
import { DEFAULT_RATE_LIMITS, type RateLimits } from "../../services/gateway/rate-limits.js";
import { createLogger } from "../../services/shared/logger.js";
import { collectProcessMetrics } from "../../services/shared/process-metrics.js";
import {
  formatHostPort,
  parseFlags,
  parseHostPort,
  parseLogLevel,
  parseMs,
  parseWholeNumber,
  parseRegistryUrl,
  requireString,
  usageText,
  type FlagSpecs,
  type HostPort,
} from "./flags.js";
import { DEFAULT_REGISTRY_LISTEN, requireMeshToken } from "./registry-command.js";
import { onShutdownSignal } from "./shutdown.js";

/** DEFAULT_GATEWAY_LISTEN is the OpenAI HTTP address unless told otherwise. */
export const DEFAULT_GATEWAY_LISTEN = "127.0.0.1:8080";
/** DEFAULT_GATEWAY_GRPC_LISTEN is InferenceService's address unless told otherwise. */
export const DEFAULT_GATEWAY_GRPC_LISTEN = "127.0.0.1:7702";

/** GATEWAY_FLAGS are `infermesh gateway`'s flags. */
export const GATEWAY_FLAGS: FlagSpecs = {
  listen: { type: "string", default: DEFAULT_GATEWAY_LISTEN, description: "OpenAI HTTP listen address HOST:PORT" },
  "grpc-listen": { type: "string", default: DEFAULT_GATEWAY_GRPC_LISTEN, description: "InferenceService gRPC address HOST:PORT" },
  registry: { type: "string", default: `http://${DEFAULT_REGISTRY_LISTEN}`, description: "the registry, http://HOST:PORT (or HOST:PORT)" },
  "mesh-token": { type: "string", description: "the mesh token the registry expects from gateways" },
  "request-timeout-ms": { type: "string", default: String(DEFAULT_REQUEST_TIMEOUT_MS), description: "deadline of a non-streamed inference request" },
  "stream-timeout-ms": { type: "string", default: String(DEFAULT_STREAM_TIMEOUT_MS), description: "deadline of a streamed inference request" },
  "keepalive-ms": { type: "string", default: String(DEFAULT_KEEPALIVE_MS), description: "SSE keep-alive comment after this much silence" },
  "body-limit-bytes": { type: "string", default: String(DEFAULT_BODY_LIMIT_BYTES), description: "largest JSON request body" },
  "max-upload-bytes": { type: "string", default: String(DEFAULT_MAX_UPLOAD_BYTES), description: "largest upload (the files of one multipart request together)" },
  "rate-limit-rpm": { type: "string", default: String(DEFAULT_RATE_LIMITS.inferencePerMinute), description: "inference requests per API key per minute (0: off)" },
  "models-rate-limit-rpm": { type: "string", default: String(DEFAULT_RATE_LIMITS.modelsPerMinute), description: "GET /v1/models per API key per minute (0: off)" },
  "max-concurrent-streams": { type: "string", default: String(DEFAULT_RATE_LIMITS.concurrentStreams), description: "streamed answers in flight per API key (0: off)" },
  "max-messages": { type: "string", default: String(DEFAULT_GUARDRAILS.maxMessages), description: "messages per chat request (0: off)" },
  "max-input-chars": { type: "string", default: String(DEFAULT_GUARDRAILS.maxInputChars), description: "characters of a request's messages or prompt (0: off)" },
  "max-tokens": { type: "string", default: String(DEFAULT_GUARDRAILS.maxTokens), description: "ceiling max_tokens is clamped to (0: off)" },
  "log-level": { type: "string", default: "info", description: "log level" },
  help: { type: "boolean", description: "print this help" },
};

/** GatewayConfig is `infermesh gateway`'s configuration, parsed once. */
export interface GatewayConfig {
  readonly listen: HostPort;
  readonly grpcListen: HostPort;
  /** registry is the registry's base URL, "http://host:port". */
  readonly registry: string;
  readonly meshToken: string;
  readonly requestTimeoutMs: number;
  readonly streamTimeoutMs: number;
  readonly keepaliveMs: number;
  readonly bodyLimitBytes: number;
  readonly maxUploadBytes: number;
  readonly rateLimits: RateLimits;
  readonly guardrails: Guardrails;
  readonly logLevel: string;
}

/** parseGatewayConfig turns flags and INFERMESH_* variables into a frozen GatewayConfig or throws a UsageError. */
export function parseGatewayConfig(argv: readonly string[], env: NodeJS.ProcessEnv): GatewayConfig {
  const flags = parseFlags(GATEWAY_FLAGS, argv, env);
  const meshToken = requireMeshToken(flags);
  const count = (name: string, unit: string) => parseWholeNumber(name, requireString(flags, name), 0, 1_000_000_000, unit);
  return Object.freeze({
    listen: parseHostPort("--listen", requireString(flags, "listen")),
    grpcListen: parseHostPort("--grpc-listen", requireString(flags, "grpc-listen")),
    registry: parseRegistryUrl("--registry", requireString(flags, "registry")),
    meshToken,
    requestTimeoutMs: parseMs("request-timeout-ms", requireString(flags, "request-timeout-ms")),
    streamTimeoutMs: parseMs("stream-timeout-ms", requireString(flags, "stream-timeout-ms")),
    keepaliveMs: parseMs("keepalive-ms", requireString(flags, "keepalive-ms"), 10),
    bodyLimitBytes: parseWholeNumber("body-limit-bytes", requireString(flags, "body-limit-bytes"), 1024, 1 << 30, "bytes"),
    maxUploadBytes: parseWholeNumber("max-upload-bytes", requireString(flags, "max-upload-bytes"), 1024, 1 << 30, "bytes"),
    rateLimits: {
      inferencePerMinute: count("rate-limit-rpm", "requests per minute"),
      modelsPerMinute: count("models-rate-limit-rpm", "requests per minute"),
      concurrentStreams: count("max-concurrent-streams", "streams"),
    },
    guardrails: {
      maxMessages: count("max-messages", "messages"),
      maxInputChars: count("max-input-chars", "characters"),
      maxTokens: count("max-tokens", "tokens"),
    },
    logLevel: parseLogLevel(requireString(flags, "log-level")),
  });
}

/** runGateway starts a gateway and serves until SIGTERM or SIGINT. */
export async function runGateway(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  if (parseFlags(GATEWAY_FLAGS, argv, env).boolean("help")) {
    process.stdout.write(usageText("infermesh gateway [flags]", GATEWAY_FLAGS));
    return;
  }
  const config = parseGatewayConfig(argv, env);
  const log = createLogger("gateway", config.logLevel);
  const gateway = createGateway({
    registry: config.registry,
    meshToken: config.meshToken,
    log,
    requestTimeoutMs: config.requestTimeoutMs,
    streamTimeoutMs: config.streamTimeoutMs,
    keepaliveMs: config.keepaliveMs,
    bodyLimitBytes: config.bodyLimitBytes,
    maxUploadBytes: config.maxUploadBytes,
    rateLimits: config.rateLimits,
    guardrails: config.guardrails,
  });
  collectProcessMetrics(gateway.metrics.registry);
  try {
    const { httpPort, grpcPort } = await gateway.listen(config.listen, formatHostPort(config.grpcListen));
    log.info({ listen: `${config.listen.host}:${httpPort}`, grpcListen: `${config.grpcListen.host}:${grpcPort}`, registry: config.registry }, "gateway ready");
  } catch (error) {
    await gateway.close(0);
    throw error;
  }
  await onShutdownSignal(log);
  await gateway.close();
  log.info("gateway stopped");
  log.flush();
}
