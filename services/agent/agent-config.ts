import { readFileSync } from "node:fs";
import type { Modality } from "../../gen/infermesh/v1/capabilities_pb.js";
import {
  envName,
  parseBaseUrl,
  parseFlags,
  parseHostPort,
  parseRegistryUrl,
  UsageError,
  type FlagSpecs,
  type HostPort,
  type ParsedFlags,
} from "../../src/cli/flags.js";
import { MODALITY_NAMES, modalityNamed, SERVICE_TYPE_NAMES, type ServiceTypeName } from "../shared/inference-catalog.js";
import { LOG_LEVELS } from "../shared/logger.js";

/** UpstreamType is the service type of a local server's models: every model of an upstream has the same one. */
export type UpstreamType = ServiceTypeName;

/**
 * UPSTREAM_KINDS are the APIs an upstream speaks: "openai" (the OpenAI-compatible endpoints, the default),
 * "whispercpp" (whisper.cpp's server, POST /inference) and "automatic1111" (the AUTOMATIC1111 / Forge WebUI API,
 * /sdapi/v1/...). The agent translates OpenAI calls to the native APIs and their answers back.
 */
export const UPSTREAM_KINDS = ["openai", "whispercpp", "automatic1111"] as const;
/** UpstreamKind is one of UPSTREAM_KINDS. */
export type UpstreamKind = (typeof UPSTREAM_KINDS)[number];

/** KIND_TYPES are the only upstream type each native kind serves; "openai" serves any. */
const KIND_TYPES: Readonly<Partial<Record<UpstreamKind, UpstreamType>>> = { whispercpp: "stt", automatic1111: "image" };

/** DEFAULT_AGENT_LISTEN is the agent's gRPC address unless told otherwise. */
export const DEFAULT_AGENT_LISTEN = "127.0.0.1:7701";
/** DEFAULT_MAX_CONCURRENCY is how many requests an upstream serves at once unless told otherwise. */
export const DEFAULT_MAX_CONCURRENCY = 4;
/** DEFAULT_MAX_QUEUE is how many requests wait for an upstream's slot before RESOURCE_EXHAUSTED. */
export const DEFAULT_MAX_QUEUE = 64;
/** DEFAULT_DISCOVERY_INTERVAL_MS is how often the agent asks its upstreams what they serve. */
export const DEFAULT_DISCOVERY_INTERVAL_MS = 30_000;
/** DEFAULT_SHUTDOWN_GRACE_MS is how long requests in flight may finish when the agent stops. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;
/** DEFAULT_UPSTREAM_TIMEOUT_MS bounds the wait for an upstream's headers and between its body bytes (the seed's 300 s). */
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 300_000;

const PROVIDER_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_NAME_LENGTH = 256;
const MAX_FEATURES = 64;
const MAX_SHORT_TEXT = 64;
const MAX_UINT32 = 0xffff_ffff;

/** AGENT_FLAGS are `infermesh agent`'s flags; the config file's top-level keys are the same names in snake_case. */
export const AGENT_FLAGS: FlagSpecs = {
  registry: { type: "string", description: "the registry's gRPC address, HOST:PORT or http(s)://HOST:PORT" },
  "api-key": { type: "string", description: "your infermesh API key (prefer the environment variable to the flag)" },
  listen: { type: "string", description: `gRPC listen address HOST:PORT (default ${DEFAULT_AGENT_LISTEN})` },
  advertise: { type: "string", description: "HOST:PORT gateways dial (default: the listen address, port as bound)" },
  id: { type: "string", description: "provider id, 1-128 of [A-Za-z0-9._:-] (default: derived from host, address, key)" },
  name: { type: "string", description: "display name, shown as owned_by on /v1/models (default: the host name)" },
  upstream: {
    type: "string",
    multiple: true,
    description:
      "a local model server, [TYPE=][KIND+]URL[#MODEL]: TYPE llm, stt, image or tts (default llm, or the kind's type); " +
      `KIND ${UPSTREAM_KINDS.join(", ")} (default openai); #MODEL declares the model it serves instead of asking it; repeatable`,
  },
  "max-concurrency": { type: "string", description: `requests per upstream at once (default ${DEFAULT_MAX_CONCURRENCY})` },
  "max-queue": { type: "string", description: `requests waiting per upstream before refusing (default ${DEFAULT_MAX_QUEUE})` },
  config: { type: "string", description: "JSON file describing upstreams in full; flags and variables override it" },
  "metrics-listen": { type: "string", description: "HTTP address HOST:PORT serving Prometheus /metrics" },
  "discovery-interval-ms": {
    type: "string",
    description: `how often to ask upstreams for their models, in ms (default ${DEFAULT_DISCOVERY_INTERVAL_MS})`,
  },
  "shutdown-grace-ms": {
    type: "string",
    description: `how long requests in flight may finish on shutdown, in ms (default ${DEFAULT_SHUTDOWN_GRACE_MS})`,
  },
  "upstream-timeout-ms": {
    type: "string",
    description: `longest wait for an upstream's headers or next bytes, in ms (default ${DEFAULT_UPSTREAM_TIMEOUT_MS})`,
  },
  "log-level": { type: "string", description: `log level: ${LOG_LEVELS.join(", ")} (default info)` },
  help: { type: "boolean", description: "print this help" },
};

/** CapabilityOverride replaces what discovery says about a model; absent fields keep the discovered or default value. */
export interface CapabilityOverride {
  readonly inputModalities?: readonly Modality[];
  readonly outputModalities?: readonly Modality[];
  readonly supportedFeatures?: readonly string[];
  readonly contextLength?: number;
}

/** UpstreamConfig is one local model server. */
export interface UpstreamConfig {
  readonly type: UpstreamType;
  /** kind is the API the server speaks; the agent translates OpenAI calls for the native ones. */
  readonly kind: UpstreamKind;
  /** url is the server's base URL, without a trailing slash or "/v1": paths such as "/v1/models" are appended. */
  readonly url: string;
  /** engine names the server software ("llamacpp", "ollama", ...); undefined lets discovery guess. */
  readonly engine: string | undefined;
  /**
   * declare, when set, lists the models the server serves, advertised as they are without asking the server for a
   * list: for servers that have none (whisper.cpp) or whose list is wrong. The server is still probed so that its
   * models are withdrawn while it is down.
   */
  readonly declare: readonly string[] | undefined;
  /** expose, when set, lists the only model ids to advertise (matched case-insensitively). */
  readonly expose: readonly string[] | undefined;
  /** hide lists model ids never to advertise (matched case-insensitively). */
  readonly hide: readonly string[];
  /** capabilities override what discovery found, by model id; the key "*" applies to every model of the upstream. */
  readonly capabilities: Readonly<Record<string, CapabilityOverride>>;
  readonly maxConcurrency: number;
  readonly maxQueue: number;
  /** apiKey is sent to the upstream as a Bearer token when set. */
  readonly apiKey: string | undefined;
}

/** AgentConfig is `infermesh agent`'s configuration, parsed once and frozen. */
export interface AgentConfig {
  /** registry is the registry's base URL, "http://host:port" (or https). */
  readonly registry: string;
  readonly apiKey: string;
  readonly listen: HostPort;
  readonly advertise: HostPort | undefined;
  readonly id: string | undefined;
  readonly name: string | undefined;
  readonly upstreams: readonly UpstreamConfig[];
  readonly metricsListen: HostPort | undefined;
  readonly discoveryIntervalMs: number;
  readonly shutdownGraceMs: number;
  readonly upstreamTimeoutMs: number;
  readonly logLevel: string;
}

/** UpstreamSettings is an upstream as one source (flags, file, test) describes it; defaults come later. */
export interface UpstreamSettings {
  readonly type: UpstreamType;
  readonly kind?: UpstreamKind;
  readonly url: string;
  readonly declare?: readonly string[];
  readonly engine?: string;
  readonly expose?: readonly string[];
  readonly hide?: readonly string[];
  readonly capabilities?: Readonly<Record<string, CapabilityOverride>>;
  readonly maxConcurrency?: number;
  readonly maxQueue?: number;
  readonly apiKey?: string;
}

/** AgentSettings is a partial configuration from one source, already checked in that source's terms. */
export interface AgentSettings {
  readonly registry?: string;
  readonly apiKey?: string;
  readonly listen?: HostPort;
  readonly advertise?: HostPort;
  readonly id?: string;
  readonly name?: string;
  readonly upstreams?: readonly UpstreamSettings[];
  readonly maxConcurrency?: number;
  readonly maxQueue?: number;
  readonly metricsListen?: HostPort;
  readonly discoveryIntervalMs?: number;
  readonly shutdownGraceMs?: number;
  readonly upstreamTimeoutMs?: number;
  readonly logLevel?: string;
}

/**
 * parseAgentConfig reads `--config FILE` (if any), then flags and INFERMESH_* variables, which win over the file;
 * upstreams from both are served. A bad value throws a UsageError naming the flag or the file's field.
 */
export function parseAgentConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  readFile: (path: string) => string = (path) => readFileSync(path, "utf8"),
): AgentConfig {
  const flags = parseFlags(AGENT_FLAGS, argv, env);
  const file = flags.string("config");
  const fromFile = file === undefined ? {} : settingsFromFile(file, readConfigFile(file, readFile));
  return resolveAgentConfig(fromFile, settingsFromFlags(flags));
}

/**
 * resolveAgentConfig merges settings (later ones win field by field; upstreams add up), applies defaults, checks
 * what is required, and freezes the result.
 */
export function resolveAgentConfig(...sources: readonly AgentSettings[]): AgentConfig {
  const merged: AgentSettings = Object.assign({}, ...sources);
  const registry = merged.registry;
  if (registry === undefined) throw missing("registry");
  if (merged.apiKey === undefined || merged.apiKey === "") throw missing("api-key");
  const upstreamSettings = sources.flatMap((source) => source.upstreams ?? []);
  if (upstreamSettings.length === 0) throw missing("upstream", "upstreams");
  const maxConcurrency = merged.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY;
  const maxQueue = merged.maxQueue ?? DEFAULT_MAX_QUEUE;
  const seen = new Set<string>();
  const upstreams = upstreamSettings.map((upstream) => {
    const key = `${upstream.type} ${upstream.url}`;
    if (seen.has(key)) throw new UsageError(`upstream ${upstream.type}=${upstream.url} is given twice`);
    seen.add(key);
    return Object.freeze<UpstreamConfig>({
      type: upstream.type,
      kind: upstream.kind ?? "openai",
      url: upstream.url,
      engine: upstream.engine,
      declare: upstream.declare === undefined ? undefined : Object.freeze([...upstream.declare]),
      expose: upstream.expose === undefined ? undefined : Object.freeze([...upstream.expose]),
      hide: Object.freeze([...(upstream.hide ?? [])]),
      capabilities: Object.freeze({ ...upstream.capabilities }),
      maxConcurrency: upstream.maxConcurrency ?? maxConcurrency,
      maxQueue: upstream.maxQueue ?? maxQueue,
      apiKey: upstream.apiKey,
    });
  });
  return Object.freeze<AgentConfig>({
    registry,
    apiKey: merged.apiKey,
    listen: merged.listen ?? parseHostPort("--listen", DEFAULT_AGENT_LISTEN),
    advertise: merged.advertise,
    id: merged.id,
    name: merged.name,
    upstreams: Object.freeze(upstreams),
    metricsListen: merged.metricsListen,
    discoveryIntervalMs: merged.discoveryIntervalMs ?? DEFAULT_DISCOVERY_INTERVAL_MS,
    shutdownGraceMs: merged.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS,
    upstreamTimeoutMs: merged.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS,
    logLevel: merged.logLevel ?? "info",
  });
}

/** settingsFromFlags reads the flags and INFERMESH_* variables that were given; errors name the flag. */
export function settingsFromFlags(flags: ParsedFlags): AgentSettings {
  const settings: Record<string, unknown> = {};
  const text = (flag: string, key: keyof AgentSettings, check: (where: string, value: string) => unknown) => {
    const value = flags.string(flag);
    if (value !== undefined) settings[key] = check(`--${flag}`, value);
  };
  text("registry", "registry", parseRegistryUrl);
  text("api-key", "apiKey", nonEmpty);
  text("listen", "listen", parseHostPort);
  text("advertise", "advertise", parseHostPort);
  text("id", "id", providerId);
  text("name", "name", displayName);
  text("max-concurrency", "maxConcurrency", (where, value) => wholeNumber(where, value, 1, 10_000, "requests"));
  text("max-queue", "maxQueue", (where, value) => wholeNumber(where, value, 0, 1_000_000, "requests"));
  text("metrics-listen", "metricsListen", parseHostPort);
  text("discovery-interval-ms", "discoveryIntervalMs", (where, value) => wholeNumber(where, value, 100, 86_400_000, "ms"));
  text("shutdown-grace-ms", "shutdownGraceMs", (where, value) => wholeNumber(where, value, 0, 3_600_000, "ms"));
  text("upstream-timeout-ms", "upstreamTimeoutMs", (where, value) => wholeNumber(where, value, 100, 86_400_000, "ms"));
  text("log-level", "logLevel", logLevel);
  const upstreams = flags.strings("upstream");
  if (upstreams.length > 0) settings.upstreams = upstreams.map((value) => upstreamFlag(value));
  return settings as AgentSettings;
}

/** settingsFromFile checks a parsed config file; errors name the file and the field. */
export function settingsFromFile(path: string, json: unknown): AgentSettings {
  const where = (field: string) => `--config ${path}: field ${field}`;
  const top = object(where("(top level)"), json);
  const settings: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(top)) {
    const at = where(key);
    switch (key) {
      case "registry":
        settings.registry = parseRegistryUrl(at, string(at, value));
        break;
      case "api_key":
        settings.apiKey = nonEmpty(at, string(at, value));
        break;
      case "listen":
      case "advertise":
      case "metrics_listen":
        settings[camel(key)] = parseHostPort(at, string(at, value));
        break;
      case "id":
        settings.id = providerId(at, string(at, value));
        break;
      case "name":
        settings.name = displayName(at, string(at, value));
        break;
      case "max_concurrency":
        settings.maxConcurrency = wholeNumber(at, value, 1, 10_000, "requests");
        break;
      case "max_queue":
        settings.maxQueue = wholeNumber(at, value, 0, 1_000_000, "requests");
        break;
      case "discovery_interval_ms":
      case "upstream_timeout_ms":
        settings[camel(key)] = wholeNumber(at, value, 100, 86_400_000, "ms");
        break;
      case "shutdown_grace_ms":
        settings.shutdownGraceMs = wholeNumber(at, value, 0, 3_600_000, "ms");
        break;
      case "log_level":
        settings.logLevel = logLevel(at, string(at, value));
        break;
      case "upstreams":
        settings.upstreams = array(at, value).map((item, i) => upstreamFromFile(where(`upstreams[${i}]`), item));
        break;
      default:
        throw new UsageError(`${at}: unknown field (known: ${FILE_KEYS.join(", ")})`);
    }
  }
  return settings as AgentSettings;
}

const FILE_KEYS = [
  "registry",
  "api_key",
  "listen",
  "advertise",
  "id",
  "name",
  "upstreams",
  "max_concurrency",
  "max_queue",
  "metrics_listen",
  "discovery_interval_ms",
  "shutdown_grace_ms",
  "upstream_timeout_ms",
  "log_level",
];

const UPSTREAM_KEYS = ["type", "kind", "url", "engine", "models", "capabilities", "max_concurrency", "max_queue", "api_key"];

function upstreamFromFile(where: string, json: unknown): UpstreamSettings {
  const fields = object(where, json);
  for (const key of Object.keys(fields)) {
    if (!UPSTREAM_KEYS.includes(key)) {
      throw new UsageError(`${where}.${key}: unknown field (known: ${UPSTREAM_KEYS.join(", ")})`);
    }
  }
  const kind = fields["kind"] === undefined ? "openai" : upstreamKind(`${where}.kind`, string(`${where}.kind`, fields["kind"]));
  const type =
    fields["type"] === undefined ? (KIND_TYPES[kind] ?? "llm") : upstreamType(`${where}.type`, string(`${where}.type`, fields["type"]));
  const settings: Record<string, unknown> = { type, kind, url: parseBaseUrl(`${where}.url`, string(`${where}.url`, fields["url"])) };
  if (fields["engine"] !== undefined) settings.engine = shortText(`${where}.engine`, fields["engine"]);
  if (fields["max_concurrency"] !== undefined) {
    settings.maxConcurrency = wholeNumber(`${where}.max_concurrency`, fields["max_concurrency"], 1, 10_000, "requests");
  }
  if (fields["max_queue"] !== undefined) {
    settings.maxQueue = wholeNumber(`${where}.max_queue`, fields["max_queue"], 0, 1_000_000, "requests");
  }
  if (fields["api_key"] !== undefined) settings.apiKey = nonEmpty(`${where}.api_key`, string(`${where}.api_key`, fields["api_key"]));
  if (fields["models"] !== undefined) {
    const models = object(`${where}.models`, fields["models"]);
    for (const key of Object.keys(models)) {
      if (!["declare", "expose", "hide"].includes(key)) {
        throw new UsageError(`${where}.models.${key}: unknown field (known: declare, expose, hide)`);
      }
    }
    if (models["declare"] !== undefined) {
      settings.declare = modelIds(`${where}.models.declare`, models["declare"]);
      if ((settings.declare as string[]).length === 0) throw new UsageError(`${where}.models.declare: list at least one model`);
    }
    if (models["expose"] !== undefined) settings.expose = modelIds(`${where}.models.expose`, models["expose"]);
    if (models["hide"] !== undefined) settings.hide = modelIds(`${where}.models.hide`, models["hide"]);
  }
  if (fields["capabilities"] !== undefined) {
    const byModel = object(`${where}.capabilities`, fields["capabilities"]);
    settings.capabilities = Object.fromEntries(
      Object.entries(byModel).map(([model, override]) => [model, capabilityOverride(`${where}.capabilities["${model}"]`, override)]),
    );
  }
  checkKind(where, type, kind, settings.declare !== undefined);
  return settings as unknown as UpstreamSettings;
}

function capabilityOverride(where: string, json: unknown): CapabilityOverride {
  const fields = object(where, json);
  const override: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    const at = `${where}.${key}`;
    switch (key) {
      case "input_modalities":
      case "output_modalities":
        override[camel(key)] = modalities(at, value);
        break;
      case "supported_features": {
        const features = array(at, value).map((feature, i) => shortText(`${at}[${i}]`, feature));
        if (features.length > MAX_FEATURES) throw new UsageError(`${at}: at most ${MAX_FEATURES} features`);
        override.supportedFeatures = features;
        break;
      }
      case "context_length":
        override.contextLength = wholeNumber(at, value, 1, MAX_UINT32, "tokens");
        break;
      default:
        throw new UsageError(`${at}: unknown field (known: input_modalities, output_modalities, supported_features, context_length)`);
    }
  }
  return override as CapabilityOverride;
}

/**
 * upstreamFlag parses `--upstream [TYPE=][KIND+]URL[#MODEL]`, such as `http://127.0.0.1:8080`,
 * `tts=http://127.0.0.1:8880` or `stt=whispercpp+http://127.0.0.1:8081#whisper-large-v3`. TYPE defaults to the kind's
 * type (whispercpp: stt, automatic1111: image), else llm; #MODEL declares the one model the server serves.
 */
export function upstreamFlag(value: string): UpstreamSettings {
  const where = "--upstream";
  let rest = value;
  let type: UpstreamType | undefined;
  const typed = /^([A-Za-z]+)=(.*)$/.exec(rest);
  if (typed && !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(rest)) {
    type = upstreamType(where, typed[1] as string);
    rest = typed[2] as string;
  }
  let kind: UpstreamKind | undefined;
  const kinded = /^([A-Za-z0-9]+)\+(https?:\/\/.*)$/i.exec(rest);
  if (kinded) {
    kind = upstreamKind(where, kinded[1] as string);
    rest = kinded[2] as string;
  }
  let declare: string[] | undefined;
  const hash = rest.indexOf("#");
  if (hash !== -1) {
    declare = [nonEmpty(`${where} ${value}: the model after '#'`, rest.slice(hash + 1))];
    rest = rest.slice(0, hash);
  }
  const settings: UpstreamSettings = {
    type: type ?? (kind && KIND_TYPES[kind]) ?? "llm",
    ...(kind ? { kind } : {}),
    url: parseBaseUrl(where, rest),
    ...(declare ? { declare } : {}),
  };
  checkKind(`${where} ${value}`, settings.type, kind ?? "openai", declare !== undefined);
  return settings;
}

/** checkKind refuses a native kind on an upstream type it cannot serve, and a whisper.cpp server without models. */
function checkKind(where: string, type: UpstreamType, kind: UpstreamKind, declared: boolean): void {
  const only = KIND_TYPES[kind];
  if (only !== undefined && type !== only) {
    throw new UsageError(`${where}: a ${kind} server serves type ${only}, not ${type}`);
  }
  if (kind === "whispercpp" && !declared) {
    throw new UsageError(
      `${where}: whisper.cpp's server cannot list its model; declare it (flag: whispercpp+URL#MODEL, file: "models": {"declare": [...]})`,
    );
  }
}

function upstreamKind(where: string, value: string): UpstreamKind {
  const kind = value.toLowerCase();
  if (!(UPSTREAM_KINDS as readonly string[]).includes(kind)) {
    throw new UsageError(`${where}: unknown upstream kind '${value}' (expected ${UPSTREAM_KINDS.join(", ")})`);
  }
  return kind as UpstreamKind;
}

function upstreamType(where: string, value: string): UpstreamType {
  const type = value.toLowerCase();
  if (!(SERVICE_TYPE_NAMES as readonly string[]).includes(type)) {
    throw new UsageError(`${where}: unknown upstream type '${value}' (expected ${SERVICE_TYPE_NAMES.join(", ")})`);
  }
  return type as UpstreamType;
}

function providerId(where: string, value: string): string {
  if (!PROVIDER_ID.test(value)) throw new UsageError(`${where} expects 1 to 128 of letters, digits, '.', '_', ':' or '-', got '${value}'`);
  return value;
}

function displayName(where: string, value: string): string {
  if (value.trim() === "" || value.length > MAX_NAME_LENGTH) {
    throw new UsageError(`${where} expects 1 to ${MAX_NAME_LENGTH} characters`);
  }
  return value;
}

function logLevel(where: string, value: string): string {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) {
    throw new UsageError(`${where} expects one of ${LOG_LEVELS.join(", ")}, got '${value}'`);
  }
  return value;
}

function wholeNumber(where: string, value: unknown, min: number, max: number, unit: string): number {
  const number = typeof value === "number" ? value : typeof value === "string" && /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(number) || number < min || number > max) {
    throw new UsageError(`${where} expects a whole number of ${unit} from ${min} to ${max}, got '${String(value)}'`);
  }
  return number;
}

function modalities(where: string, value: unknown): Modality[] {
  const list = array(where, value).map((item, i) => {
    const name = string(`${where}[${i}]`, item).toLowerCase();
    const modality = modalityNamed(name);
    if (modality === undefined) {
      throw new UsageError(`${where}[${i}]: unknown modality '${name}' (expected ${MODALITY_NAMES.join(", ")})`);
    }
    return modality;
  });
  if (list.length === 0) throw new UsageError(`${where}: list at least one modality`);
  return [...new Set(list)];
}

function modelIds(where: string, value: unknown): string[] {
  return array(where, value).map((item, i) => nonEmpty(`${where}[${i}]`, string(`${where}[${i}]`, item)));
}

function shortText(where: string, value: unknown): string {
  const text = nonEmpty(where, string(where, value));
  if (text.length > MAX_SHORT_TEXT) throw new UsageError(`${where}: at most ${MAX_SHORT_TEXT} characters`);
  return text;
}

function nonEmpty(where: string, value: string): string {
  if (value.trim() === "") throw new UsageError(`${where} must not be empty`);
  return value;
}

function string(where: string, value: unknown): string {
  if (typeof value !== "string") throw new UsageError(`${where} expects a string`);
  return value;
}

function array(where: string, value: unknown): unknown[] {
  if (!Array.isArray(value)) throw new UsageError(`${where} expects a list`);
  return value;
}

function object(where: string, value: unknown): Readonly<Record<string, unknown>> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new UsageError(`${where} expects an object`);
  return value as Readonly<Record<string, unknown>>;
}

function camel(snake: string): string {
  return snake.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

function readConfigFile(path: string, readFile: (path: string) => string): unknown {
  let text: string;
  try {
    text = readFile(path);
  } catch (error) {
    throw new UsageError(`--config ${path}: cannot read it (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new UsageError(`--config ${path}: not valid JSON (${(error as Error).message})`);
  }
}

function missing(flag: string, field = flag.replaceAll("-", "_")): UsageError {
  return new UsageError(`--${flag} (or ${envName(flag)}, or the config file's "${field}") is required`);
}
