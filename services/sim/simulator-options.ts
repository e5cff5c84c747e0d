import { PROTOCOL_FEATURES, type ProtocolFeature, SERVICE_TYPE_NAMES, type ServiceTypeName } from "../shared/inference-catalog.js";

/**
 * DEFAULT_MODEL_ID is the model the simulator serves when SimulatorOptions.models is absent.
 */
export const DEFAULT_MODEL_ID = "sim-llama";
/** DEFAULT_OWNED_BY is llama-server's `owned_by` value in /v1/models. */
export const DEFAULT_OWNED_BY = "llamacpp";
/**
 * DEFAULT_CONTEXT_LENGTH is a model's context size in (simulated) tokens; large so that slow, long benchmark streams
 * are not cut short by the context cap that llama-server applies to max_tokens.
 */
export const DEFAULT_CONTEXT_LENGTH = 65_536;
/** DEFAULT_TOKENS_PER_SECOND is the pace of each stream once its first token is out. */
export const DEFAULT_TOKENS_PER_SECOND = 200;
/** DEFAULT_TIME_TO_FIRST_TOKEN_MS is the simulated prompt-processing time before the first token. */
export const DEFAULT_TIME_TO_FIRST_TOKEN_MS = 10;
/**
 * DEFAULT_COMPLETION_TOKENS is how many tokens a reply has when the request sets no max_tokens; such replies end with
 * finish_reason "stop", as a model reaching its end-of-sequence token would.
 */
export const DEFAULT_COMPLETION_TOKENS = 16;
/** DEFAULT_FAILURE_STATUS is the HTTP status of an injected "status" failure that names none. */
export const DEFAULT_FAILURE_STATUS = 500;
/** DEFAULT_SYSTEM_FINGERPRINT stands in for llama-server's build info ("b<build>-<commit>"). */
export const DEFAULT_SYSTEM_FINGERPRINT = "b0-simulator";
/**
 * DEFAULT_MAX_RECORDED_REQUESTS bounds Simulator.requests and Simulator.aborted so that long benchmarks do not grow
 * without limit; the most recent entries are kept.
 */
export const DEFAULT_MAX_RECORDED_REQUESTS = 10_000;
/** MAX_CHOICES bounds `n`, standing in for llama-server's slot count. */
export const MAX_CHOICES = 128;
/** DEFAULT_SPEECH_CHUNK_INTERVAL_MS is the pause between two chunks of a speech answer (and two image stream events). */
export const DEFAULT_SPEECH_CHUNK_INTERVAL_MS = 5;
/** DEFAULT_MAX_UPLOAD_BYTES bounds a multipart upload (transcriptions, image edits); larger ones are answered 413. */
export const DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024;

/**
 * ModelKind is what a model serves, the mesh's service type: "llm" chat, completions, /v1/responses and /v1/messages,
 * "stt" /v1/audio/transcriptions and /v1/audio/translations, "image" /v1/images/generations and /v1/images/edits,
 * "tts" /v1/audio/speech, "embedding" /v1/embeddings (and chat, when the simulator serves no llm, as a llama-server
 * started with --embeddings does), "rerank" /v1/rerank.
 */
export type ModelKind = ServiceTypeName;

/** MODEL_KINDS lists the model kinds. */
export const MODEL_KINDS: readonly ModelKind[] = SERVICE_TYPE_NAMES;

/** SimulatedModel describes one model the simulator serves. */
export interface SimulatedModel {
  /** id is the model's name in /v1/models and in every answer's `model` field. */
  readonly id: string;
  /** aliases are further names of this model, listed in /v1/models after the id and accepted by strictModels. */
  readonly aliases?: readonly string[];
  /** ownedBy is the `owned_by` field; DEFAULT_OWNED_BY when absent. */
  readonly ownedBy?: string;
  /** contextLength is the context size (n_ctx) in tokens; DEFAULT_CONTEXT_LENGTH when absent. */
  readonly contextLength?: number;
  /**
   * kind is what the model serves, "llm" when absent; a request naming the model on another kind's endpoint is
   * answered 400 (model_not_supported).
   */
  readonly kind?: ModelKind;
}

/**
 * FailureMode names an injected failure: "status" answers an HTTP error (or, once a stream has begun, a final
 * `data: {"error":...}` frame; a speech body, which cannot carry one, is cut instead), "stall" stops sending and holds
 * the connection until the client leaves, "drop" destroys the socket.
 */
export type FailureMode = "status" | "stall" | "drop";

/**
 * FailureSpec injects a failure into the requests that produce answers: chat, completions and the media endpoints
 * (where "tokens" are the units a media answer streams: transcript words, image stream events, speech chunks).
 */
export interface FailureSpec {
  /** mode is what goes wrong. */
  readonly mode: FailureMode;
  /** status is the HTTP status (or the error frame's code) of a "status" failure; DEFAULT_FAILURE_STATUS if absent. */
  readonly status?: number;
  /**
   * afterTokens is how many tokens (per choice) are produced before the failure strikes; 0, the default, strikes when
   * the first token would have been sent, before any response header.
   */
  readonly afterTokens?: number;
  /** probability (0..1, default 1) is the share of requests that fail, drawn with SimulatorOptions.random. */
  readonly probability?: number;
}

/**
 * SimulatedProtocol names the APIs a llama-server speaks besides chat and completions, in the mesh's words:
 * "responses" (/v1/responses), "messages" (/v1/messages) and "count_tokens" (/v1/messages/count_tokens).
 */
export type SimulatedProtocol = ProtocolFeature;

/** SIMULATED_PROTOCOLS are every protocol a current llama-server speaks, the default of SimulatorOptions.protocols. */
export const SIMULATED_PROTOCOLS: readonly SimulatedProtocol[] = PROTOCOL_FEATURES;

/** SimulatorOptions configures createSimulator; every field is optional. */
export interface SimulatorOptions {
  /** models are the models served; one model named DEFAULT_MODEL_ID when absent. */
  readonly models?: readonly SimulatedModel[];
  /**
   * aliases rename the first model like llama-server's --alias: the first alias becomes the id in /v1/models and in
   * every answer's `model` field, and the aliases replace the listed names.
   */
  readonly aliases?: readonly string[];
  /**
   * tokensPerSecond paces each stream after its first token (a streamed transcript sends a word per token); 0 sends
   * as fast as the client reads.
   */
  readonly tokensPerSecond?: number;
  /**
   * timeToFirstTokenMs delays the first token (and, for streams, the response headers, as llama-server does); media
   * answers wait as long before their first byte.
   */
  readonly timeToFirstTokenMs?: number;
  /** completionTokens is the reply length when a request sets no max_tokens. */
  readonly completionTokens?: number;
  /** apiKey, when set, is required as `Authorization: Bearer <key>` (or `X-Api-Key`) like llama-server's --api-key. */
  readonly apiKey?: string;
  /** failure injects a failure into every request that produces an answer unless the request's `sim.fail` says "none". */
  readonly failure?: FailureSpec;
  /**
   * strictModels rejects requests naming an unknown model with llama-server's router error; by default the model name
   * is ignored and the first model answers, as a single-model llama-server does.
   */
  readonly strictModels?: boolean;
  /** systemFingerprint is the `system_fingerprint` field of every answer. */
  readonly systemFingerprint?: string;
  /** maxRecordedRequests bounds the `requests` and `aborted` records; 0 records nothing (counters still count). */
  readonly maxRecordedRequests?: number;
  /**
   * speechChunkIntervalMs is the pause between the chunks of a speech answer (and between image stream events);
   * DEFAULT_SPEECH_CHUNK_INTERVAL_MS when absent.
   */
  readonly speechChunkIntervalMs?: number;
  /** maxUploadBytes bounds a multipart request body; DEFAULT_MAX_UPLOAD_BYTES when absent. */
  readonly maxUploadBytes?: number;
  /**
   * protocols are the APIs served besides chat and completions, all of SIMULATED_PROTOCOLS when absent; the routes of
   * the others answer llama-server's 404, as an older llama-server without them does (`protocols: []` imitates one
   * that predates /v1/responses and /v1/messages).
   */
  readonly protocols?: readonly SimulatedProtocol[];
  /**
   * legacyRoutes imitates an older llama-server, without /v1/responses, /v1/messages and count_tokens: the same as
   * `protocols: []`, which it cannot be combined with.
   */
  readonly legacyRoutes?: boolean;
  /** now is the wall clock in milliseconds used for `created` and for record timestamps; Date.now by default. */
  readonly now?: () => number;
  /** random draws in [0, 1) for FailureSpec.probability; Math.random by default. */
  readonly random?: () => number;
}

/** ResolvedModel is a SimulatedModel with its defaults applied. */
export interface ResolvedModel {
  readonly id: string;
  /** aliases are the names /v1/models lists, id first, as llama-server's `aliases` field does. */
  readonly aliases: readonly string[];
  /** names are all the names that select the model when strictModels is on. */
  readonly names: readonly string[];
  readonly ownedBy: string;
  readonly contextLength: number;
  readonly kind: ModelKind;
}

/** ResolvedFailure is a FailureSpec with its defaults applied. */
export interface ResolvedFailure {
  readonly mode: FailureMode;
  readonly status: number;
  readonly afterTokens: number;
  readonly probability: number;
}

/** SimulatorConfig is SimulatorOptions validated, with defaults applied, frozen. */
export interface SimulatorConfig {
  readonly models: readonly ResolvedModel[];
  readonly tokensPerSecond: number;
  readonly timeToFirstTokenMs: number;
  readonly completionTokens: number;
  readonly apiKey: string | undefined;
  readonly failure: ResolvedFailure | undefined;
  readonly strictModels: boolean;
  readonly systemFingerprint: string;
  readonly maxRecordedRequests: number;
  readonly speechChunkIntervalMs: number;
  readonly maxUploadBytes: number;
  readonly protocols: readonly SimulatedProtocol[];
  readonly now: () => number;
  readonly random: () => number;
}

/** resolveSimulatorOptions validates options and applies defaults; a bad value throws naming the option and unit. */
export function resolveSimulatorOptions(options: SimulatorOptions): SimulatorConfig {
  const declared = options.models ?? [{ id: DEFAULT_MODEL_ID }];
  if (declared.length === 0) throw new Error("simulator option models: at least one model is required");
  const models = declared.map((model, index) => {
    const renamed = index === 0 && options.aliases !== undefined && options.aliases.length > 0;
    // llama-server's --alias renames the model: the first alias becomes the id and the aliases replace the path in
    // /v1/models; the original id still selects the model here so that strictModels stays usable.
    const listed = unique(renamed ? (options.aliases ?? []) : [model.id, ...(model.aliases ?? [])]);
    return Object.freeze({
      id: listed[0] ?? model.id,
      aliases: Object.freeze(listed),
      names: Object.freeze(unique([...listed, model.id])),
      ownedBy: model.ownedBy ?? DEFAULT_OWNED_BY,
      contextLength: positiveInteger(`models[${index}].contextLength`, model.contextLength ?? DEFAULT_CONTEXT_LENGTH),
      kind: modelKind(`models[${index}].kind`, model.kind ?? "llm"),
    });
  });
  return Object.freeze({
    models: Object.freeze(models),
    tokensPerSecond: nonNegative("tokensPerSecond (tokens/s)", options.tokensPerSecond ?? DEFAULT_TOKENS_PER_SECOND),
    timeToFirstTokenMs: nonNegative("timeToFirstTokenMs (ms)", options.timeToFirstTokenMs ?? DEFAULT_TIME_TO_FIRST_TOKEN_MS),
    completionTokens: nonNegativeInteger("completionTokens (tokens)", options.completionTokens ?? DEFAULT_COMPLETION_TOKENS),
    apiKey: options.apiKey === "" ? undefined : options.apiKey,
    failure: options.failure === undefined ? undefined : resolveFailure(options.failure),
    strictModels: options.strictModels ?? false,
    systemFingerprint: options.systemFingerprint ?? DEFAULT_SYSTEM_FINGERPRINT,
    maxRecordedRequests: nonNegativeInteger("maxRecordedRequests (entries)", options.maxRecordedRequests ?? DEFAULT_MAX_RECORDED_REQUESTS),
    speechChunkIntervalMs: nonNegative("speechChunkIntervalMs (ms)", options.speechChunkIntervalMs ?? DEFAULT_SPEECH_CHUNK_INTERVAL_MS),
    maxUploadBytes: positiveInteger("maxUploadBytes", options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES, "bytes"),
    protocols: resolveProtocols(options),
    now: options.now ?? Date.now,
    random: options.random ?? Math.random,
  });
}

function unique<T>(names: readonly T[]): T[] {
  return names.filter((name, at) => names.indexOf(name) === at);
}

function resolveFailure(spec: FailureSpec): ResolvedFailure {
  const probability = spec.probability ?? 1;
  if (!(probability >= 0 && probability <= 1)) {
    throw new Error(`simulator option failure.probability: expected a share between 0 and 1, got ${probability}`);
  }
  return Object.freeze({
    mode: spec.mode,
    status: httpErrorStatus("failure.status", spec.status ?? DEFAULT_FAILURE_STATUS),
    afterTokens: nonNegativeInteger("failure.afterTokens (tokens)", spec.afterTokens ?? 0),
    probability,
  });
}

/** httpErrorStatus checks that status is an HTTP error status (400-599). */
export function httpErrorStatus(name: string, status: number): number {
  if (!Number.isInteger(status) || status < 400 || status > 599) {
    throw new Error(`simulator option ${name}: expected an HTTP error status (400-599), got ${status}`);
  }
  return status;
}

function nonNegative(name: string, value: number): number {
  if (!(Number.isFinite(value) && value >= 0)) throw new Error(`simulator option ${name}: expected >= 0, got ${value}`);
  return value;
}

function nonNegativeInteger(name: string, value: number): number {
  if (!(Number.isInteger(value) && value >= 0)) {
    throw new Error(`simulator option ${name}: expected an integer >= 0, got ${value}`);
  }
  return value;
}

function positiveInteger(name: string, value: number, unit = "tokens"): number {
  if (!(Number.isInteger(value) && value > 0)) {
    throw new Error(`simulator option ${name} (${unit}): expected an integer > 0, got ${value}`);
  }
  return value;
}

function modelKind(name: string, value: string): ModelKind {
  if (!(MODEL_KINDS as readonly string[]).includes(value)) {
    throw new Error(`simulator option ${name}: expected one of ${MODEL_KINDS.join(", ")}, got '${value}'`);
  }
  return value as ModelKind;
}

function resolveProtocols(options: SimulatorOptions): readonly SimulatedProtocol[] {
  if (options.legacyRoutes === true && options.protocols !== undefined) {
    throw new Error("simulator options legacyRoutes and protocols: give one or the other, legacyRoutes being protocols: []");
  }
  const listed = options.legacyRoutes === true ? [] : (options.protocols ?? SIMULATED_PROTOCOLS);
  return Object.freeze(unique(listed.map((name, index) => protocol(`protocols[${index}]`, name))));
}

function protocol(name: string, value: string): SimulatedProtocol {
  if (!(SIMULATED_PROTOCOLS as readonly string[]).includes(value)) {
    throw new Error(`simulator option ${name}: expected one of ${SIMULATED_PROTOCOLS.join(", ")}, got '${value}'`);
  }
  return value as SimulatedProtocol;
}
