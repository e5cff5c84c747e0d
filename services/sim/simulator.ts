import { EventEmitter } from "node:events";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { newCompletionId } from "./completion-id.js";
import { Generation } from "./generation.js";
import type { GenerationKind } from "./generation-request.js";
import { parseGenerationRequest } from "./generation-request.js";
import { sendError, sendJson } from "./http-replies.js";
import { jsonParseErrorMessage } from "./json-parse-error.js";
import { INVALID_API_KEY, NOT_FOUND, serverError } from "./llama-errors.js";
import { HEALTH_OK_BODY, modelsListBody, propsBody } from "./llama-payloads.js";
import type { ResolvedModel, SimulatorConfig, SimulatorOptions } from "./simulator-options.js";
import { MAX_CHOICES, resolveSimulatorOptions } from "./simulator-options.js";

export type { SimOverrides } from "./generation-request.js";
export { expectedCompletionText, promptTokenCount } from "./simulated-text.js";
export type { FailureMode, FailureSpec, SimulatedModel, SimulatorOptions } from "./simulator-options.js";

/** DEFAULT_WAIT_TIMEOUT_MS is how long waitForAbort and waitForRequest wait when the caller names no deadline. */
export const DEFAULT_WAIT_TIMEOUT_MS = 2000;
/** DEFAULT_HOST keeps the simulator on loopback unless asked otherwise. */
export const DEFAULT_HOST = "127.0.0.1";
/** KEEP_ALIVE_TIMEOUT_MS matches llama-server's `Keep-Alive: timeout=5`. */
const KEEP_ALIVE_TIMEOUT_MS = 5000;

/** SeenRequest is one request the simulator received, recorded for tests. */
export interface SeenRequest {
  /** id is the completion id (`chatcmpl-…`) for chat and completion requests, `req-<n>` for the others. */
  readonly id: string;
  readonly method: string;
  /** path is the request path without its query string. */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** body is the parsed JSON body, the raw text when it was not JSON, or undefined for a request without a body. */
  readonly body: unknown;
  /** atMs is when the request (and its body) had arrived, by SimulatorOptions.now. */
  readonly atMs: number;
}

/** AbortedRequest is a chat or completion request whose client went away before the answer finished. */
export interface AbortedRequest {
  /** id is the completion id the answer carried (or would have carried). */
  readonly id: string;
  readonly path: string;
  /** model is the model name the client asked for, when its body was read and named one. */
  readonly model: string | undefined;
  /** atMs is when the simulator saw the connection close, by SimulatorOptions.now. */
  readonly atMs: number;
  readonly stream: boolean;
  /** tokensSent is how many tokens (per choice) had been produced when the client left. */
  readonly tokensSent: number;
}

/** SimulatorEvents are the events Simulator.events emits. */
export interface SimulatorEvents {
  abort: [AbortedRequest];
  request: [SeenRequest];
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
 * Chat and completion bodies may carry the simulator's own `sim` object to pace or fail one request (SimOverrides).
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
  /** requestCounts counts requests by path since the start or the last reset. */
  readonly requestCounts: ReadonlyMap<string, number>;
  /** activeGenerations is the number of answers being produced (stalled ones included). */
  readonly activeGenerations: number;
  /** openConnections is the number of open client connections. */
  readonly openConnections: number;
  /** events emits "request" once a request's body is read and "abort" when a client leaves early. */
  readonly events: EventEmitter<SimulatorEvents>;
  /**
   * waitForAbort resolves with the first recorded abort matching predicate, already recorded or to come, and rejects
   * after timeoutMs.
   */
  waitForAbort(predicate?: (aborted: AbortedRequest) => boolean, timeoutMs?: number): Promise<AbortedRequest>;
  /** waitForRequest is waitForAbort for received requests. */
  waitForRequest(predicate?: (request: SeenRequest) => boolean, timeoutMs?: number): Promise<SeenRequest>;
  /** reset forgets recorded requests, aborts and counts. */
  reset(): void;
}

type Route = "models" | "health" | "props" | GenerationKind;

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
]);

/** PUBLIC_PATHS answer without an API key, as llama-server's health endpoints do. */
const PUBLIC_PATHS: ReadonlySet<string> = new Set(["/health", "/v1/health"]);

/** Exchange tracks one chat or completion request, for abort reporting; it holds no body. */
interface Exchange {
  readonly id: string;
  readonly path: string;
  model: string | undefined;
  stream: boolean;
  generation: Generation | undefined;
}

/** createSimulator builds a llama-server simulator FIXTURE; call listen() to serve it. */
export function createSimulator(options: SimulatorOptions = {}): Simulator {
  const config = resolveSimulatorOptions(options);
  const firstModel = config.models[0];
  if (firstModel === undefined) throw new Error("simulator option models: at least one model is required");
  const defaultModel: ResolvedModel = firstModel;
  const startedSeconds = Math.floor(config.now() / 1000);
  const events = new EventEmitter<SimulatorEvents>();
  const requests = new BoundedLog<SeenRequest>(config.maxRecordedRequests);
  const aborted = new BoundedLog<AbortedRequest>(config.maxRecordedRequests);
  const counts = new Map<string, number>();
  const active = new Set<Generation>();
  let otherRequests = 0;
  const sockets = new Set<Socket>();
  let closing = false;
  let url: string | undefined;

  const server = createServer({ keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS, noDelay: true }, (req, res) => {
    res.sendDate = false;
    const rawUrl = req.url ?? "/";
    const query = rawUrl.indexOf("?");
    const path = query === -1 ? rawUrl : rawUrl.slice(0, query);
    counts.set(path, (counts.get(path) ?? 0) + 1);
    const route = (req.method === "POST" ? POST_ROUTES : req.method === "GET" ? GET_ROUTES : undefined)?.get(path);
    const exchange: Exchange | undefined = route === "chat" || route === "completion"
      ? { id: newCompletionId(), path, model: undefined, stream: false, generation: undefined }
      : undefined;
    if (exchange !== undefined) watchForAbort(res, exchange);
    const id = exchange?.id ?? `req-${++otherRequests}`;

    if (req.method !== "POST") {
      see({ id, method: req.method ?? "", path, headers: req.headers, body: undefined, atMs: config.now() });
      answer(req, res, path, route, undefined, exchange);
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

  function forget(generation: Generation): void {
    active.delete(generation);
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
    posted: PostedBody | undefined,
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
        if (exchange !== undefined) generate(res, route, posted ?? { raw: Buffer.alloc(0), body: parseBody(Buffer.alloc(0)) }, exchange);
        return;
    }
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
    const identity = {
      id: exchange.id,
      created: Math.floor(config.now() / 1000),
      model: parsed.request.model.id,
      systemFingerprint: config.systemFingerprint,
    };
    const generation = new Generation(res, parsed.request, identity, forget);
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
    reset() {
      requests.clear();
      aborted.clear();
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
