import { readFileSync } from "node:fs";
import type { Modality } from "../../gen/infermesh/v1/capabilities_pb.js";
import { ConfigError } from "../shared/config-error.js";
import { listInWords, parseBaseUrl, parseLogLevel, parseMs, parseNonEmpty, parseWholeNumber } from "../shared/config-values.js";
import { type HostPort, parseHostPort } from "../shared/host-port.js";
import { MODALITY_NAMES, modalityNamed, SERVICE_TYPE_NAMES, type ServiceTypeName } from "../shared/inference-catalog.js";
import { nearestName } from "../shared/nearest-name.js";
import { parseSharingPolicy, type SharingPolicy } from "../shared/sharing-policy.js";

/**
 * UpstreamType is the service type of a local server's models: every model of an upstream has it, except that an llm
 * upstream advertises its embedding and rerank models under their own types (see advertisedType).
 */
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

/**
 * REMOVED_SETTINGS are settings of agents that gateways dialled, and what to do instead now that agents dial out.
 */
export const REMOVED_SETTINGS: Readonly<Record<string, string>> = {
  registry: "the agent reaches the mesh through its public URL: use --mesh URL (the gateway's, as OpenAI clients use it)",
  listen: "the agent opens no port: it dials the mesh (--mesh URL)",
  advertise: "the agent opens no port: it dials the mesh (--mesh URL)",
};
/** DEFAULT_MAX_CONCURRENCY is how many requests an upstream serves at once unless told otherwise. */
export const DEFAULT_MAX_CONCURRENCY = 4;
/** DEFAULT_MAX_QUEUE is how many requests wait for an upstream's slot before RESOURCE_EXHAUSTED. */
export const DEFAULT_MAX_QUEUE = 64;
/** DEFAULT_DISCOVERY_INTERVAL_MS is how often the agent asks its upstreams what they serve. */
export const DEFAULT_DISCOVERY_INTERVAL_MS = 30_000;
/** DEFAULT_SHUTDOWN_GRACE_MS is how long requests in flight may finish when the agent stops. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;
/** DEFAULT_UPSTREAM_TIMEOUT_MS bounds the wait for an upstream's headers and between its body bytes (inference.club's 300 s). */
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 300_000;
/** DEFAULT_LOG_LEVEL is the agent's log level unless told otherwise. */
export const DEFAULT_LOG_LEVEL = "info";

const PROVIDER_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_NAME_LENGTH = 256;
const MAX_FEATURES = 64;
const MAX_SHORT_TEXT = 64;
const MAX_UINT32 = 0xffff_ffff;

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

/** SharingData is who besides its owner may use a provider's models. */
export type SharingData = SharingPolicy;

/** AgentConfig is `infermesh agent`'s configuration, parsed once and frozen. */
export interface AgentConfig {
  /** mesh is the mesh's public base URL, "https://host[:port][/prefix]" (a trailing "/v1" dropped). */
  readonly mesh: string;
  readonly apiKey: string;
  /** caFile names a PEM file of certificate authorities to trust besides the system's. */
  readonly caFile: string | undefined;
  readonly id: string | undefined;
  readonly name: string | undefined;
  /**
   * share is the sharing the agent was started with, sent with every heartbeat; undefined sends none, so the policy
   * its owner set through the API (or private, for a new provider) stays.
   */
  readonly share: SharingData | undefined;
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
  readonly mesh?: string;
  readonly apiKey?: string;
  readonly caFile?: string;
  readonly id?: string;
  readonly name?: string;
  readonly share?: SharingData;
  readonly upstreams?: readonly UpstreamSettings[];
  readonly maxConcurrency?: number;
  readonly maxQueue?: number;
  readonly metricsListen?: HostPort;
  readonly discoveryIntervalMs?: number;
  readonly shutdownGraceMs?: number;
  readonly upstreamTimeoutMs?: number;
  readonly logLevel?: string;
}

/** ScalarSetting is a top-level setting other than the list of upstreams. */
export type ScalarSetting = Exclude<keyof AgentSettings, "upstreams">;

/**
 * AGENT_SETTING_CHECKS check the value of each top-level setting, whatever its source (a flag's text, a config
 * file's JSON); `where` names the setting for the error. The command line's flags and the config file's fields are
 * these names in kebab-case and snake_case.
 */
export const AGENT_SETTING_CHECKS: {
  readonly [K in ScalarSetting]-?: (where: string, value: unknown) => NonNullable<AgentSettings[K]>;
} = {
  mesh: (where, value) => parseBaseUrl(where, string(where, value)),
  apiKey: (where, value) => parseNonEmpty(where, string(where, value)),
  caFile: (where, value) => parseNonEmpty(where, string(where, value)),
  id: (where, value) => providerId(where, string(where, value)),
  name: (where, value) => displayName(where, string(where, value)),
  share: (where, value) => parseShare(where, string(where, value)),
  maxConcurrency: (where, value) => parseWholeNumber(where, value, 1, 10_000, "requests"),
  maxQueue: (where, value) => parseWholeNumber(where, value, 0, 1_000_000, "requests"),
  metricsListen: (where, value) => parseHostPort(where, string(where, value)),
  discoveryIntervalMs: (where, value) => parseMs(where, value, 100, 86_400_000),
  shutdownGraceMs: (where, value) => parseMs(where, value, 0, 3_600_000),
  upstreamTimeoutMs: (where, value) => parseMs(where, value, 100, 86_400_000),
  logLevel: (where, value) => parseLogLevel(where, string(where, value)),
};

/** SCALAR_SETTINGS are AGENT_SETTING_CHECKS' names, for callers that go through them all. */
export const SCALAR_SETTINGS = Object.keys(AGENT_SETTING_CHECKS) as readonly ScalarSetting[];

/**
 * readAgentConfigFile reads the agent's JSON config file (`--config FILE`) into settings. An unreadable file, bad
 * JSON or a bad field throws a ConfigError naming the file and the field.
 */
export function readAgentConfigFile(
  path: string,
  readFile: (path: string) => string = (file) => readFileSync(file, "utf8"),
): AgentSettings {
  let text: string;
  try {
    text = readFile(path);
  } catch (error) {
    throw new ConfigError(
      `--config ${path}`,
      `--config ${path}: cannot read it (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text) as unknown;
  } catch (error) {
    throw new ConfigError(`--config ${path}`, `--config ${path}: not valid JSON (${(error as Error).message})`);
  }
  return settingsFromFile(path, json);
}

/**
 * resolveAgentConfig merges settings (later ones win field by field; upstreams add up), applies defaults, checks
 * what is required, and freezes the result.
 */
export function resolveAgentConfig(...sources: readonly AgentSettings[]): AgentConfig {
  const merged: AgentSettings = Object.assign({}, ...sources);
  const mesh = merged.mesh;
  if (mesh === undefined) throw missing("mesh");
  if (merged.apiKey === undefined || merged.apiKey === "") throw missing("api_key");
  const upstreamSettings = sources.flatMap((source) => source.upstreams ?? []);
  if (upstreamSettings.length === 0) throw missing("upstreams");
  const maxConcurrency = merged.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY;
  const maxQueue = merged.maxQueue ?? DEFAULT_MAX_QUEUE;
  const seen = new Set<string>();
  const upstreams = upstreamSettings.map((upstream) => {
    const key = `${upstream.type} ${upstream.url}`;
    if (seen.has(key)) throw new ConfigError("upstreams", `upstream ${upstream.type}=${upstream.url} is given twice`);
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
    mesh,
    apiKey: merged.apiKey,
    caFile: merged.caFile,
    id: merged.id,
    name: merged.name,
    share: merged.share,
    upstreams: Object.freeze(upstreams),
    metricsListen: merged.metricsListen,
    discoveryIntervalMs: merged.discoveryIntervalMs ?? DEFAULT_DISCOVERY_INTERVAL_MS,
    shutdownGraceMs: merged.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS,
    upstreamTimeoutMs: merged.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS,
    logLevel: merged.logLevel ?? DEFAULT_LOG_LEVEL,
  });
}

/** settingsFromFile checks a parsed config file; errors name the file and the field. */
export function settingsFromFile(path: string, json: unknown): AgentSettings {
  const where = (field: string) => `--config ${path}: field ${field}`;
  const top = object(where("(top level)"), json);
  const settings: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(top)) {
    const at = where(key);
    if (key === "upstreams") {
      settings.upstreams = array(at, value).map((item, i) => upstreamFromFile(where(`upstreams[${i}]`), item));
      continue;
    }
    const removed = REMOVED_SETTINGS[key];
    if (removed !== undefined) throw new ConfigError(at, `${at}: no longer used: ${removed}`);
    const setting = camel(key) as ScalarSetting;
    if (snake(setting) !== key || !Object.hasOwn(AGENT_SETTING_CHECKS, setting)) throw unknownField(at, key, FILE_KEYS);
    settings[setting] = AGENT_SETTING_CHECKS[setting](at, value);
  }
  return settings as AgentSettings;
}

/** FILE_KEYS are the config file's top-level fields. */
const FILE_KEYS: readonly string[] = [...SCALAR_SETTINGS.map(snake), "upstreams"];

const UPSTREAM_KEYS = ["type", "kind", "url", "engine", "models", "capabilities", "max_concurrency", "max_queue", "api_key"];
const MODELS_KEYS = ["declare", "expose", "hide"];
const CAPABILITY_KEYS = ["input_modalities", "output_modalities", "supported_features", "context_length"];

function upstreamFromFile(where: string, json: unknown): UpstreamSettings {
  const fields = object(where, json);
  for (const key of Object.keys(fields)) {
    if (!UPSTREAM_KEYS.includes(key)) throw unknownField(`${where}.${key}`, key, UPSTREAM_KEYS);
  }
  const kind = fields["kind"] === undefined ? "openai" : upstreamKind(`${where}.kind`, string(`${where}.kind`, fields["kind"]));
  const type =
    fields["type"] === undefined ? (KIND_TYPES[kind] ?? "llm") : upstreamType(`${where}.type`, string(`${where}.type`, fields["type"]));
  const settings: Record<string, unknown> = { type, kind, url: parseBaseUrl(`${where}.url`, string(`${where}.url`, fields["url"])) };
  if (fields["engine"] !== undefined) settings.engine = shortText(`${where}.engine`, fields["engine"]);
  if (fields["max_concurrency"] !== undefined) {
    settings.maxConcurrency = AGENT_SETTING_CHECKS.maxConcurrency(`${where}.max_concurrency`, fields["max_concurrency"]);
  }
  if (fields["max_queue"] !== undefined) {
    settings.maxQueue = AGENT_SETTING_CHECKS.maxQueue(`${where}.max_queue`, fields["max_queue"]);
  }
  if (fields["api_key"] !== undefined) settings.apiKey = parseNonEmpty(`${where}.api_key`, string(`${where}.api_key`, fields["api_key"]));
  if (fields["models"] !== undefined) {
    const models = object(`${where}.models`, fields["models"]);
    for (const key of Object.keys(models)) {
      if (!MODELS_KEYS.includes(key)) throw unknownField(`${where}.models.${key}`, key, MODELS_KEYS);
    }
    if (models["declare"] !== undefined) {
      settings.declare = modelIds(`${where}.models.declare`, models["declare"]);
      if ((settings.declare as string[]).length === 0) {
        throw new ConfigError(`${where}.models.declare`, `${where}.models.declare: list at least one model`);
      }
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
        if (features.length > MAX_FEATURES) throw new ConfigError(at, `${at}: at most ${MAX_FEATURES} features, got ${features.length}`);
        override.supportedFeatures = features;
        break;
      }
      case "context_length":
        override.contextLength = parseWholeNumber(at, value, 1, MAX_UINT32, "tokens");
        break;
      default:
        throw unknownField(at, key, CAPABILITY_KEYS);
    }
  }
  return override as CapabilityOverride;
}

/**
 * parseUpstream reads an upstream written on one line, `[TYPE=][KIND+]URL[#MODEL]`, such as `http://127.0.0.1:8080`,
 * `tts=http://127.0.0.1:8880` or `stt=whispercpp+http://127.0.0.1:8081#whisper-large-v3`: the form a command line
 * gives. TYPE defaults to the kind's type (whispercpp: stt, automatic1111: image), else llm; #MODEL declares the one
 * model the server serves. where names the setting for errors.
 */
export function parseUpstream(where: string, value: string): UpstreamSettings {
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
    declare = [parseNonEmpty(`${where} ${value}: the model after '#'`, rest.slice(hash + 1))];
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
    throw new ConfigError(where, `${where}: ${/^[aeiou]/.test(kind) ? "an" : "a"} ${kind} server serves type ${only}, not ${type}`);
  }
  if (kind === "whispercpp" && !declared) {
    throw new ConfigError(
      where,
      `${where}: whisper.cpp's server cannot list its model; declare it (flag: whispercpp+URL#MODEL, file: "models": {"declare": [...]})`,
    );
  }
}

function upstreamKind(where: string, value: string): UpstreamKind {
  const kind = value.toLowerCase();
  if (!(UPSTREAM_KINDS as readonly string[]).includes(kind)) {
    throw new ConfigError(where, `${where}: unknown upstream kind '${value}' (expected ${listInWords(UPSTREAM_KINDS)})`);
  }
  return kind as UpstreamKind;
}

function upstreamType(where: string, value: string): UpstreamType {
  const type = value.toLowerCase();
  if (!(SERVICE_TYPE_NAMES as readonly string[]).includes(type)) {
    throw new ConfigError(where, `${where}: unknown upstream type '${value}' (expected ${listInWords(SERVICE_TYPE_NAMES)})`);
  }
  return type as UpstreamType;
}

function providerId(where: string, value: string): string {
  if (!PROVIDER_ID.test(value)) {
    throw new ConfigError(where, `${where} expects 1 to 128 letters, digits, '.', '_', ':' or '-', got '${value}'`);
  }
  return value;
}

/**
 * parseShare reads a sharing written on one line: `private`, `public`, or `users:NAME[,NAME...]` naming at least one
 * user (names checked as the registry checks them, each kept once, in the order given). Keywords are read in any case.
 */
export function parseShare(where: string, value: string): SharingData {
  const policy = parseSharingPolicy(value);
  if ("refusal" in policy) throw new ConfigError(where, `${where} ${policy.refusal}`);
  return policy;
}

function displayName(where: string, value: string): string {
  if (value.trim() === "" || value.length > MAX_NAME_LENGTH) {
    throw new ConfigError(where, `${where} expects a name of 1 to ${MAX_NAME_LENGTH} characters, got ${value.length}`);
  }
  return value;
}

function modalities(where: string, value: unknown): Modality[] {
  const list = array(where, value).map((item, i) => {
    const name = string(`${where}[${i}]`, item).toLowerCase();
    const modality = modalityNamed(name);
    if (modality === undefined) {
      throw new ConfigError(`${where}[${i}]`, `${where}[${i}]: unknown modality '${name}' (expected ${listInWords(MODALITY_NAMES)})`);
    }
    return modality;
  });
  if (list.length === 0) throw new ConfigError(where, `${where}: list at least one modality`);
  return [...new Set(list)];
}

function modelIds(where: string, value: unknown): string[] {
  return array(where, value).map((item, i) => parseNonEmpty(`${where}[${i}]`, string(`${where}[${i}]`, item)));
}

function shortText(where: string, value: unknown): string {
  const text = parseNonEmpty(where, string(where, value));
  if (text.length > MAX_SHORT_TEXT) throw new ConfigError(where, `${where}: at most ${MAX_SHORT_TEXT} characters, got ${text.length}`);
  return text;
}

function string(where: string, value: unknown): string {
  if (typeof value !== "string") throw new ConfigError(where, `${where} expects a string, got ${jsonKind(value)}`);
  return value;
}

function array(where: string, value: unknown): unknown[] {
  if (!Array.isArray(value)) throw new ConfigError(where, `${where} expects a list, got ${jsonKind(value)}`);
  return value;
}

function object(where: string, value: unknown): Readonly<Record<string, unknown>> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError(where, `${where} expects an object, got ${jsonKind(value)}`);
  }
  return value as Readonly<Record<string, unknown>>;
}

/** jsonKind names what a JSON value is, for errors: a config file's author thinks in JSON's terms. */
function jsonKind(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "nothing";
  if (Array.isArray(value)) return "a list";
  return typeof value === "object"
    ? "an object"
    : `${typeof value === "string" ? "a string" : `the ${typeof value}`} ${JSON.stringify(value)}`;
}

/** unknownField names a field nobody reads, and the nearest known one, since it is most often a typo. */
function unknownField(at: string, key: string, known: readonly string[]): ConfigError {
  const nearest = nearestName(key, known);
  return new ConfigError(
    at,
    nearest === undefined ? `${at}: unknown field (known: ${listInWords(known, "and")})` : `${at}: unknown field; did you mean ${nearest}?`,
  );
}

function camel(snakeCase: string): string {
  return snakeCase.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

function snake(camelCase: string): string {
  return camelCase.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

function missing(field: string): ConfigError {
  return new ConfigError(field, `the agent's "${field}" is required`);
}
