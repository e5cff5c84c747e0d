import { OPERATIONS, PROTOCOL_FEATURES, type ProtocolFeature } from "../shared/inference-catalog.js";
import { isObject } from "../shared/json-object.js";
import type { UpstreamType } from "./agent-config.js";
import { readBody, type UpstreamClient } from "./upstream-client.js";
import { isConnectionFailure } from "./upstream-failure.js";
import { advertisedType, type DiscoveredModel, isOllamaVersion, type ModelListing, parseOllamaShow } from "./upstream-models.js";

/** MAX_PROBE_BYTES bounds a probe answer read: one embedding of two words, or one model's description. */
const MAX_PROBE_BYTES = 4 * 1024 * 1024;

/** EMBEDDINGS_PATH and RERANK_PATH are where a type probe asks: the routes the gateway serves the two types on. */
const EMBEDDINGS_PATH = "/v1/embeddings";
const RERANK_PATH = "/v1/rerank";
/** OLLAMA_VERSION_PATH answers `{"version": "..."}` on Ollama, and nothing like it elsewhere. */
const OLLAMA_VERSION_PATH = "/api/version";
/** OLLAMA_SHOW_PATH describes one of Ollama's models without loading it. */
const OLLAMA_SHOW_PATH = "/api/show";

/** PROTOCOL_PATHS are the routes of the protocol features, as the catalog's operations name them. */
const PROTOCOL_PATHS: Readonly<Record<ProtocolFeature, string>> = Object.fromEntries(
  PROTOCOL_FEATURES.map((feature) => [feature, Object.values(OPERATIONS).find((info) => info.feature === feature)?.path as string]),
) as Record<ProtocolFeature, string>;

/** RouteAnswer is what a probe's status says of a route: the server lacks it, has it, or did not tell. */
type RouteAnswer = "missing" | "present" | "untold";

/**
 * routeAnswer reads a probe's status: 404 and 405 (no such route) and 501 (llama-server's not_supported_error) say
 * the route is missing; 401, 403, 429 and 503 (a key refused, a server busy or loading its model) tell nothing; any
 * other answer, such as the 400, 422 or 500 an empty request gets, comes from the route's own handler.
 */
function routeAnswer(status: number): RouteAnswer {
  if (status === 404 || status === 405 || status === 501) return "missing";
  if (status === 401 || status === 403 || status === 429 || status === 503) return "untold";
  return "present";
}

/** Finding is what a probe found of one model. */
type Finding = Pick<DiscoveredModel, "vision" | "tools"> & { readonly serviceType: UpstreamType };

/** ProbeAnswer is a probe's status and, when it was read, its JSON body. */
interface ProbeAnswer {
  readonly status: number;
  readonly json?: unknown;
}

/**
 * ServerProbes asks one OpenAI-compatible server what its model list does not say, and remembers the answers until
 * forget() (discovery calls it when the server goes down) or until the server lists other models, so that the
 * periodic discovery asks once:
 * - the type of each model whose entry states none. llama-server started with `--embeddings` lists its model exactly
 *   as a chat server does, so the model is asked `POST /v1/embeddings` (a 2xx with embeddings in `data`: an
 *   embedding model), else `POST /v1/rerank` (a 2xx with `results`: a rerank model), else it is an llm. Only a model
 *   that is surely in memory is asked: the one model of a server that lists one, or one whose `status` says loaded
 *   (llama-server's router mode); asking any other could load it. Ollama (named by the listing or the configuration,
 *   or found by its `GET /api/version`) is not asked so, as it embeds with chat models too: its `POST /api/show`
 *   lists each model's capabilities (embedding, vision, tools) without loading it.
 * - the protocols the server speaks, once for all its models: `POST /v1/responses`, `/v1/messages` and
 *   `/v1/messages/count_tokens` with an empty body, which every server refuses without generating; 404, 405 or 501
 *   means the server lacks the route, any other refusal that it has it (see routeAnswer).
 * Each request is bounded by timeoutMs. A probe that gets no answer in time, or one that tells nothing (busy,
 * loading), finds nothing and is asked again at the next discovery; a model it could not type goes by its id (see
 * advertisedType). A probe that cannot reach the server (refused, reset) throws, as the server is gone.
 */
export class ServerProbes {
  readonly #timeoutMs: number;
  /** #listed is the ids the answers below are for. */
  #listed = "";
  /**
   * #answers are the answers by question ("model ID", "protocols", "engine"), as promises: upstreams of one server
   * checked at once share one asking.
   */
  readonly #answers = new Map<string, Promise<unknown>>();

  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  /** forget drops every answer: the server went down, and what comes back may be another server. */
  forget(): void {
    this.#listed = "";
    this.#answers.clear();
  }

  /**
   * complete fills in a listing of an upstream of the server through client: each model's type where the listing
   * states none (with vision and tools from Ollama), and the protocols of its server on every model. engine is the
   * configured one, if any. The listing's engine becomes "ollama" when that is what the server was found to be.
   */
  async complete(client: UpstreamClient, listing: ModelListing, engine: string | undefined, signal: AbortSignal): Promise<ModelListing> {
    const listed = listing.models.map((model) => model.id).join("\n");
    if (listed !== this.#listed) this.forget();
    this.#listed = listed;
    const untyped = listing.models.some((model) => model.serviceType === undefined);
    const found = engine ?? listing.engine ?? (untyped ? await this.#identify(client, signal) : undefined);
    const single = listing.models.length === 1;
    const models: DiscoveredModel[] = [];
    for (const model of listing.models) {
      models.push(model.serviceType === undefined ? await this.#typed(client, model, found, single, signal) : model);
    }
    const chat = models.some((model) => advertisedType(model, { type: "llm" }) === "llm");
    const protocols = chat ? await this.#protocolsOf(client, signal) : [];
    return {
      models: protocols.length === 0 ? models : models.map((model) => ({ ...model, protocols })),
      engine: listing.engine ?? (found === "ollama" ? found : undefined),
    };
  }

  /**
   * #ask answers question once: concurrent askers share one asking, and later ones its answer, unless it told nothing
   * (undefined) or failed, when the next asker asks again.
   */
  #ask<T>(question: string, ask: () => Promise<T | undefined>): Promise<T | undefined> {
    const known = this.#answers.get(question);
    if (known !== undefined) return known as Promise<T | undefined>;
    const asked = ask();
    this.#answers.set(question, asked);
    const drop = () => {
      if (this.#answers.get(question) === asked) this.#answers.delete(question);
    };
    asked.then((answer) => answer === undefined && drop(), drop);
    return asked;
  }

  /** #typed is model with its type found, when it may be asked (see the class comment), else as it was. */
  async #typed(
    client: UpstreamClient,
    model: DiscoveredModel,
    engine: string | undefined,
    single: boolean,
    signal: AbortSignal,
  ): Promise<DiscoveredModel> {
    let finding: Finding | undefined;
    if (engine === "ollama") finding = await this.#ask(`model ${model.id}`, () => this.#show(client, model.id, signal));
    else if (model.loaded ?? single) finding = await this.#ask(`model ${model.id}`, () => this.#probeType(client, model.id, signal));
    return finding === undefined ? model : { ...model, ...finding };
  }

  /** #probeType asks a model for an embedding, then for a ranking; undefined when an answer told nothing. */
  async #probeType(client: UpstreamClient, id: string, signal: AbortSignal): Promise<Finding | undefined> {
    const embedding = await this.#post(client, EMBEDDINGS_PATH, { model: id, input: "infermesh probe" }, signal);
    if (embedding === undefined || routeAnswer(embedding.status) === "untold") return undefined;
    if (isOk(embedding.status) && isEmbeddingAnswer(embedding.json)) return { serviceType: "embedding" };
    const rerank = await this.#post(client, RERANK_PATH, { model: id, query: "infermesh", documents: ["probe"] }, signal);
    if (rerank === undefined || routeAnswer(rerank.status) === "untold") return undefined;
    if (isOk(rerank.status) && isRerankAnswer(rerank.json)) return { serviceType: "rerank" };
    return { serviceType: "llm" };
  }

  /** #show asks Ollama what a model does; undefined when it did not say. */
  async #show(client: UpstreamClient, id: string, signal: AbortSignal): Promise<Finding | undefined> {
    const answer = await this.#post(client, OLLAMA_SHOW_PATH, { model: id }, signal);
    return answer !== undefined && isOk(answer.status) ? parseOllamaShow(answer.json) : undefined;
  }

  /** #protocolsOf are the protocols the server speaks (see #askProtocols), asked once. */
  async #protocolsOf(client: UpstreamClient, signal: AbortSignal): Promise<readonly ProtocolFeature[]> {
    return (await this.#ask("protocols", () => this.#askProtocols(client, signal))) ?? [];
  }

  /** #askProtocols asks each protocol's route; undefined when an answer told nothing (see routeAnswer). */
  async #askProtocols(client: UpstreamClient, signal: AbortSignal): Promise<readonly ProtocolFeature[] | undefined> {
    const spoken: ProtocolFeature[] = [];
    let untold = false;
    for (const feature of PROTOCOL_FEATURES) {
      const answer = await this.#post(client, PROTOCOL_PATHS[feature], {}, signal, false);
      const route = answer === undefined ? "untold" : routeAnswer(answer.status);
      if (route === "present") spoken.push(feature);
      if (route === "untold") untold = true;
    }
    return untold ? undefined : spoken;
  }

  /** #identify tells whether the server is Ollama: "ollama", or undefined for another server or no answer. */
  async #identify(client: UpstreamClient, signal: AbortSignal): Promise<string | undefined> {
    return (await this.#ask("engine", () => this.#askEngine(client, signal)))?.name;
  }

  /** #askEngine asks `GET /api/version`, which Ollama alone answers with `{"version": "..."}`; undefined without an answer. */
  async #askEngine(client: UpstreamClient, signal: AbortSignal): Promise<{ readonly name: string | undefined } | undefined> {
    let answer: ProbeAnswer;
    try {
      const response = await client.get(OLLAMA_VERSION_PATH, { signal, timeoutMs: this.#timeoutMs });
      answer = await probeAnswer(response.status, response.body, true);
    } catch (error) {
      if (signal.aborted || isConnectionFailure(error)) throw error;
      return undefined;
    }
    return { name: isOk(answer.status) && isOllamaVersion(answer.json) ? "ollama" : undefined };
  }

  /**
   * #post sends one probe and reads its answer's JSON when read is set and the status is 2xx; undefined when no
   * answer came in time, or one too long to read. A probe that cannot reach the server, or that signal cut short
   * (discovery stopping), throws.
   */
  async #post(client: UpstreamClient, path: string, body: unknown, signal: AbortSignal, read = true): Promise<ProbeAnswer | undefined> {
    try {
      const response = await client.postJson(path, Buffer.from(JSON.stringify(body)), { signal, timeoutMs: this.#timeoutMs });
      return await probeAnswer(response.status, response.body, read);
    } catch (error) {
      if (signal.aborted || isConnectionFailure(error)) throw error;
      return undefined;
    }
  }
}

/** probeAnswer reads a 2xx body's JSON when read is set (undefined when it is not JSON), and discards any other. */
async function probeAnswer(status: number, body: Parameters<typeof readBody>[0], read: boolean): Promise<ProbeAnswer> {
  if (!read || !isOk(status)) {
    await body.dump();
    return { status };
  }
  const text = (await readBody(body, MAX_PROBE_BYTES)).toString("utf8");
  try {
    return { status, json: JSON.parse(text) as unknown };
  } catch {
    return { status };
  }
}

/**
 * isEmbeddingAnswer recognizes an OpenAI embeddings answer: `data` whose first entry carries an `embedding` (numbers,
 * or base64). A server that answers every path with its model list (`data` of models) does not pass.
 */
export function isEmbeddingAnswer(json: unknown): boolean {
  const data = isObject(json) ? json["data"] : undefined;
  const first: unknown = Array.isArray(data) ? data[0] : undefined;
  return isObject(first) && (Array.isArray(first["embedding"]) || typeof first["embedding"] === "string");
}

/** isRerankAnswer recognizes a rerank answer (llama-server's, Jina's, Cohere's): `results` scored by relevance. */
export function isRerankAnswer(json: unknown): boolean {
  const results = isObject(json) ? json["results"] : undefined;
  return (
    Array.isArray(results) &&
    results.length > 0 &&
    results.every((result) => isObject(result) && typeof result["relevance_score"] === "number")
  );
}

function isOk(status: number): boolean {
  return status >= 200 && status < 300;
}
