import { EventEmitter } from "node:events";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { answerFormatFor } from "./answer-formats.js";
import { newCompletionId, newResponseId } from "./completion-id.js";
import { answerCountTokens } from "./count-tokens-route.js";
import type { EmbeddingsApi } from "./embedding-route.js";
import { answerEmbeddings } from "./embedding-route.js";
import type { FormOutcome, ReceivedForm } from "./form-upload.js";
import { receiveForm } from "./form-upload.js";
import { Generation } from "./generation.js";
import type { GenerationKind } from "./generation-request.js";
import { parseGenerationRequest } from "./generation-request.js";
import { sendError, sendJson } from "./http-replies.js";
import { answerImageEdit, answerImageGeneration } from "./image-routes.js";
import { jsonParseErrorMessage } from "./json-parse-error.js";
import { INVALID_API_KEY, NOT_FOUND, serverError } from "./llama-errors.js";
import { HEALTH_OK_BODY, modelsListBody, propsBody } from "./llama-payloads.js";
import type { JsonBody } from "./llama-replies.js";
import type { MediaContext } from "./media-replies.js";
import { INVALID_JSON_BODY } from "./openai-errors.js";
import type { PacedAnswerPlan } from "./paced-answer.js";
import { PacedAnswer } from "./paced-answer.js";
import { answerRerank } from "./rerank-route.js";
import type { ResolvedModel, SimulatedProtocol, SimulatorConfig, SimulatorOptions } from "./simulator-options.js";
import { MAX_CHOICES, resolveSimulatorOptions } from "./simulator-options.js";
import { answerSpeech } from "./speech-route.js";
import { answerTranscription } from "./transcription-route.js";
import { answerTranslation } from "./translation-route.js";

export type { SpeechFormat } from "./audio-encoder.js";
export { SPEECH_CONTENT_TYPES, SPEECH_FORMATS } from "./audio-encoder.js";
export { EMBEDDINGS_NOT_SUPPORTED } from "./embedding-route.js";
export type { ReceivedFile, ReceivedForm } from "./form-upload.js";
export type { PngSize } from "./png-encoder.js";
export { pngDimensions } from "./png-encoder.js";
export { RERANKING_NOT_SUPPORTED } from "./rerank-route.js";
export type { SimOverrides } from "./sim-overrides.js";
export type { EmbeddingPrompt } from "./simulated-embedding.js";
export { EMBEDDING_DIMENSIONS, embeddingBase64, embeddingTokenCount, expectedEmbedding } from "./simulated-embedding.js";
export { expectedEditedPng, expectedGeneratedPng } from "./simulated-images.js";
export type { RankedDocument } from "./simulated-rerank.js";
export { expectedRanking, relevanceScore, rerankTokenCount } from "./simulated-rerank.js";
export {
  expectedSpeech,
  SPEECH_CHUNK_COUNT,
  SPEECH_MS_PER_CHARACTER,
  SPEECH_SAMPLE_RATE,
  speechDurationMs,
  speechSampleCount,
} from "./simulated-speech.js";
export { expectedCompletionText, promptTokenCount } from "./simulated-text.js";
export type { SimulatedTranscript, TranscriptSegment, TranscriptWord } from "./simulated-transcript.js";
export { audioDurationSeconds, expectedTranscript, expectedTranscription, expectedTranslation } from "./simulated-transcript.js";
export type { FailureMode, FailureSpec, ModelKind, SimulatedModel, SimulatedProtocol, SimulatorOptions } from "./simulator-options.js";
export { SIMULATED_PROTOCOLS } from "./simulator-options.js";
export { testWav, wavBytes, wavDurationSeconds } from "./wav-encoder.js";

/** DEFAULT_WAIT_TIMEOUT_MS is how long waitForAbort and waitForRequest wait when the caller names no deadline. */
export const DEFAULT_WAIT_TIMEOUT_MS = 2000;
/** DEFAULT_HOST keeps the simulator on loopback unless asked otherwise. */
export const DEFAULT_HOST = "127.0.0.1";
/** KEEP_ALIVE_TIMEOUT_MS matches llama-server's `Keep-Alive: timeout=5`. */
const KEEP_ALIVE_TIMEOUT_MS = 5000;

/** SeenRequest is one request the simulator received, recorded for tests. */
export interface SeenRequest {
  /**
   * id is the answer's id for generations: `chatcmpl-…` for chat, completions and /v1/messages, `resp_…` for
   * /v1/responses; `req-<n>` for the others.
   */
  readonly id: string;
  readonly method: string;
  /** path is the request path without its query string. */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /**
   * body is the parsed JSON body, the raw text when it was not JSON, or undefined for a request without a body and
   * for multipart requests (see form).
   */
  readonly body: unknown;
  /** form is what a multipart request (transcriptions, image edits) carried: its fields and its files' digests. */
  readonly form?: ReceivedForm;
  /** atMs is when the request (and its body) had arrived, by SimulatorOptions.now. */
  readonly atMs: number;
}

/** AbortedRequest is a request that produces an answer whose client went away before the answer finished. */
export interface AbortedRequest {
  /** id is the completion id the answer carried (or would have carried). */
  readonly id: string;
  readonly path: string;
  /** model is the model name the client asked for, when its body was read and named one. */
  readonly model: string | undefined;
  /** atMs is when the simulator saw the connection close, by SimulatorOptions.now. */
  readonly atMs: number;
  readonly stream: boolean;
  /**
   * tokensSent is how many tokens (per choice) had been produced when the client left; for media answers, how many
   * units: transcript words, image stream events or speech chunks.
   */
  readonly tokensSent: number;
}

/** FinishedAnswer is an answer the simulator wrote completely (its last byte handed to the socket). */
export interface FinishedAnswer {
  /** id is the id of the request's SeenRequest. */
  readonly id: string;
  readonly path: string;
  readonly status: number;
  /** atMs is when the answer was finished, by SimulatorOptions.now; compare it with when a client got its first byte. */
  readonly atMs: number;
}

/** SimulatorEvents are the events Simulator.events emits. */
export interface SimulatorEvents {
  abort: [AbortedRequest];
  request: [SeenRequest];
  finish: [FinishedAnswer];
}

/** ListeningAddress is where a listening simulator can be reached. */
export interface ListeningAddress {
  /** url is the base URL without a trailing slash, e.g. "http://127.0.0.1:41234"; append "/v1" for OpenAI clients. */
  readonly url: string;
  readonly port: number;
}

/**
 * Simulator is a test, demo and benchmark FIXTURE that imitates llama.cpp's llama-server over HTTP: its routes,
 * headers, bodies, SSE framing and errors, with deterministic text (see expectedCompletionText), configurable pacing
 * and injectable failures. It is a plain node:http server, lean enough to be the "direct" baseline of benchmarks.
 * llm models answer chat, completions, OpenAI's /v1/responses and Anthropic's /v1/messages (and count_tokens), the
 * last two unless SimulatorOptions.protocols leaves them out; models of kind "embedding" answer /v1/embeddings
 * (expectedEmbedding) and "rerank" models /v1/rerank (expectedRanking), anything else there getting llama-server's
 * 501. Models of the media kinds serve OpenAI's media endpoints with real, decodable content derived
 * deterministically from the request: /v1/audio/transcriptions (expectedTranscript), /v1/audio/translations
 * (expectedTranslation), /v1/images/generations and /v1/images/edits (PNGs of the requested size,
 * expectedGeneratedPng, expectedEditedPng) and /v1/audio/speech (audio lasting speechDurationMs, streamed in
 * chunks, expectedSpeech).
 * Request bodies may carry the simulator's own `sim` object to pace or fail one request (SimOverrides).
 */
export interface Simulator {
  /** listen opens the port (0, the default, picks a free one) on host (DEFAULT_HOST by default). */
  listen(port?: number, host?: string): Promise<ListeningAddress>;
  /** close stops every generation and closes the server and all its connections, keep-alive ones included. */
  close(): Promise<void>;
  /** config is the validated configuration. */
  readonly config: SimulatorConfig;
  /** url is the base URL once listening. */
  readonly url: string | undefined;
  /** requests are the most recent requests seen, oldest first (a copy). */
  readonly requests: readonly SeenRequest[];
  /** aborted are the most recent client aborts, oldest first (a copy). */
  readonly aborted: readonly AbortedRequest[];
  /** finished are the most recent completely written answers, oldest first (a copy). */
  readonly finished: readonly FinishedAnswer[];
  /** requestCounts counts requests by path since the start or the last reset. */
  readonly requestCounts: ReadonlyMap<string, number>;
  /** activeGenerations is the number of answers being produced (stalled ones included). */
  readonly activeGenerations: number;
  /** openConnections is the number of open client connections. */
  readonly openConnections: number;
  /**
   * events emits "request" once a request's body is read, "abort" when a client leaves early and "finish" when an
   * answer has been written completely.
   */
  readonly events: EventEmitter<SimulatorEvents>;
  /**
   * waitForAbort resolves with the first recorded abort matching predicate, already recorded or to come, and rejects
   * after timeoutMs.
   */
  waitForAbort(predicate?: (aborted: AbortedRequest) => boolean, timeoutMs?: number): Promise<AbortedRequest>;
  /** waitForRequest is waitForAbort for received requests. */
  waitForRequest(predicate?: (request: SeenRequest) => boolean, timeoutMs?: number): Promise<SeenRequest>;
  /** waitForFinish is waitForAbort for finished answers. */
  waitForFinish(predicate?: (answer: FinishedAnswer) => boolean, timeoutMs?: number): Promise<FinishedAnswer>;
  /** reset forgets recorded requests, aborts, finished answers and counts. */
  reset(): void;
}

/** MediaRoute names the OpenAI media endpoints. */
type MediaRoute = "transcription" | "translation" | "imageGeneration" | "imageEdit" | "speech";

/** ScoringRoute names llama-server's routes that answer numbers, not text: embeddings (both shapes) and rerank. */
type ScoringRoute = "embedding" | "nativeEmbedding" | "rerank";

type Route = "models" | "health" | "props" | "countTokens" | GenerationKind | MediaRoute | ScoringRoute;

const GET_ROUTES: ReadonlyMap<string, Route> = new Map<string, Route>([
  ["/v1/models", "models"],
  ["/models", "models"],
  ["/api/tags", "models"],
  ["/health", "health"],
  ["/v1/health", "health"],
  ["/props", "props"],
]);

const POST_ROUTES: ReadonlyMap<string, Route> = new Map<string, Route>([
  ["/v1/chat/completions", "chat"],
  ["/chat/completions", "chat"],
  ["/v1/completions", "completion"],
  ["/completions", "completion"],
  ["/v1/responses", "response"],
  ["/responses", "response"],
  ["/v1/messages", "message"],
  ["/v1/messages/count_tokens", "countTokens"],
  ["/v1/embeddings", "embedding"],
  // llama-server's own paths answer its own shape, not OpenAI's.
  ["/embeddings", "nativeEmbedding"],
  ["/embedding", "nativeEmbedding"],
  ["/v1/rerank", "rerank"],
  ["/rerank", "rerank"],
  ["/v1/reranking", "rerank"],
  ["/reranking", "rerank"],
  ["/v1/audio/transcriptions", "transcription"],
  ["/audio/transcriptions", "transcription"],
  ["/v1/audio/translations", "translation"],
  ["/audio/translations", "translation"],
  ["/v1/images/generations", "imageGeneration"],
  ["/images/generations", "imageGeneration"],
  ["/v1/images/edits", "imageEdit"],
  ["/images/edits", "imageEdit"],
  ["/v1/audio/speech", "speech"],
  ["/audio/speech", "speech"],
]);

/** PROTOCOL_ROUTES are the routes only a llama-server speaking their protocol serves (SimulatorOptions.protocols). */
const PROTOCOL_ROUTES: ReadonlyMap<Route, SimulatedProtocol> = new Map<Route, SimulatedProtocol>([
  ["response", "responses"],
  ["message", "messages"],
  ["countTokens", "count_tokens"],
]);

/** FORM_ROUTES take multipart/form-data bodies, which are streamed through the parser instead of buffered. */
const FORM_ROUTES: ReadonlySet<Route | undefined> = new Set<Route>(["transcription", "translation", "imageEdit"]);

/** ANSWERING_ROUTES produce answers that take time, so their client aborts are watched and recorded. */
const ANSWERING_ROUTES: ReadonlySet<Route | undefined> = new Set<Route>([
  "chat",
  "completion",
  "response",
  "message",
  "embedding",
  "nativeEmbedding",
  "rerank",
  "transcription",
  "translation",
  "imageGeneration",
  "imageEdit",
  "speech",
]);

/** PUBLIC_PATHS answer without an API key, as llama-server's health endpoints do. */
const PUBLIC_PATHS: ReadonlySet<string> = new Set(["/health", "/v1/health"]);

/** ActiveAnswer is an answer being produced: a chat or completion Generation, or a media PacedAnswer. */
interface ActiveAnswer {
  readonly tokensSent: number;
  readonly dropped: boolean;
  cancel(): void;
}

/** Exchange tracks one request that produces an answer, for abort reporting; it holds no body. */
interface Exchange {
  readonly id: string;
  readonly path: string;
  model: string | undefined;
  stream: boolean;
  generation: ActiveAnswer | undefined;
}

/** createSimulator builds a llama-server simulator FIXTURE; call listen() to serve it. */
export function createSimulator(options: SimulatorOptions = {}): Simulator {
  const config = resolveSimulatorOptions(options);
  const firstModel = config.models[0];
  if (firstModel === undefined) throw new Error("simulator option models: at least one model is required");
  const defaultModel: ResolvedModel = config.models.find((model) => model.kind === "llm") ?? firstModel;
  const startedSeconds = Math.floor(config.now() / 1000);
  const events = new EventEmitter<SimulatorEvents>();
  const requests = new BoundedLog<SeenRequest>(config.maxRecordedRequests);
  const aborted = new BoundedLog<AbortedRequest>(config.maxRecordedRequests);
  const finished = new BoundedLog<FinishedAnswer>(config.maxRecordedRequests);
  const counts = new Map<string, number>();
  const active = new Set<ActiveAnswer>();
  let otherRequests = 0;
  const sockets = new Set<Socket>();
  let closing = false;
  let url: string | undefined;

  /** routeOf finds a request's route; a protocol the simulator does not speak has none, as on an older llama-server. */
  function routeOf(method: string | undefined, path: string): Route | undefined {
    const route = (method === "POST" ? POST_ROUTES : method === "GET" ? GET_ROUTES : undefined)?.get(path);
    const protocol = route === undefined ? undefined : PROTOCOL_ROUTES.get(route);
    return protocol === undefined || config.protocols.includes(protocol) ? route : undefined;
  }

  const server = createServer({ keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS, noDelay: true }, (req, res) => {
    res.sendDate = false;
    const rawUrl = req.url ?? "/";
    const query = rawUrl.indexOf("?");
    const path = query === -1 ? rawUrl : rawUrl.slice(0, query);
    counts.set(path, (counts.get(path) ?? 0) + 1);
    const route = routeOf(req.method, path);
    const id = answerId(route) ?? `req-${++otherRequests}`;
    const exchange: Exchange | undefined = ANSWERING_ROUTES.has(route)
      ? { id, path, model: undefined, stream: false, generation: undefined }
      : undefined;
    if (exchange !== undefined) watchForAbort(res, exchange);
    res.once("finish", () => {
      if (closing) return;
      const record: FinishedAnswer = { id, path, status: res.statusCode, atMs: config.now() };
      finished.push(record);
      events.emit("finish", record);
    });

    if (req.method !== "POST") {
      see({ id, method: req.method ?? "", path, headers: req.headers, body: undefined, atMs: config.now() });
      answer(req, res, path, route, undefined, exchange);
      return;
    }
    if (FORM_ROUTES.has(route)) {
      void receiveForm(req, config.maxUploadBytes).then((outcome) => {
        if (outcome.kind === "aborted") return;
        const form = outcome.kind === "form" ? { form: outcome.form.record } : {};
        see({ id, method: "POST", path, headers: req.headers, body: undefined, ...form, atMs: config.now() });
        answer(req, res, path, route, outcome, exchange);
      });
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      const body = parseBody(raw);
      const recorded = body.valid ? body.value : raw.length === 0 ? undefined : raw.toString("utf8");
      see({ id, method: "POST", path, headers: req.headers, body: recorded, atMs: config.now() });
      answer(req, res, path, route, { raw, body }, exchange);
    });
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });

  function forget(answer: ActiveAnswer): void {
    active.delete(answer);
  }

  function see(seen: SeenRequest): void {
    requests.push(seen);
    events.emit("request", seen);
  }

  function answer(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    route: Route | undefined,
    posted: PostedBody | FormOutcome | undefined,
    exchange: Exchange | undefined,
  ): void {
    if (config.apiKey !== undefined && !PUBLIC_PATHS.has(path) && presentedKey(req.headers) !== config.apiKey) {
      sendError(res, INVALID_API_KEY);
      return;
    }
    switch (route) {
      case undefined:
        sendError(res, NOT_FOUND);
        return;
      case "models":
        sendJson(res, 200, modelsListBody(config.models, startedSeconds));
        return;
      case "health":
        sendJson(res, 200, HEALTH_OK_BODY);
        return;
      case "props":
        sendJson(res, 200, propsBody(defaultModel, config.systemFingerprint, MAX_CHOICES));
        return;
      case "chat":
      case "completion":
      case "response":
      case "message":
        if (exchange !== undefined) generate(res, route, isPostedBody(posted) ? posted : EMPTY_BODY, exchange);
        return;
      case "countTokens":
        answerCountTokens(res, jsonBody(posted), config);
        return;
      case "embedding":
      case "nativeEmbedding": {
        const api: EmbeddingsApi = route === "embedding" ? "openai" : "native";
        if (exchange !== undefined) answerEmbeddings(mediaContext(res, path, exchange), jsonBody(posted), api);
        return;
      }
      case "rerank":
        if (exchange !== undefined) answerRerank(mediaContext(res, path, exchange), jsonBody(posted));
        return;
      case "imageGeneration":
      case "speech": {
        const body = isPostedBody(posted) ? posted.body : EMPTY_BODY.body;
        if (exchange === undefined) return;
        if (!body.valid) sendError(res, INVALID_JSON_BODY);
        else if (route === "speech") answerSpeech(mediaContext(res, path, exchange), body.value);
        else answerImageGeneration(mediaContext(res, path, exchange), body.value);
        return;
      }
      case "transcription":
      case "translation":
      case "imageEdit":
        if (exchange === undefined || posted === undefined || isPostedBody(posted)) return;
        if (posted.kind === "refused") sendError(res, posted.error);
        else if (posted.kind === "form" && route === "transcription") answerTranscription(mediaContext(res, path, exchange), posted.form);
        else if (posted.kind === "form" && route === "translation") answerTranslation(mediaContext(res, path, exchange), posted.form);
        else if (posted.kind === "form") answerImageEdit(mediaContext(res, path, exchange), posted.form);
        return;
    }
  }

  function mediaContext(res: ServerResponse, path: string, exchange: Exchange): MediaContext {
    return {
      config,
      res,
      path,
      note(model, stream) {
        exchange.model = model;
        exchange.stream = stream;
      },
      play(plan: PacedAnswerPlan) {
        const answer = new PacedAnswer(res, plan, forget);
        exchange.generation = answer;
        active.add(answer);
        answer.start();
      },
    };
  }

  function generate(res: ServerResponse, kind: GenerationKind, posted: PostedBody, exchange: Exchange): void {
    if (!posted.body.valid) {
      // llama-server lets nlohmann's parse exception escape to its generic handler: a 500, not a 400.
      sendError(res, serverError(jsonParseErrorMessage(posted.raw)));
      return;
    }
    const body = posted.body.value;
    const fields = typeof body === "object" && body !== null ? (body as Readonly<Record<string, unknown>>) : {};
    exchange.model = typeof fields["model"] === "string" ? fields["model"] : undefined;
    exchange.stream = fields["stream"] === true;
    const parsed = parseGenerationRequest(kind, body, config);
    if (!parsed.ok) {
      sendError(res, parsed.error);
      return;
    }
    const generation = new Generation(res, parsed.request, answerFormatFor(parsed.request, exchange.id, config), forget);
    exchange.generation = generation;
    active.add(generation);
    generation.start();
  }

  function watchForAbort(res: ServerResponse, exchange: Exchange): void {
    res.once("close", () => {
      const generation = exchange.generation;
      if (res.writableFinished || generation?.dropped === true) return;
      generation?.cancel();
      if (closing) return;
      const record: AbortedRequest = {
        id: exchange.id,
        path: exchange.path,
        model: exchange.model,
        atMs: config.now(),
        stream: exchange.stream,
        tokensSent: generation?.tokensSent ?? 0,
      };
      aborted.push(record);
      events.emit("abort", record);
    });
  }

  function waitFor<K extends keyof SimulatorEvents>(
    event: K,
    recorded: readonly SimulatorEvents[K][0][],
    predicate: (value: SimulatorEvents[K][0]) => boolean,
    timeoutMs: number,
  ): Promise<SimulatorEvents[K][0]> {
    const found = recorded.find(predicate);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const listener = (value: SimulatorEvents[K][0]): void => {
        if (!predicate(value)) return;
        clearTimeout(timer);
        events.off(event, listener as never);
        resolve(value);
      };
      const timer = setTimeout(() => {
        events.off(event, listener as never);
        reject(new Error(`simulator: no matching ${event} within ${timeoutMs} ms`));
      }, timeoutMs);
      events.on(event, listener as never);
    });
  }

  return {
    config,
    events,
    get url() {
      return url;
    },
    get requests() {
      return requests.entries();
    },
    get aborted() {
      return aborted.entries();
    },
    get finished() {
      return finished.entries();
    },
    get requestCounts() {
      return new Map(counts);
    },
    get activeGenerations() {
      return active.size;
    },
    get openConnections() {
      return sockets.size;
    },
    listen(port = 0, host = DEFAULT_HOST) {
      closing = false;
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          const address = server.address() as AddressInfo;
          const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
          url = `http://${shownHost}:${address.port}`;
          resolve({ url, port: address.port });
        });
      });
    },
    async close() {
      closing = true;
      for (const generation of active) generation.cancel();
      if (server.listening) {
        await new Promise<void>((resolve, reject) => {
          server.close((error) => (error === undefined ? resolve() : reject(error)));
          server.closeAllConnections();
        });
      }
      // The server reports itself closed before its sockets emit "close"; wait for them so that openConnections is 0.
      await Promise.all([...sockets].map((socket) => new Promise((resolve) => socket.once("close", resolve))));
    },
    waitForAbort(predicate = () => true, timeoutMs = DEFAULT_WAIT_TIMEOUT_MS) {
      return waitFor("abort", aborted.entries(), predicate, timeoutMs);
    },
    waitForRequest(predicate = () => true, timeoutMs = DEFAULT_WAIT_TIMEOUT_MS) {
      return waitFor("request", requests.entries(), predicate, timeoutMs);
    },
    waitForFinish(predicate = () => true, timeoutMs = DEFAULT_WAIT_TIMEOUT_MS) {
      return waitFor("finish", finished.entries(), predicate, timeoutMs);
    },
    reset() {
      requests.clear();
      aborted.clear();
      finished.clear();
      counts.clear();
    },
  };
}

/**
 * presentedKey reads the API key the way llama-server does: the Authorization header (with or without "Bearer "),
 * else X-Api-Key.
 */
function presentedKey(headers: IncomingHttpHeaders): string | undefined {
  const authorization = headers.authorization;
  const raw = authorization !== undefined && authorization !== "" ? authorization : headerValue(headers["x-api-key"]);
  if (raw === undefined) return undefined;
  return raw.startsWith("Bearer ") ? raw.slice("Bearer ".length) : raw;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** ParsedBody is a request body parsed once, shared by the request record and the generation. */
type ParsedBody = { readonly valid: true; readonly value: unknown } | { readonly valid: false };

/** PostedBody is a POST body as received and as parsed. */
interface PostedBody {
  readonly raw: Buffer;
  readonly body: ParsedBody;
}

/** EMPTY_BODY stands for a POST without a body. */
const EMPTY_BODY: PostedBody = { raw: Buffer.alloc(0), body: { valid: false } };

function isPostedBody(posted: PostedBody | FormOutcome | undefined): posted is PostedBody {
  return posted !== undefined && "raw" in posted;
}

/**
 * jsonBody is a posted body as llama-server's routes read it: invalid JSON (an empty body included) is nlohmann's
 * parse exception, which escapes to llama-server's generic handler as a 500.
 */
function jsonBody(posted: PostedBody | FormOutcome | undefined): JsonBody {
  const { raw, body } = isPostedBody(posted) ? posted : EMPTY_BODY;
  return body.valid ? body : { valid: false, error: serverError(jsonParseErrorMessage(raw)) };
}

/** answerId is the id a generation's answer carries (and its request is recorded under); undefined for other routes. */
function answerId(route: Route | undefined): string | undefined {
  switch (route) {
    case "chat":
    case "completion":
    case "message":
      return newCompletionId();
    case "response":
      return newResponseId();
    default:
      return undefined;
  }
}

function parseBody(raw: Buffer): ParsedBody {
  try {
    return { valid: true, value: JSON.parse(raw.toString("utf8")) as unknown };
  } catch {
    return { valid: false };
  }
}

/**
 * BoundedLog keeps the most recent `limit` entries; it trims in batches so that recording stays O(1) amortised
 * under benchmark load.
 */
class BoundedLog<T> {
  private items: T[] = [];

  constructor(private readonly limit: number) {}

  push(item: T): void {
    if (this.limit === 0) return;
    this.items.push(item);
    if (this.items.length >= 2 * this.limit) this.items = this.items.slice(-this.limit);
  }

  entries(): readonly T[] {
    return this.items.length > this.limit ? this.items.slice(-this.limit) : this.items.slice();
  }

  clear(): void {
    this.items = [];
  }
}
