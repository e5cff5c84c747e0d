import { DEFAULT_KEEPALIVE_MS } from "../../services/gateway/answer-writer.js";
import { createGateway } from "../../services/gateway/gateway.js";
import {
  DEFAULT_BODY_LIMIT_BYTES,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_STREAM_TIMEOUT_MS,
  type GatewayOptions,
  SIGNUP_MODES,
  type SignupMode,
} from "../../services/gateway/gateway-options.js";
import { DEFAULT_GUARDRAILS } from "../../services/gateway/guardrails.js";
import { DEFAULT_MAX_UPLOAD_BYTES } from "../../services/gateway/multipart-form.js";
import { DEFAULT_RATE_LIMITS } from "../../services/gateway/rate-limits.js";
import { ConfigError } from "../../services/shared/config-error.js";
import {
  listInWords,
  parseLogLevel,
  parseMs,
  parseRedisUrl,
  parseRegistryUrl,
  parseWholeNumber,
} from "../../services/shared/config-values.js";
import { formatHostPort, type HostPort, parseHostPort } from "../../services/shared/host-port.js";
import { createLogger } from "../../services/shared/logger.js";
import { collectProcessMetrics } from "../../services/shared/process-metrics.js";
import { readServerTls, trustedCas } from "../../services/shared/tls-files.js";
import type { RunnableCommand } from "./command.js";
import { type FlagSpec, type FlagSpecs, parseFlags, requireString } from "./flags.js";
import { DEFAULT_REGISTRY_LISTEN } from "./registry-command.js";
import { type ReadTextFile, readTextFile } from "./secret-flag.js";
import { CA_FILE_FLAG, LOG_LEVEL_FLAG, MESH_TOKEN_FLAGS, REDIS_FLAG, REGISTRY_ADDRESS_FLAG, requireMeshToken } from "./shared-flags.js";
import { onShutdownSignal } from "./shutdown.js";

/** DEFAULT_GATEWAY_LISTEN is the OpenAI HTTP address unless told otherwise. */
export const DEFAULT_GATEWAY_LISTEN = "127.0.0.1:8080";
/** DEFAULT_GATEWAY_GRPC_LISTEN is InferenceService's address unless told otherwise. */
export const DEFAULT_GATEWAY_GRPC_LISTEN = "127.0.0.1:7702";
/** DEFAULT_GATEWAY_SIGNUP is who may make an account in the browser unless told otherwise: the invited. */
export const DEFAULT_GATEWAY_SIGNUP: SignupMode = "invite";

/** gatewayFlag declares one of the gateway's own flags, whose variable is INFERMESH_GATEWAY_<FLAG>. */
function gatewayFlag(name: string, value: string, defaultValue: string | number, description: string): FlagSpec {
  return {
    type: "string",
    default: String(defaultValue),
    value,
    description,
    env: `INFERMESH_GATEWAY_${name.replaceAll("-", "_").toUpperCase()}`,
  };
}

/** GATEWAY_FLAGS are `infermesh gateway`'s flags. */
export const GATEWAY_FLAGS: FlagSpecs = {
  listen: gatewayFlag("listen", "HOST:PORT", DEFAULT_GATEWAY_LISTEN, "OpenAI HTTP listen address"),
  "grpc-listen": gatewayFlag("grpc-listen", "HOST:PORT", DEFAULT_GATEWAY_GRPC_LISTEN, "InferenceService gRPC listen address"),
  advertise: {
    type: "string",
    value: "HOST:PORT",
    description: "the internal address other gateways forward calls to, for agents attached here (default: --grpc-listen's)",
    env: "INFERMESH_GATEWAY_ADVERTISE",
  },
  "metrics-listen": {
    type: "string",
    value: "HOST:PORT",
    description: "HTTP address serving Prometheus /metrics, for the operator's network; the public --listen port does not serve it",
    env: "INFERMESH_GATEWAY_METRICS_LISTEN",
  },
  "trust-proxy": {
    type: "string",
    value: "ADDRESSES",
    description:
      "the load balancers in front of the gateway (addresses or CIDR ranges, comma-separated), whose X-Forwarded-For and -Proto name the client",
    env: "INFERMESH_GATEWAY_TRUST_PROXY",
  },
  "usage-spool": {
    type: "string",
    value: "FILE",
    description:
      "keep usage records on disk (FILE.1, FILE.2, ... and FILE.lock) until the registry took them, so that a gateway killed with SIGKILL sends them when it starts again with the same FILE; one gateway per FILE",
    env: "INFERMESH_GATEWAY_USAGE_SPOOL",
  },
  signup: gatewayFlag(
    "signup",
    "MODE",
    DEFAULT_GATEWAY_SIGNUP,
    "who may make an account in the browser: open (anyone), invite (only with a link from `infermesh users add`), closed (nobody: operators add accounts with `infermesh users add` and `infermesh users password`)",
  ),
  "tls-cert": {
    type: "string",
    value: "FILE",
    description: "PEM certificate chain: both ports serve TLS (with --tls-key)",
    env: "INFERMESH_GATEWAY_TLS_CERT",
  },
  "tls-key": { type: "string", value: "FILE", description: "PEM private key of --tls-cert", env: "INFERMESH_GATEWAY_TLS_KEY" },
  "ca-file": CA_FILE_FLAG,
  registry: {
    ...REGISTRY_ADDRESS_FLAG,
    default: `http://${DEFAULT_REGISTRY_LISTEN}`,
    multiple: true,
    description: `${REGISTRY_ADDRESS_FLAG.description}; repeat it (or separate with commas) for registry replicas, used one at a time`,
  },
  redis: REDIS_FLAG,
  ...MESH_TOKEN_FLAGS,
  "request-timeout-ms": gatewayFlag(
    "request-timeout-ms",
    "MS",
    DEFAULT_REQUEST_TIMEOUT_MS,
    "deadline of a non-streamed inference request, in milliseconds",
  ),
  "stream-timeout-ms": gatewayFlag(
    "stream-timeout-ms",
    "MS",
    DEFAULT_STREAM_TIMEOUT_MS,
    "deadline of a streamed inference request, in milliseconds",
  ),
  "keepalive-ms": gatewayFlag("keepalive-ms", "MS", DEFAULT_KEEPALIVE_MS, "milliseconds of silence before an SSE keep-alive comment"),
  "body-limit-bytes": gatewayFlag("body-limit-bytes", "BYTES", DEFAULT_BODY_LIMIT_BYTES, "largest JSON request body, in bytes"),
  "max-upload-bytes": gatewayFlag(
    "max-upload-bytes",
    "BYTES",
    DEFAULT_MAX_UPLOAD_BYTES,
    "largest upload (the files of one multipart request together), in bytes",
  ),
  "rate-limit-rpm": gatewayFlag(
    "rate-limit-rpm",
    "N",
    DEFAULT_RATE_LIMITS.inferencePerMinute,
    "inference requests per API key per minute (0: no limit)",
  ),
  "models-rate-limit-rpm": gatewayFlag(
    "models-rate-limit-rpm",
    "N",
    DEFAULT_RATE_LIMITS.modelsPerMinute,
    "GET /v1/models per API key per minute (0: no limit)",
  ),
  "max-concurrent-streams": gatewayFlag(
    "max-concurrent-streams",
    "N",
    DEFAULT_RATE_LIMITS.concurrentStreams,
    "streamed answers in flight per API key (0: no limit)",
  ),
  "max-messages": gatewayFlag("max-messages", "N", DEFAULT_GUARDRAILS.maxMessages, "messages per chat request (0: no limit)"),
  "max-input-chars": gatewayFlag(
    "max-input-chars",
    "N",
    DEFAULT_GUARDRAILS.maxInputChars,
    "characters of a request's messages or prompt (0: no limit)",
  ),
  "max-tokens": gatewayFlag("max-tokens", "N", DEFAULT_GUARDRAILS.maxTokens, "ceiling max_tokens is clamped to (0: no ceiling)"),
  "log-level": { ...LOG_LEVEL_FLAG, default: "info" },
};

/** GatewayConfig is `infermesh gateway`'s configuration, parsed once: the gateway's options and its log level. */
export interface GatewayConfig extends Omit<GatewayOptions, "log"> {
  readonly grpcListen: HostPort;
  readonly logLevel: string;
}

/** parseGatewayConfig turns flags and their variables into a frozen GatewayConfig or throws a ConfigError. */
export function parseGatewayConfig(argv: readonly string[], env: NodeJS.ProcessEnv, readFile: ReadTextFile = readTextFile): GatewayConfig {
  const flags = parseFlags(GATEWAY_FLAGS, argv, env);
  const meshToken = requireMeshToken(flags, readFile);
  const value = (name: string) => [flags.setting(name), requireString(flags, name)] as const;
  const optional = <T>(name: string, parse: (setting: string, text: string) => T): T | undefined => {
    const text = flags.string(name);
    return text === undefined ? undefined : parse(flags.setting(name), text);
  };
  const count = (name: string, unit: string) => parseWholeNumber(...value(name), 0, 1_000_000_000, unit);
  return Object.freeze({
    listen: parseHostPort(...value("listen")),
    grpcListen: parseHostPort(...value("grpc-listen")),
    advertise: optional("advertise", (setting, text) => parseHostPort(setting, text, 1)),
    metricsListen: optional("metrics-listen", parseHostPort),
    trustProxy: flags.string("trust-proxy"),
    usageSpool: flags.string("usage-spool") || undefined,
    signup: parseSignup(...value("signup")),
    tls: readServerTls(flags.string("tls-cert"), flags.string("tls-key"), {
      cert: flags.setting("tls-cert"),
      key: flags.setting("tls-key"),
    }),
    ca: trustedCas(flags.string("ca-file"), flags.setting("ca-file")),
    registry: flags.strings("registry").map((address) => parseRegistryUrl(flags.setting("registry"), address)),
    redis: optional("redis", parseRedisUrl),
    meshToken,
    requestTimeoutMs: parseMs(...value("request-timeout-ms")),
    streamTimeoutMs: parseMs(...value("stream-timeout-ms")),
    keepaliveMs: parseMs(...value("keepalive-ms"), 10),
    bodyLimitBytes: parseWholeNumber(...value("body-limit-bytes"), 1024, 1 << 30, "bytes"),
    maxUploadBytes: parseWholeNumber(...value("max-upload-bytes"), 1024, 1 << 30, "bytes"),
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
    logLevel: parseLogLevel(...value("log-level")),
  });
}

/** parseSignup reads --signup: one of SIGNUP_MODES. */
function parseSignup(where: string, text: string): SignupMode {
  if (!(SIGNUP_MODES as readonly string[]).includes(text)) {
    throw new ConfigError(where, `${where} expects ${listInWords(SIGNUP_MODES)}, got '${text}'`);
  }
  return text as SignupMode;
}

/** runGateway starts a gateway and serves until SIGTERM or SIGINT. */
export async function runGateway(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  const config = parseGatewayConfig(argv, env);
  const log = createLogger("gateway", config.logLevel);
  const gateway = createGateway({ ...config, log });
  collectProcessMetrics(gateway.metrics.registry);
  try {
    const addresses = await gateway.listen();
    log.info(
      {
        listen: formatHostPort(addresses.http),
        grpcListen: addresses.grpc && formatHostPort(addresses.grpc),
        metricsPort: addresses.metrics?.port,
        registry: config.registry,
        signup: config.signup,
      },
      "gateway ready",
    );
  } catch (error) {
    await gateway.close();
    throw error;
  }
  await onShutdownSignal(log);
  await gateway.close();
  log.info("gateway stopped");
  log.flush();
}

/** GATEWAY_COMMAND is `infermesh gateway`. */
export const GATEWAY_COMMAND: RunnableCommand = {
  name: "gateway",
  summary: "the OpenAI-compatible HTTP API (and InferenceService over gRPC)",
  synopsis: "gateway [--listen HOST:PORT] [--registry URL ...] [--redis URL] (--mesh-token-file FILE | --mesh-token TOKEN) [flags]",
  flags: GATEWAY_FLAGS,
  run: runGateway,
};
