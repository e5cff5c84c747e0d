import { create } from "@bufbuild/protobuf";
import { Modality, type Model, ModelSchema } from "../../gen/infermesh/v1/capabilities_pb.js";
import { serviceTypeOf } from "../shared/inference-catalog.js";
import type { CapabilityOverride, UpstreamConfig } from "./agent-config.js";

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
}

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
 * back to the model's training context `n_ctx_train` when the server does not report it.
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
    models.push({
      id: entry["id"],
      ...(contextLength === undefined ? {} : { contextLength }),
      ...(isCount(parameters) ? { parameterCount: BigInt(parameters) } : {}),
      ...(vision ? { vision } : {}),
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

/**
 * advertisedModels turns a listing into the models this upstream advertises: the expose/hide lists applied, the
 * upstream's service type, modalities defaulting by type, the config's capability overrides (the "*" entry for every
 * model, then the model's own entry), the engine. Ids the registry would refuse, and repeats, are left out.
 */
export function advertisedModels(listing: ModelListing, upstream: UpstreamConfig): Model[] {
  const expose = upstream.expose === undefined ? undefined : new Set(upstream.expose.map((id) => id.toLowerCase()));
  const hide = new Set(upstream.hide.map((id) => id.toLowerCase()));
  const seen = new Set<string>();
  const type = serviceTypeOf(upstream.type);
  const models: Model[] = [];
  for (const discovered of listing.models) {
    const key = discovered.id.toLowerCase();
    if (discovered.id.trim() === "" || discovered.id.length > MAX_MODEL_ID_LENGTH || seen.has(key)) continue;
    if ((expose !== undefined && !expose.has(key)) || hide.has(key)) continue;
    seen.add(key);
    const override = capabilityOverride(upstream.capabilities, discovered.id);
    const vision = upstream.type === "llm" && discovered.vision === true;
    models.push(
      create(ModelSchema, {
        id: discovered.id,
        serviceType: type.serviceType,
        inputModalities: [...(override.inputModalities ?? (vision ? [Modality.TEXT, Modality.IMAGE] : type.inputs))],
        outputModalities: [...(override.outputModalities ?? type.outputs)],
        supportedFeatures: [...(override.supportedFeatures ?? (vision ? ["vision"] : []))],
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

/** parameterSize reads Ollama's "8.0B" / "494.03M" into a count of weights. */
function parameterSize(value: unknown): bigint | undefined {
  if (typeof value !== "string") return undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([KMBT])\s*$/i.exec(value);
  if (!match) return undefined;
  const scale = { K: 1e3, M: 1e6, B: 1e9, T: 1e12 }[(match[2] as string).toUpperCase() as "K" | "M" | "B" | "T"];
  return BigInt(Math.round(Number(match[1]) * scale));
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

function isObject(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
