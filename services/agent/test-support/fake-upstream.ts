import { readFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";

/** SAMPLES is the folder of real llama-server exchanges (see its README). */
export const SAMPLES = fileURLToPath(new URL("../../../test/fixtures/llama-server", import.meta.url));

/** sampleBody is the exact body bytes of a captured llama-server exchange. */
export function sampleBody(name: string): Buffer {
  return readFileSync(`${SAMPLES}/${name}.body`);
}

/** sampleHead is a captured exchange's status and Content-Type. */
export function sampleHead(name: string): { status: number; contentType: string } {
  const lines = readFileSync(`${SAMPLES}/${name}.headers`, "utf8").split(/\r?\n/);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? "")?.[1]);
  const contentType = lines.find((line) => /^content-type:/i.test(line))?.replace(/^content-type:\s*/i, "") ?? "";
  return { status, contentType };
}

/** FakeRequest is a request the fake upstream received. */
export interface FakeRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** FakeHandler answers one request. */
export type FakeHandler = (request: FakeRequest, response: ServerResponse) => void;

/**
 * FakeUpstream is a tiny node:http model server for tests that need exact control of the bytes and of failures:
 * it replays real llama-server captures, and records every request and every request whose client went away.
 */
export interface FakeUpstream {
  readonly url: string;
  readonly port: number;
  readonly requests: FakeRequest[];
  /** aborted lists requests whose connection closed before their answer was complete. */
  readonly aborted: FakeRequest[];
  /** handler answers every request; replace it per test. */
  handler: FakeHandler;
  /** close stops listening and cuts every connection. */
  close(): Promise<void>;
  /** reopen listens again on the same port. */
  reopen(): Promise<void>;
}

/** startFakeUpstream starts a fake upstream on 127.0.0.1, by default on a free port. */
export async function startFakeUpstream(handler: FakeHandler = llamaServer(), port = 0): Promise<FakeUpstream> {
  let server: Server = makeServer();
  const fake = {
    url: "",
    port: 0,
    requests: [] as FakeRequest[],
    aborted: [] as FakeRequest[],
    handler,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
    reopen: async () => {
      server = makeServer();
      await listen(server, fake.port);
    },
  };

  function makeServer(): Server {
    return createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const request: FakeRequest = {
          method: req.method ?? "",
          path: req.url ?? "",
          headers: req.headers,
          body: Buffer.concat(chunks),
        };
        fake.requests.push(request);
        res.once("close", () => {
          if (!res.writableFinished) fake.aborted.push(request);
        });
        fake.handler(request, res);
      });
    });
  }

  fake.port = await listen(server, port);
  fake.url = `http://127.0.0.1:${fake.port}`;
  return fake;
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve((server.address() as AddressInfo).port));
  });
}

/**
 * LlamaBuild is the llama-server a fake answers like: "chat" was started to chat (the captures' `tiny-llama`: no
 * embeddings or rerank, a 501 for each), "embeddings" with `--embeddings` (the captures' `tiny-embed`: it embeds, and
 * still chats), "older" is a build that predates the embeddings, rerank, Responses and Anthropic routes (404 there).
 */
export type LlamaBuild = "chat" | "embeddings" | "older";

/**
 * llamaServer answers like the captured llama-server: /v1/models and /props, and chat, completions, embeddings, rerank,
 * responses, messages and count_tokens replayed from the samples, as the build serves them (see LlamaBuild); streamed
 * ones in small pieces (a few bytes each) so that events arrive split across reads. A request without what a route
 * needs (`input`, `messages`) gets the 400 llama-server answers a chat request without messages.
 */
export function llamaServer(build: LlamaBuild = "chat"): FakeHandler {
  return (request, response) => {
    if (request.method === "GET" && request.path === "/v1/models")
      return replay(response, build === "embeddings" ? "models_embed" : "models");
    if (request.method === "GET" && request.path === "/props") return replay(response, "props");
    const body = JSON.parse(request.body.toString("utf8") || "{}") as { stream?: boolean; input?: unknown; messages?: unknown };
    if (request.path === "/v1/chat/completions") {
      if (build === "embeddings") return replay(response, "chat_on_embed_server");
      return replay(response, body.stream ? "chat_stream" : "chat_nonstream", 7);
    }
    if (request.path === "/v1/completions") return replay(response, body.stream ? "completions_stream" : "completions", 7);
    if (build === "older" || request.method !== "POST") return replay(response, "err_404");
    switch (request.path) {
      case "/v1/embeddings":
        if (build !== "embeddings") return replay(response, "embeddings_on_chat_server");
        return replay(response, typeof body.input === "string" ? "embeddings_single" : "embeddings");
      case "/v1/rerank":
        return replay(response, "rerank");
      case "/v1/responses":
        if (body.input === undefined) return replay(response, "err_missing_messages");
        return replay(response, body.stream ? "responses_stream" : "responses", 7);
      case "/v1/messages":
        if (body.messages === undefined) return replay(response, "err_missing_messages");
        return replay(response, body.stream ? "messages_stream" : "messages", 7);
      case "/v1/messages/count_tokens":
        return replay(response, body.messages === undefined ? "err_missing_messages" : "messages_count_tokens");
      default:
        return replay(response, "err_404");
    }
  };
}

/** replay writes a captured exchange: status, Content-Type and the exact body, in pieces of pieceBytes when given. */
export function replay(response: ServerResponse, sample: string, pieceBytes?: number): void {
  const { status, contentType } = sampleHead(sample);
  const body = sampleBody(sample);
  response.writeHead(status, { "content-type": contentType });
  if (pieceBytes === undefined) {
    response.end(body);
    return;
  }
  let at = 0;
  const next = () => {
    if (response.destroyed) return;
    if (at >= body.length) return void response.end();
    response.write(body.subarray(at, at + pieceBytes));
    at += pieceBytes;
    setImmediate(next);
  };
  next();
}

/** ssePayloads are the data payloads of a captured llama-server stream, each `data: ` line's rest, as bytes. */
export function ssePayloads(sample: string): Buffer[] {
  return sampleBody(sample)
    .toString("utf8")
    .split("\n\n")
    .filter((frame) => frame.startsWith("data: "))
    .map((frame) => Buffer.from(frame.slice("data: ".length), "utf8"));
}
