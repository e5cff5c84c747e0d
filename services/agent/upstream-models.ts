import { create } from "@bufbuild/protobuf";
import { Modality, type Model, ModelSchema } from "../../gen/infermesh/v1/capabilities_pb.js";
import { type ProtocolFeature, SERVICE_TYPE_NAMES, serviceTypeOf } from "../shared/inference-catalog.js";
import { isObject } from "../shared/json-object.js";
import type { CapabilityOverride, UpstreamConfig, UpstreamType } from "./agent-config.js";

/** UNKNOWN_ENGINE is the engine of a server that neither the config nor its answers name (inference.club's word). */
export const UNKNOWN_ENGINE = "other";

/** MAX_MODEL_ID_LENGTH is the longest model id the registry accepts. */
const MAX_MODEL_ID_LENGTH = 256;

/** KNOWN_OWNERS are `owned_by` values that name the serving engine itself. */
const KNOWN_OWNERS: ReadonlySet<string> = new Set(["llamacpp", "vllm", "sglang", "localai", "tgi", "lmstudio", "ollama"]);

/** DiscoveredModel is a model as a server listed it, before the agent's configuration applies. */
export interface DiscoveredModel {
  readonly id: string;
  readonly contextLength?: number;
  readonly parameterCount?: bigint;
  readonly family?: string;
  readonly quantization?: string;
  /** vision is true when the server says the model reads images. */
  readonly vision?: boolean;
  /** audio is true when the server says the model reads sound. */
  readonly audio?: boolean;
  /** tools is true when the server says the model's chat template takes tool definitions. */
  readonly tools?: boolean;
  /**
   * serviceType is the type the server states for the model (see STATED_TYPES), or the one discovery found by asking
   * it (see ServerProbes); undefined when neither said, and the id decides (see serviceTypeByName).
   */
  readonly serviceType?: UpstreamType;
  /**
   * loaded says whether the model is in memory, where the server says (llama-server's router mode lists every model
   * it could load, each with a `status`); undefined when it does not.
   */
  readonly loaded?: boolean;
  /** protocols are the protocols besides chat and completions the model's server was found to speak. */
  readonly protocols?: readonly ProtocolFeature[];
}

/**
 * STATED_TYPES read the words model servers use for what a model serves, in a model entry's `service_type` (the
 * mesh's own /v1/models and the simulator), `type` (LM Studio's "llm", "vlm", "embeddings") or `task` (Hugging Face
 * pipeline tags, as speaches lists them). "text-classification" is left out: cross-encoder rerankers carry that tag,
 * but so do sentiment and topic classifiers, which serve neither; such a model goes by its id.
 */
const STATED_TYPES: ReadonlyMap<string, UpstreamType> = new Map<string, UpstreamType>([
  ...SERVICE_TYPE_NAMES.map((name): [string, UpstreamType] => [name, name]),
  ["vlm", "llm"],
  ["text-generation", "llm"],
  ["image-text-to-text", "llm"],
  ["embeddings", "embedding"],
  ["feature-extraction", "embedding"],
  ["sentence-similarity", "embedding"],
  ["reranker", "rerank"],
  ["reranking", "rerank"],
  ["text-ranking", "rerank"],
  ["automatic-speech-recognition", "stt"],
  ["speech-to-text", "stt"],
  ["transcription", "stt"],
  ["text-to-speech", "tts"],
  ["text-to-audio", "tts"],
  ["text-to-image", "image"],
  ["image-to-image", "image"],
  ["image-generation", "image"],
]);

/** STATED_TYPE_FIELDS are the fields of a model entry that may state its type, the most specific first. */
const STATED_TYPE_FIELDS = ["service_type", "type", "task"] as const;

/**
 * NAME_TYPES guess a model's type from its id, for servers that do not say it (LocalAI lists bare ids) and models
 * discovery does not ask about: the first pattern that matches wins, so rerankers and embedders are tested first
 * (their ids name what they were trained from: "bge-reranker", "speech-embedding") and speech-to-text before
 * text-to-speech. Short tokens such as "stt" or "sd" must stand alone, so that they do not match inside other words.
 */
const NAME_TYPES: readonly (readonly [RegExp, UpstreamType])[] = [
  [/rerank/i, "rerank"],
  [/embed/i, "embedding"],
  [/whisper|transcri|parakeet|speech-?to-?text|speech2text|(?<![a-z])(?:stt|asr)(?![a-z])/i, "stt"],
  [/(?<![a-z])tts|tts(?![a-z])|text-?to-?speech|speech|kokoro|piper|bark|voice|orpheus/i, "tts"],
  [/stable-?diffusion|sdxl|(?<![a-z])sd(?:[-_.\d]|$)|flux|dall-?e|image|(?<![a-z])img(?![a-z])/i, "image"],
];

/** ModelListing is what one discovery answer says: the models, and the engine when the answer reveals it. */
export interface ModelListing {
  readonly models: readonly DiscoveredModel[];
  readonly engine: string | undefined;
}

/**
 * parseOpenAiModelList reads an OpenAI `GET /v1/models` answer, or returns undefined when the JSON is not one.
 * llama-server adds `meta` (n_ctx, n_ctx_train, n_params) to each entry and an Ollama-style `models` list with
 * `capabilities`; vLLM adds `max_model_len`; some servers add `context_length`. For llama-server the context is
 * `meta.n_ctx`, the window the server was started with and enforces ("exceeds the available context size"), falling
 * back to the model's training context `n_ctx_train` when the server does not report it. In router mode llama-server
 * lists every model it could load, each with a `status` ({"value": "loaded"}, "loading", "unloaded", ...), read into
 * `loaded`.
 */
export function parseOpenAiModelList(json: unknown): ModelListing | undefined {
  if (!isObject(json) || !Array.isArray(json["data"])) return undefined;
  const capabilities = llamaCapabilities(json["models"]);
  const models: DiscoveredModel[] = [];
  let engine: string | undefined;
  for (const entry of json["data"]) {
    if (!isObject(entry) || typeof entry["id"] !== "string") continue;
    const meta = isObject(entry["meta"]) ? entry["meta"] : {};
    const owner = typeof entry["owned_by"] === "string" ? entry["owned_by"].toLowerCase() : "";
    if (engine === undefined && KNOWN_OWNERS.has(owner)) engine = owner;
    if (engine === undefined && isObject(entry["meta"]) && "n_ctx_train" in meta) engine = "llamacpp";
    const contextLength =
      positive(entry["context_length"]) ?? positive(entry["max_model_len"]) ?? positive(meta["n_ctx"]) ?? positive(meta["n_ctx_train"]);
    const parameters = meta["n_params"];
    const vision = capabilities.get(entry["id"])?.some((c) => c === "multimodal" || c === "vision");
    const serviceType = statedServiceType(entry);
    const loaded = loadedStatus(entry["status"]);
    models.push({
      id: entry["id"],
      ...(contextLength === undefined ? {} : { contextLength }),
      ...(isCount(parameters) ? { parameterCount: BigInt(parameters) } : {}),
      ...(vision ? { vision } : {}),
      ...(serviceType === undefined ? {} : { serviceType }),
      ...(loaded === undefined ? {} : { loaded }),
    });
  }
  return { models, engine };
}

/** parseOllamaTags reads Ollama's `GET /api/tags` answer, or returns undefined when the JSON is not one. */
export function parseOllamaTags(json: unknown): ModelListing | undefined {
  if (!isObject(json) || !Array.isArray(json["models"])) return undefined;
  const models: DiscoveredModel[] = [];
  for (const entry of json["models"]) {
    if (!isObject(entry)) continue;
    const id = typeof entry["name"] === "string" ? entry["name"] : typeof entry["model"] === "string" ? entry["model"] : undefined;
    if (id === undefined) continue;
    const details = isObject(entry["details"]) ? entry["details"] : {};
    const family = nonEmptyString(details["family"]);
    const quantization = nonEmptyString(details["quantization_level"]);
    const parameterCount = parameterSize(details["parameter_size"]);
    models.push({
      id,
      ...(family === undefined ? {} : { family }),
      ...(quantization === undefined ? {} : { quantization }),
      ...(parameterCount === undefined ? {} : { parameterCount }),
    });
  }
  return { models, engine: "ollama" };
}

/** isOllamaVersion recognizes Ollama's `GET /api/version` answer: `{"version": "..."}` and nothing else. */
export function isOllamaVersion(json: unknown): boolean {
  return isObject(json) && typeof json["version"] === "string" && Object.keys(json).length === 1;
}

/** OllamaShow is what Ollama's `POST /api/show` says a model does, read from its `capabilities`. */
export interface OllamaShow {
  /** serviceType is "embedding" for a model that embeds and does not complete ("nomic-embed-text"), else "llm". */
  readonly serviceType: "llm" | "embedding";
  readonly vision: boolean;
  readonly tools: boolean;
}

/**
 * parseOllamaShow reads Ollama's `POST /api/show` answer, or returns undefined when it lists no `capabilities`
 * (Ollama before 0.6 did not): "completion", "embedding", "tools", "vision", "insert", "thinking", ...
 */
export function parseOllamaShow(json: unknown): OllamaShow | undefined {
  if (!isObject(json) || !Array.isArray(json["capabilities"])) return undefined;
  const capabilities = json["capabilities"].filter((c): c is string => typeof c === "string");
  const embedsOnly = capabilities.includes("embedding") && !capabilities.includes("completion");
  return { serviceType: embedsOnly ? "embedding" : "llm", vision: capabilities.includes("vision"), tools: capabilities.includes("tools") };
}

/**
 * LlamaProps is what llama-server's `GET /props` says of the model it serves: the kinds of input its multimodal
 * projector reads (`modalities`, in recent builds) and whether its chat template takes tool definitions
 * (`chat_template_caps.supports_tools`). A field the build does not report is undefined.
 */
export interface LlamaProps {
  readonly vision: boolean | undefined;
  readonly audio: boolean | undefined;
  readonly tools: boolean | undefined;
}

/**
 * parseLlamaProps reads llama-server's `GET /props` answer, or returns undefined when the JSON is not one (it always
 * carries `default_generation_settings`, and `build_info` or `model_path`).
 */
export function parseLlamaProps(json: unknown): LlamaProps | undefined {
  if (!isObject(json) || !isObject(json["default_generation_settings"])) return undefined;
  if (typeof json["build_info"] !== "string" && typeof json["model_path"] !== "string") return undefined;
  const modalities = isObject(json["modalities"]) ? json["modalities"] : {};
  const caps = isObject(json["chat_template_caps"]) ? json["chat_template_caps"] : {};
  return { vision: flag(modalities["vision"]), audio: flag(modalities["audio"]), tools: flag(caps["supports_tools"]) };
}

/**
 * withLlamaProps applies what `/props` says to the one model of a single-model llama-server: its word on vision and
 * audio replaces the guess from the `models` list's "multimodal" capability, which does not tell the two apart.
 */
export function withLlamaProps(listing: ModelListing, props: LlamaProps): ModelListing {
  const [model, ...others] = listing.models;
  if (model === undefined || others.length > 0) return listing;
  const updated: DiscoveredModel = {
    ...model,
    ...(props.vision === undefined ? {} : { vision: props.vision }),
    ...(props.audio === undefined ? {} : { audio: props.audio }),
    ...(props.tools === undefined ? {} : { tools: props.tools }),
  };
  return { models: [updated], engine: listing.engine ?? "llamacpp" };
}

/** statedServiceType reads the type a model entry states for itself, if any (see STATED_TYPES). */
export function statedServiceType(entry: Readonly<Record<string, unknown>>): UpstreamType | undefined {
  for (const field of STATED_TYPE_FIELDS) {
    const value = entry[field];
    const type = typeof value === "string" ? STATED_TYPES.get(value.trim().toLowerCase()) : undefined;
    if (type !== undefined) return type;
  }
  return undefined;
}

/** serviceTypeByName guesses a model's type from its id (see NAME_TYPES); undefined when the id says nothing. */
export function serviceTypeByName(id: string): UpstreamType | undefined {
  return NAME_TYPES.find(([pattern]) => pattern.test(id))?.[1];
}

/**
 * servingUpstreams decides which of the upstreams configured on one server advertise a model that server lists (one
 * server, several `--upstream TYPE=URL`: LocalAI, the simulator), so that each model is advertised under its own
 * type only. Upstreams that name the model in their `declare` or `expose` lists claim it; else the one whose type
 * the server states (or discovery found) for it; else the one its id suggests (serviceTypeByName); else the llm one,
 * as a model that says nothing about itself is most likely a chat model ("gpt-4" on LocalAI), or the first configured
 * without one. An embedding or rerank model without an upstream of its type goes to the llm one, which advertises it
 * under its own type (see advertisedModels). A model whose stated or suggested type none of them has is advertised
 * by none: a speech model is no chat model because the server also serves chat. upstreams are in configuration order.
 */
export function servingUpstreams(model: DiscoveredModel, upstreams: readonly UpstreamConfig[]): UpstreamConfig[] {
  const id = model.id.toLowerCase();
  const named = (ids: readonly string[] | undefined) => ids?.some((other) => other.toLowerCase() === id) ?? false;
  const claiming = upstreams.filter((upstream) => named(upstream.declare) || named(upstream.expose));
  if (claiming.length > 0) return claiming;
  const llm = upstreams.find((upstream) => upstream.type === "llm");
  const type = model.serviceType ?? serviceTypeByName(model.id);
  if (type !== undefined) {
    const own = upstreams.find((upstream) => upstream.type === type) ?? (LLM_SERVED_TYPES.has(type) ? llm : undefined);
    return own ? [own] : [];
  }
  return llm ? [llm] : upstreams.slice(0, 1);
}

/**
 * LLM_SERVED_TYPES are the types an llm upstream advertises under their own names: the servers that serve chat
 * (llama-server, Ollama, vLLM, LM Studio) are the ones that serve embeddings and rerank, and list those models
 * beside their chat models, so `--upstream URL` serves them all.
 */
const LLM_SERVED_TYPES: ReadonlySet<UpstreamType> = new Set<UpstreamType>(["embedding", "rerank"]);

/**
 * advertisedType is the type an upstream advertises a model under: an llm upstream's embedding and rerank models
 * under their own type (see LLM_SERVED_TYPES), as the server states it, discovery found it or, failing both, its id
 * suggests; every other model under the upstream's type.
 */
export function advertisedType(model: DiscoveredModel, upstream: Pick<UpstreamConfig, "type">): UpstreamType {
  if (upstream.type !== "llm") return upstream.type;
  const found = model.serviceType ?? serviceTypeByName(model.id);
  return found !== undefined && LLM_SERVED_TYPES.has(found) ? found : "llm";
}

/**
 * advertisedModels turns a listing into the models this upstream advertises: the expose/hide lists applied, each
 * model's type (see advertisedType), modalities defaulting by type, an llm model's features (vision, tools, and the
 * protocols its server speaks: "responses", "messages", "count_tokens"), the config's capability overrides (the "*"
 * entry for every model, then the model's own entry; they replace what was found), the engine. Ids the registry
 * would refuse, and repeats, are left out. sharing lists every upstream configured on the same server, this one
 * included, in configuration order: when there are several, a listed model is advertised only by the upstream
 * servingUpstreams picks.
 */
export function advertisedModels(
  listing: ModelListing,
  upstream: UpstreamConfig,
  sharing: readonly UpstreamConfig[] = [upstream],
): Model[] {
  const expose = upstream.expose === undefined ? undefined : new Set(upstream.expose.map((id) => id.toLowerCase()));
  const hide = new Set(upstream.hide.map((id) => id.toLowerCase()));
  const shared = sharing.length > 1 && upstream.declare === undefined;
  const seen = new Set<string>();
  const models: Model[] = [];
  for (const discovered of listing.models) {
    const key = discovered.id.toLowerCase();
    if (discovered.id.trim() === "" || discovered.id.length > MAX_MODEL_ID_LENGTH || seen.has(key)) continue;
    if ((expose !== undefined && !expose.has(key)) || hide.has(key)) continue;
    if (shared && !servingUpstreams(discovered, sharing).includes(upstream)) continue;
    seen.add(key);
    const override = capabilityOverride(upstream.capabilities, discovered.id);
    const typeName = advertisedType(discovered, upstream);
    const type = serviceTypeOf(typeName);
    const llm = typeName === "llm";
    const vision = llm && discovered.vision === true;
    const audio = llm && discovered.audio === true;
    const inputs = vision || audio ? [Modality.TEXT, ...(vision ? [Modality.IMAGE] : []), ...(audio ? [Modality.AUDIO] : [])] : type.inputs;
    const features = llm
      ? [...(vision ? ["vision"] : []), ...(discovered.tools === true ? ["tools"] : []), ...(discovered.protocols ?? [])]
      : [];
    models.push(
      create(ModelSchema, {
        id: discovered.id,
        serviceType: type.serviceType,
        inputModalities: [...(override.inputModalities ?? inputs)],
        outputModalities: [...(override.outputModalities ?? type.outputs)],
        supportedFeatures: [...(override.supportedFeatures ?? features)],
        contextLength: override.contextLength ?? discovered.contextLength ?? 0,
        engine: upstream.engine ?? listing.engine ?? UNKNOWN_ENGINE,
        quantization: discovered.quantization ?? "",
        family: discovered.family ?? "",
        parameterCount: discovered.parameterCount ?? 0n,
      }),
    );
  }
  return models;
}

function capabilityOverride(capabilities: Readonly<Record<string, CapabilityOverride>>, id: string): CapabilityOverride {
  const own = capabilities[id] ?? Object.entries(capabilities).find(([key]) => key !== "*" && key.toLowerCase() === id.toLowerCase())?.[1];
  return { ...capabilities["*"], ...own };
}

/** llamaCapabilities reads llama-server's Ollama-style `models` list: capabilities by model name. */
function llamaCapabilities(list: unknown): Map<string, readonly string[]> {
  const byName = new Map<string, readonly string[]>();
  if (!Array.isArray(list)) return byName;
  for (const entry of list) {
    if (!isObject(entry) || typeof entry["name"] !== "string" || !Array.isArray(entry["capabilities"])) continue;
    byName.set(
      entry["name"],
      entry["capabilities"].filter((c): c is string => typeof c === "string"),
    );
  }
  return byName;
}

/** loadedStatus reads llama-server's router-mode `status` ({"value": "loaded"}); undefined when there is none. */
function loadedStatus(status: unknown): boolean | undefined {
  const value = isObject(status) ? status["value"] : status;
  return typeof value === "string" ? value.toLowerCase() === "loaded" : undefined;
}

/** parameterSize reads Ollama's "8.0B" / "494.03M" into a count of weights. */
function parameterSize(value: unknown): bigint | undefined {
  if (typeof value !== "string") return undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([KMBT])\s*$/i.exec(value);
  if (!match) return undefined;
  const scale = { K: 1e3, M: 1e6, B: 1e9, T: 1e12 }[(match[2] as string).toUpperCase() as "K" | "M" | "B" | "T"];
  return BigInt(Math.round(Number(match[1]) * scale));
}

function flag(value: unknown): boolean | undefined {
  return typeof value === "boolean" ? value : undefined;
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}

function positive(value: unknown): number | undefined {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0 && value <= 0xffff_ffff ? value : undefined;
}

function nonEmptyString(value: unknown): string | undefined {
  return typeof value === "string" && value.trim() !== "" ? value.slice(0, 64) : undefined;
}
