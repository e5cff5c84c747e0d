import { equals } from "@bufbuild/protobuf";
import { type Model, ModelSchema } from "../../gen/infermesh/v1/capabilities_pb.js";
import type { Clock, TimerHandle } from "../shared/clock.js";
import type { Logger } from "../shared/logger.js";
import type { UpstreamConfig, UpstreamKind } from "./agent-config.js";
import { parseSdModels, SD_MODELS_PATH } from "./automatic1111-adapter.js";
import { mediaType, readBody, type UpstreamClient } from "./upstream-client.js";
import { describeUpstreamFailure } from "./upstream-failure.js";
import {
  advertisedModels,
  type ModelListing,
  parseLlamaProps,
  parseOllamaTags,
  parseOpenAiModelList,
  withLlamaProps,
} from "./upstream-models.js";
import { ServerProbes } from "./upstream-probes.js";
import { WHISPER_CPP_PROBE_PATH } from "./whisper-cpp-adapter.js";

/** DEFAULT_DISCOVERY_TIMEOUT_MS bounds one model-list request; a local server answers it at once even when busy. */
export const DEFAULT_DISCOVERY_TIMEOUT_MS = 5_000;
/** DEFAULT_INITIAL_BACKOFF_MS is the first retry delay after an upstream is found down; it doubles from there. */
export const DEFAULT_INITIAL_BACKOFF_MS = 1_000;
/** DEFAULT_UNREACHABLE_PROBE_MS is the first probe delay after a call found an upstream unreachable; it doubles from there. */
export const DEFAULT_UNREACHABLE_PROBE_MS = 1_000;
/** DEFAULT_MAX_UNREACHABLE_PROBE_MS caps the probe delay of an upstream a call found unreachable. */
export const DEFAULT_MAX_UNREACHABLE_PROBE_MS = 5_000;
/** MAX_LIST_BYTES bounds a model list answer. */
const MAX_LIST_BYTES = 8 * 1024 * 1024;

/**
 * PROBE_PATHS are what the agent asks an upstream with declared models, to know it is up: its model list, or
 * whisper.cpp's /health (503 while it loads its model).
 */
const PROBE_PATHS: Readonly<Record<UpstreamKind, string>> = {
  openai: "/v1/models",
  whispercpp: WHISPER_CPP_PROBE_PATH,
  automatic1111: SD_MODELS_PATH,
};

/** KIND_ENGINES name the engine of native kinds, whose answers do not. */
const KIND_ENGINES: Readonly<Record<UpstreamKind, string | undefined>> = {
  openai: undefined,
  whispercpp: "whispercpp",
  automatic1111: "automatic1111",
};

/** DiscoveryTarget is an upstream and the client that reaches it. */
export interface DiscoveryTarget {
  readonly config: UpstreamConfig;
  readonly client: UpstreamClient;
}

/** UpstreamState is what discovery knows about one upstream now. */
export interface UpstreamState {
  /** up is true when its last model-list request succeeded and no call found it unreachable since. */
  readonly up: boolean;
  /** models are what it advertises: empty while down. */
  readonly models: readonly Model[];
  /** cause says why it is down. */
  readonly cause: string | undefined;
}

/** ModelDiscoveryOptions configures a ModelDiscovery. */
export interface ModelDiscoveryOptions {
  readonly targets: readonly DiscoveryTarget[];
  readonly clock: Clock;
  readonly log: Logger;
  /** intervalMs is the time between two checks of an upstream that is up. */
  readonly intervalMs: number;
  readonly initialBackoffMs?: number;
  /** maxBackoffMs caps the retry delay of an upstream that is down; intervalMs by default. */
  readonly maxBackoffMs?: number;
  readonly requestTimeoutMs?: number;
  /** unreachableProbeMs is the first probe delay after reportUnreachable; DEFAULT_UNREACHABLE_PROBE_MS by default. */
  readonly unreachableProbeMs?: number;
  /** maxUnreachableProbeMs caps that delay as it doubles; DEFAULT_MAX_UNREACHABLE_PROBE_MS by default. */
  readonly maxUnreachableProbeMs?: number;
  /** onChange hears that an upstream came up, went down, or changed its models. */
  readonly onChange: () => void;
}

interface Slot {
  readonly target: DiscoveryTarget;
  /** server names the server this upstream is on; upstreams configured with the same base URL share it. */
  readonly server: string;
  /** sharing are the upstreams on the same server, this one included, in configuration order. */
  readonly sharing: readonly UpstreamConfig[];
  /** probes are what the server said to the questions its model list leaves open; its upstreams share them. */
  readonly probes: ServerProbes;
  state: UpstreamState;
  failures: number;
  checked: boolean;
  timer: TimerHandle | undefined;
  /** unreachable is set from a call's connection failure until the server answers: it is probed at a quick pace. */
  unreachable: boolean;
  /** epoch counts the reported failures, so that a check begun before one does not undo it. */
  epoch: number;
  /** checking aborts the check in flight, if any. */
  checking: AbortController | undefined;
}

/**
 * ModelDiscovery asks each upstream what it serves, at start and every intervalMs: OpenAI's `GET /v1/models`
 * (llama-server, vLLM, LM Studio, LocalAI and Ollama's /v1 all serve it), else Ollama's `GET /api/tags`; an
 * AUTOMATIC1111 server its `GET /sdapi/v1/sd-models`. An upstream with declared models advertises them as declared
 * once it answers its probe (PROBE_PATHS) with anything but a 5xx. An upstream that does not answer is down: its
 * models are withdrawn and it is retried with capped exponential backoff. Each change of state is logged once, so the
 * log tells the story without repeating it every retry.
 *
 * A call that cannot reach an upstream says so through reportUnreachable: its models leave at once, without waiting
 * for the next check, and it is probed every second or so until it answers. A llama-server that serves one model is
 * also asked its `GET /props`, for the model's input modalities and whether its chat template takes tools. An
 * OpenAI-compatible llm upstream's server is asked, once until it goes down or lists other models, the type of each
 * model it lists without one (an embedding model is listed like a chat model) and which protocols it speaks besides
 * chat and completions (see ServerProbes); the configuration's capability overrides still win. Upstreams configured
 * with the same base URL are one server: each model it lists is advertised under one of their types only (see
 * servingUpstreams).
 */
export class ModelDiscovery {
  readonly #options: ModelDiscoveryOptions;
  readonly #slots: Slot[];
  readonly #requests = new Set<AbortController>();
  #stopped = false;

  constructor(options: ModelDiscoveryOptions) {
    this.#options = options;
    const servers = options.targets.map((target) => serverOf(target.config.url));
    const probes = new Map<string, ServerProbes>();
    for (const server of servers) if (!probes.has(server)) probes.set(server, new ServerProbes(this.#timeoutMs));
    this.#slots = options.targets.map((target, index) => ({
      target,
      server: servers[index] as string,
      sharing: options.targets.filter((_, other) => servers[other] === servers[index]).map((other) => other.config),
      probes: probes.get(servers[index] as string) as ServerProbes,
      state: { up: false, models: [], cause: "not checked yet" },
      failures: 0,
      checked: false,
      timer: undefined,
      unreachable: false,
      epoch: 0,
      checking: undefined,
    }));
  }

  /** start checks every upstream once, resolving when all have answered or failed, then keeps checking. */
  async start(): Promise<void> {
    await Promise.all(this.#slots.map((slot) => this.#check(slot)));
  }

  /** stop cancels timers and requests in flight. */
  stop(): void {
    this.#stopped = true;
    for (const slot of this.#slots) slot.timer?.cancel();
    for (const controller of this.#requests) controller.abort(new Error("discovery stopped"));
  }

  /**
   * reportUnreachable tells discovery that a call could not reach the upstream at upstreamIndex (configuration order):
   * a connection refused, reset or timed out (see isConnectionFailure), not an HTTP error status. The upstream, and
   * every upstream on the same server, goes down at once, its models withdrawn, what its server said to the probes
   * forgotten, a check in flight cut short and onChange told; it is then probed after unreachableProbeMs, doubling
   * up to maxUnreachableProbeMs, and its models return when it answers. A report on an upstream that is already down
   * changes nothing.
   */
  reportUnreachable(upstreamIndex: number, cause: string): void {
    const reported = this.#slots[upstreamIndex];
    if (this.#stopped || reported === undefined) return;
    let changed = false;
    for (const slot of this.#slots) {
      if (slot.server !== reported.server || !slot.state.up) continue;
      slot.timer?.cancel();
      slot.epoch++;
      // A check in flight would be ignored: stop it asking a server that is gone.
      slot.checking?.abort(new Error("the server was found unreachable"));
      slot.unreachable = true;
      slot.failures = 1;
      slot.probes.forget();
      slot.state = { up: false, models: [], cause };
      const delayMs = this.#retryDelayMs(slot);
      slot.timer = this.#options.clock.setTimer(() => void this.#check(slot), delayMs);
      const { config } = slot.target;
      this.#options.log.warn(
        { upstream: config.url, type: config.type, cause, retryInMs: delayMs },
        "upstream unreachable; its models are withdrawn until it answers",
      );
      changed = true;
    }
    if (changed) this.#options.onChange();
  }

  /** states are the upstreams' states, in configuration order. */
  states(): readonly UpstreamState[] {
    return this.#slots.map((slot) => slot.state);
  }

  /**
   * models are the models of every upstream that is up. A model id served with the same service type by two
   * upstreams is listed once (the registry refuses repeats); requests for it still reach both.
   */
  models(): Model[] {
    const seen = new Set<string>();
    const models: Model[] = [];
    for (const slot of this.#slots) {
      for (const model of slot.state.models) {
        const key = `${model.serviceType}\u0000${model.id.toLowerCase()}`;
        if (seen.has(key)) continue;
        seen.add(key);
        models.push(model);
      }
    }
    return models;
  }

  async #check(slot: Slot): Promise<void> {
    slot.timer?.cancel();
    const { clock, log, intervalMs } = this.#options;
    const { config } = slot.target;
    const controller = new AbortController();
    this.#requests.add(controller);
    slot.checking = controller;
    const epoch = slot.epoch;
    let listing: ModelListing | undefined;
    let cause = "";
    try {
      listing = await this.#fetchListing(slot, controller.signal);
    } catch (error) {
      cause = error instanceof ListingError ? error.message : describeUpstreamFailure(error, config.url, this.#timeoutMs);
    } finally {
      this.#requests.delete(controller);
      if (slot.checking === controller) slot.checking = undefined;
    }
    if (this.#stopped || slot.epoch !== epoch) return;
    const previous = slot.state;
    const firstCheck = !slot.checked;
    slot.checked = true;
    let delayMs: number;
    if (listing) {
      slot.failures = 0;
      slot.unreachable = false;
      slot.state = { up: true, models: advertisedModels(listing, config, slot.sharing), cause: undefined };
      delayMs = intervalMs;
      const ids = slot.state.models.map((m) => m.id);
      if (!previous.up) log.info({ upstream: config.url, type: config.type, models: ids }, "upstream up");
      else if (!sameModels(previous.models, slot.state.models)) {
        log.info({ upstream: config.url, type: config.type, models: ids }, "upstream models changed");
      }
    } else {
      slot.failures++;
      slot.probes.forget();
      delayMs = this.#retryDelayMs(slot);
      slot.state = { up: false, models: [], cause };
      const fields = { upstream: config.url, type: config.type, cause, retryInMs: delayMs };
      if (previous.up || firstCheck) log.warn(fields, "upstream down; its models are withdrawn until it answers");
      else log.debug(fields, "upstream still down");
    }
    slot.timer = clock.setTimer(() => void this.#check(slot), delayMs);
    if (previous.up !== slot.state.up || !sameModels(previous.models, slot.state.models)) this.#options.onChange();
  }

  /** #retryDelayMs is the wait before the next check of a slot that is down, by its count of failures in a row. */
  #retryDelayMs(slot: Slot): number {
    const options = this.#options;
    const initial = slot.unreachable
      ? (options.unreachableProbeMs ?? DEFAULT_UNREACHABLE_PROBE_MS)
      : (options.initialBackoffMs ?? DEFAULT_INITIAL_BACKOFF_MS);
    const cap = slot.unreachable
      ? (options.maxUnreachableProbeMs ?? DEFAULT_MAX_UNREACHABLE_PROBE_MS)
      : (options.maxBackoffMs ?? options.intervalMs);
    return Math.min(cap, initial * 2 ** Math.min(slot.failures - 1, 30));
  }

  get #timeoutMs(): number {
    return this.#options.requestTimeoutMs ?? DEFAULT_DISCOVERY_TIMEOUT_MS;
  }

  async #fetchListing(slot: Slot, signal: AbortSignal): Promise<ModelListing> {
    const { target } = slot;
    const { config } = target;
    if (config.declare !== undefined) return this.#probe(target, config.declare, signal);
    if (config.kind === "automatic1111") {
      const answer = await this.#getJson(target, SD_MODELS_PATH, signal);
      const listing = answer.json === undefined ? undefined : parseSdModels(answer.json);
      if (listing) return listing;
      throw new ListingError(`${config.url} lists no models: GET ${SD_MODELS_PATH} ${answer.problem} (is the WebUI started with --api?)`);
    }
    if (config.kind === "whispercpp") throw new ListingError(`${config.url}: whisper.cpp cannot list its model; declare it`);
    const openAi = await this.#getJson(target, "/v1/models", signal);
    const listing = openAi.json === undefined ? undefined : parseOpenAiModelList(openAi.json);
    if (listing) return this.#probed(slot, await this.#withProps(target, listing, signal), signal);
    const ollama = await this.#getJson(target, "/api/tags", signal);
    const tags = ollama.json === undefined ? undefined : parseOllamaTags(ollama.json);
    if (tags) return this.#probed(slot, tags, signal);
    throw new ListingError(`${target.config.url} lists no models: GET /v1/models ${openAi.problem}; GET /api/tags ${ollama.problem}`);
  }

  /**
   * #withProps adds what llama-server's `GET /props` says to the listing of an llm upstream that serves one model and
   * is llama.cpp, or might be (its engine unknown). Its props describe that one model; in router mode, where one
   * server lists many, asking for each model's props could load it, so they are not asked. A server that does not
   * answer props keeps its listing as it is.
   */
  async #withProps(target: DiscoveryTarget, listing: ModelListing, signal: AbortSignal): Promise<ModelListing> {
    const { config } = target;
    const engine = config.engine ?? listing.engine;
    if (config.type !== "llm" || listing.models.length !== 1 || (engine !== undefined && engine !== "llamacpp")) return listing;
    try {
      const answer = await this.#getJson(target, LLAMA_PROPS_PATH, signal);
      const props = answer.json === undefined ? undefined : parseLlamaProps(answer.json);
      return props === undefined ? listing : withLlamaProps(listing, props);
    } catch (error) {
      if (signal.aborted) throw error;
      return listing;
    }
  }

  /**
   * #probed completes the listing of a server that an llm upstream is configured on with what the server answers to
   * the probes (see ServerProbes). Every upstream of the server completes it, sharing one asking, so that each picks
   * the models it advertises by the same types (see servingUpstreams); a server with no llm upstream is not asked.
   */
  #probed(slot: Slot, listing: ModelListing, signal: AbortSignal): Promise<ModelListing> {
    const { config, client } = slot.target;
    if (!slot.sharing.some((upstream) => upstream.type === "llm")) return Promise.resolve(listing);
    return slot.probes.complete(client, listing, config.engine, signal);
  }

  async #probe(target: DiscoveryTarget, declared: readonly string[], signal: AbortSignal): Promise<ModelListing> {
    const { config } = target;
    const path = PROBE_PATHS[config.kind];
    const response = await target.client.get(path, { signal, timeoutMs: this.#timeoutMs });
    await response.body.dump();
    if (response.status >= 500) throw new ListingError(`${config.url} is not ready: GET ${path} answered HTTP ${response.status}`);
    // A declared model is the type its upstream says, whatever its id suggests.
    return { models: declared.map((id) => ({ id, serviceType: config.type })), engine: KIND_ENGINES[config.kind] };
  }

  async #getJson(target: DiscoveryTarget, path: string, signal: AbortSignal): Promise<{ json?: unknown; problem: string }> {
    const response = await target.client.get(path, { signal, timeoutMs: this.#timeoutMs });
    if (response.status < 200 || response.status > 299) {
      await response.body.dump();
      return { problem: `answered HTTP ${response.status}` };
    }
    const body = await readBody(response.body, MAX_LIST_BYTES);
    try {
      return { json: JSON.parse(body.toString("utf8")) as unknown, problem: "is not a model list" };
    } catch {
      return { problem: `answered ${mediaType(response.contentType) || "a body"} that is not JSON` };
    }
  }
}

/** LLAMA_PROPS_PATH is where llama-server describes the model it serves. */
const LLAMA_PROPS_PATH = "/props";

/** serverOf names the server behind a base URL, so that two spellings of one URL name one server. */
function serverOf(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname.replace(/\/+$/, "")}`;
  } catch {
    return url;
  }
}

/** ListingError is an upstream that answers, but not with a model list. */
class ListingError extends Error {}

function sameModels(a: readonly Model[], b: readonly Model[]): boolean {
  return a.length === b.length && a.every((model, i) => equals(ModelSchema, model, b[i] as Model));
}
