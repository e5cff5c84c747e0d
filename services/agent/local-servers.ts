import { isIPv4, isIPv6 } from "node:net";
import { SERVICE_TYPE_NAMES } from "../shared/inference-catalog.js";
import { isObject } from "../shared/json-object.js";
import type { UpstreamSettings, UpstreamType } from "./agent-config.js";
import { isOllamaVersion, parseLlamaProps, parseOpenAiModelList, serviceTypeByName } from "./upstream-models.js";

/**
 * LOCAL_SERVER_PORTS are the ports local model servers listen on unless told otherwise: llama.cpp's llama-server and
 * LocalAI 8080, Ollama 11434, vLLM 8000, LM Studio 1234.
 */
export const LOCAL_SERVER_PORTS: readonly number[] = Object.freeze([8080, 11434, 8000, 1234]);
/** DEFAULT_LOCAL_HOST is where discoverLocalServers looks: this machine. */
export const DEFAULT_LOCAL_HOST = "127.0.0.1";
/** DEFAULT_LOCAL_PROBE_TIMEOUT_MS bounds each request of a probe; a server on loopback answers in milliseconds. */
export const DEFAULT_LOCAL_PROBE_TIMEOUT_MS = 1_000;
/** MAX_ANSWER_BYTES bounds an answer read while probing: whatever listens on a port may not be a model server. */
const MAX_ANSWER_BYTES = 4 * 1024 * 1024;

/**
 * SINGLE_TYPE_ENGINES serve chat and completions only (embeddings and rerank too, which an llm upstream advertises
 * under their own types), whatever their models are called. Other servers (vLLM, LocalAI, unknown ones) may serve
 * transcription, speech or images.
 */
const SINGLE_TYPE_ENGINES: ReadonlySet<string> = new Set(["llamacpp", "ollama", "lmstudio"]);

/** LocalAnswer is the part of a `fetch` Response discovery reads. */
export interface LocalAnswer {
  readonly status: number;
  readonly body: AsyncIterable<Uint8Array> | null;
}

/** LocalFetch is the part of `fetch` discovery uses; the global fetch by default. */
export type LocalFetch = (url: string, init: { readonly signal: AbortSignal }) => Promise<LocalAnswer>;

/** DiscoverLocalServersOptions configures discoverLocalServers. */
export interface DiscoverLocalServersOptions {
  /** host is a loopback address or "localhost"; DEFAULT_LOCAL_HOST by default. */
  readonly host?: string;
  /** ports are probed in parallel; LOCAL_SERVER_PORTS by default. */
  readonly ports?: readonly number[];
  /** timeoutMs bounds each request; DEFAULT_LOCAL_PROBE_TIMEOUT_MS by default. */
  readonly timeoutMs?: number;
  readonly fetch?: LocalFetch;
}

/**
 * DiscoveredServer is a local model server found by discoverLocalServers, as an upstream to add: one per service type
 * its models have, so that a server of several types (LocalAI) is several upstreams with one URL, each advertising
 * its own models (see servingUpstreams).
 */
export interface DiscoveredServer extends Pick<UpstreamSettings, "type" | "url" | "engine"> {
  readonly type: UpstreamType;
  readonly url: string;
  /** models are the ids the server listed for this type, for the log; empty while it loads its model. */
  readonly models: readonly string[];
}

/**
 * discoverLocalServers looks for model servers on this machine (`--discover`): it asks each port's `GET /v1/models`,
 * all ports at once, and keeps those that answer with an OpenAI model list, or with llama-server's 503 "Loading
 * model". It names the engine from the list's `owned_by` (llama-server, vLLM) or, failing that, from what else the
 * server answers: llama-server's `GET /props`, Ollama's `GET /api/version`, LocalAI's `GET /.well-known/localai.json`,
 * LM Studio's `GET /api/v0/models`; it is left out when none answers. Each model's type is the one the server states
 * for it, else "llm" on a server that serves nothing else, else the one its id suggests (serviceTypeByName), else
 * "llm"; embedding and rerank models are the llm upstream's (see upstreamTypeOf). The answer is in port order, then
 * in the order of SERVICE_TYPE_NAMES. Only loopback is probed: the agent advertises what it finds, and a server
 * elsewhere on the network is not the provider's to offer.
 */
export async function discoverLocalServers(options: DiscoverLocalServersOptions = {}): Promise<DiscoveredServer[]> {
  const host = options.host ?? DEFAULT_LOCAL_HOST;
  if (!isLoopback(host)) throw new Error(`discoverLocalServers: ${host} is not a loopback address; only this machine is probed`);
  const timeoutMs = options.timeoutMs ?? DEFAULT_LOCAL_PROBE_TIMEOUT_MS;
  const get: LocalFetch = options.fetch ?? ((url, init) => fetch(url, { signal: init.signal, redirect: "manual" }));
  const hostInUrl = isIPv6(host) ? `[${host}]` : host;
  const ports = [...new Set(options.ports ?? LOCAL_SERVER_PORTS)];
  const found = await Promise.all(ports.map((port) => probeServer(`http://${hostInUrl}:${port}`, get, timeoutMs)));
  return found.flat();
}

/**
 * unconfiguredServers leaves out of found the servers the configuration already names: a configured upstream on this
 * machine (any loopback address or "localhost") with the same port is the same server, whatever its type, and the
 * configuration's word on it wins.
 */
export function unconfiguredServers(
  found: readonly DiscoveredServer[],
  configured: readonly Pick<UpstreamSettings, "url">[],
): DiscoveredServer[] {
  const ports = new Set(configured.flatMap((upstream) => loopbackPort(upstream.url) ?? []));
  return found.filter((server) => !ports.has(loopbackPort(server.url) ?? -1));
}

/** loopbackPort is the port of a URL on this machine, undefined for a URL elsewhere. */
function loopbackPort(url: string): number | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  const host = parsed.hostname.replace(/^\[|\]$/g, "");
  if (!isLoopback(host)) return undefined;
  return parsed.port === "" ? (parsed.protocol === "https:" ? 443 : 80) : Number(parsed.port);
}

async function probeServer(url: string, get: LocalFetch, timeoutMs: number): Promise<DiscoveredServer[]> {
  const answer = await getJson(get, `${url}/v1/models`, timeoutMs);
  if (answer === undefined) return [];
  if (answer.status === 503 && isLlamaLoading(answer.json)) return [{ type: "llm", url, engine: "llamacpp", models: [] }];
  const listing = answer.status === 200 ? parseOpenAiModelList(answer.json) : undefined;
  if (listing === undefined) return [];
  const engine = listing.engine ?? (await identifyEngine(url, get, timeoutMs));
  const byType = new Map<UpstreamType, string[]>();
  for (const model of listing.models) {
    const suggested = engine !== undefined && SINGLE_TYPE_ENGINES.has(engine) ? "llm" : serviceTypeByName(model.id);
    const type = upstreamTypeOf(model.serviceType ?? suggested ?? "llm");
    byType.set(type, [...(byType.get(type) ?? []), model.id]);
  }
  if (byType.size === 0) byType.set("llm", []);
  return SERVICE_TYPE_NAMES.flatMap((type) => {
    const models = byType.get(type);
    return models === undefined ? [] : [{ type, url, ...(engine === undefined ? {} : { engine }), models }];
  });
}

/**
 * upstreamTypeOf is the upstream that serves models of a type: embedding and rerank models are the llm upstream's,
 * which advertises them under their own types (see advertisedType), so that one upstream serves what one server
 * serves with the same engine.
 */
function upstreamTypeOf(type: UpstreamType): UpstreamType {
  return type === "embedding" || type === "rerank" ? "llm" : type;
}

/** identifyEngine asks a server whose model list does not name it the questions only one engine answers. */
async function identifyEngine(url: string, get: LocalFetch, timeoutMs: number): Promise<string | undefined> {
  const [props, ollama, localAi, lmStudio] = await Promise.all(
    ["/props", "/api/version", "/.well-known/localai.json", "/api/v0/models"].map((path) => getJson(get, `${url}${path}`, timeoutMs)),
  );
  const json = (answer: JsonAnswer | undefined) => (answer?.status === 200 ? answer.json : undefined);
  if (parseLlamaProps(json(props)) !== undefined) return "llamacpp";
  if (isOllamaVersion(json(ollama))) return "ollama";
  const wellKnown = json(localAi);
  if (isObject(wellKnown) && typeof wellKnown["version"] === "string" && isObject(wellKnown["endpoints"])) return "localai";
  const native = json(lmStudio);
  if (isObject(native) && Array.isArray(native["data"]) && native["data"].some(isLmStudioModel)) return "lmstudio";
  return undefined;
}

/** isLmStudioModel recognizes an entry of LM Studio's own model list: a type, and what only it reports. */
function isLmStudioModel(entry: unknown): boolean {
  return isObject(entry) && typeof entry["type"] === "string" && ("compatibility_type" in entry || "publisher" in entry);
}

/** isLlamaLoading recognizes llama-server's answer while it loads its model. */
function isLlamaLoading(json: unknown): boolean {
  const error = isObject(json) ? json["error"] : undefined;
  return isObject(error) && error["message"] === "Loading model";
}

interface JsonAnswer {
  readonly status: number;
  readonly json: unknown;
}

/** getJson GETs url, undefined when nothing answers in time; json is undefined when the answer is not JSON. */
async function getJson(get: LocalFetch, url: string, timeoutMs: number): Promise<JsonAnswer | undefined> {
  const tooLong = new AbortController();
  const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), tooLong.signal]);
  try {
    const response = await get(url, { signal });
    const chunks: Uint8Array[] = [];
    let bytes = 0;
    for await (const chunk of response.body ?? []) {
      bytes += chunk.byteLength;
      if (bytes > MAX_ANSWER_BYTES) {
        tooLong.abort();
        return { status: response.status, json: undefined };
      }
      chunks.push(chunk);
    }
    let json: unknown;
    try {
      json = JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
    } catch {
      json = undefined;
    }
    return { status: response.status, json };
  } catch {
    return undefined;
  }
}

/** isLoopback accepts "localhost", 127.0.0.0/8 and ::1. */
function isLoopback(host: string): boolean {
  if (host.toLowerCase() === "localhost") return true;
  if (isIPv4(host)) return host.startsWith("127.");
  return isIPv6(host) && (host === "::1" || /^(0{0,4}:){7}0{0,3}1$/.test(host));
}
