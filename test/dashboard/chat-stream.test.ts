import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { expect } from "chai";
import { ApiError } from "../../dashboard/src/api.js";
import { type ChatStreamEvent, chatStreamEvents, streamChat } from "../../dashboard/src/chat-stream.js";
import { waitFor } from "../support/wait-for.js";

// The playground's reading of a streamed chat answer, fed real llama-server captures: through a stubbed fetch where
// the exact chunk boundaries matter, and through a real HTTP server on port 0 where cancellation does.

const FIXTURES = new URL("../fixtures/llama-server/", import.meta.url);
const fixture = (name: string): Buffer => readFileSync(new URL(name, FIXTURES));

/** firstFrames are the first events of a captured stream, as it sent them. */
function firstFrames(name: string, count: number): Buffer {
  const frames = fixture(name).toString("utf8").split("\n\n").slice(0, count);
  return Buffer.from(frames.map((frame) => `${frame}\n\n`).join(""));
}

/** TEXT is what the captured streams say, one delta per chunk; their first chunk (role only) and last (finish) say nothing. */
const TEXT = ["ott", " XV", " configured", " laughed", "Over"].map(
  (content): ChatStreamEvent => ({ kind: "delta", content, reasoning: "" }),
);

/** USAGE is chat_stream_usage's last chunk's usage. */
const USAGE: ChatStreamEvent = { kind: "usage", usage: { prompt_tokens: 31, completion_tokens: 5 } };

const SSE_HEADERS = { "content-type": "text/event-stream" };

/** sse frames data payloads as server-sent events. */
function sse(...payloads: readonly (string | object)[]): Buffer {
  return Buffer.from(payloads.map((payload) => `data: ${typeof payload === "string" ? payload : JSON.stringify(payload)}\n\n`).join(""));
}

/** delta is a chat.completion.chunk with one choice's delta. */
function delta(fields: Readonly<Record<string, unknown>>): object {
  return { object: "chat.completion.chunk", choices: [{ index: 0, delta: fields, finish_reason: null }] };
}

/** Body is a response body delivered in chunks of the given sizes, in turn; drained says whether it was read to its end. */
interface Body {
  readonly stream: ReadableStream<Uint8Array<ArrayBuffer>>;
  readonly drained: () => boolean;
}

/** bodyOf delivers bytes as a body, in chunks of the given sizes (all at once by default). */
function bodyOf(bytes: Uint8Array, sizes: readonly number[] = [bytes.byteLength]): Body {
  let offset = 0;
  let turn = 0;
  let drained = false;
  const stream = new ReadableStream<Uint8Array<ArrayBuffer>>({
    pull(controller) {
      if (offset >= bytes.byteLength) {
        drained = true;
        controller.close();
        return;
      }
      const size = sizes[turn++ % sizes.length] ?? 1;
      controller.enqueue(new Uint8Array(bytes.subarray(offset, offset + size)));
      offset += size;
    },
  });
  return { stream, drained: () => drained };
}

/** collect reads events until the stream ends or fails, and keeps both what came and how it ended. */
async function collect(events: AsyncIterable<ChatStreamEvent>): Promise<{ events: ChatStreamEvent[]; error: unknown }> {
  const seen: ChatStreamEvent[] = [];
  try {
    for await (const event of events) seen.push(event);
  } catch (error) {
    return { events: seen, error };
  }
  return { events: seen, error: undefined };
}

/** apiError is an ApiError's fields, for one whole-shape comparison. */
function apiError(error: unknown): unknown {
  return error instanceof ApiError ? { name: error.name, status: error.status, message: error.message, code: error.code } : error;
}

const realFetch = globalThis.fetch;

/** Sent is one request the stubbed fetch received. */
interface Sent {
  readonly url: string;
  readonly init: RequestInit | undefined;
}

/** answerWith makes fetch answer every request with what respond returns, and records the requests. */
function answerWith(respond: () => Response): Sent[] {
  const sent: Sent[] = [];
  globalThis.fetch = (async (input: string | URL | Request, init?: RequestInit) => {
    sent.push({ url: String(input), init });
    return respond();
  }) as typeof fetch;
  return sent;
}

const MESSAGES = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Hello" },
] as const;

describe("chat-stream", () => {
  afterEach(() => {
    globalThis.fetch = realFetch;
  });

  describe("streamChat", () => {
    it("posts a streamed chat completion that asks for usage, and yields the text, then the usage, in order", async () => {
      const sent = answerWith(() => new Response(bodyOf(fixture("chat_stream_usage.body")).stream, { headers: SSE_HEADERS }));
      const abort = new AbortController();
      const { events, error } = await collect(streamChat("tiny-llama", MESSAGES, abort.signal));
      expect(error).to.equal(undefined);
      expect(events).to.deep.equal([...TEXT, USAGE]);
      expect(sent).to.have.length(1);
      const [{ url, init } = { url: "", init: undefined }] = sent;
      expect(url).to.equal("/v1/chat/completions");
      expect(init?.method).to.equal("POST");
      expect(init?.signal).to.equal(abort.signal);
      expect(init?.credentials).to.equal("same-origin");
      expect(Object.fromEntries(new Headers(init?.headers))).to.deep.equal({
        "content-type": "application/json",
        accept: "text/event-stream",
      });
      expect(JSON.parse(String(init?.body))).to.deep.equal({
        model: "tiny-llama",
        messages: MESSAGES,
        stream: true,
        stream_options: { include_usage: true },
      });
    });

    it("yields only the text when the stream reports no usage", async () => {
      answerWith(() => new Response(bodyOf(fixture("chat_stream.body")).stream, { headers: SSE_HEADERS }));
      expect(await collect(streamChat("tiny-llama", MESSAGES, new AbortController().signal))).to.deep.equal({
        events: TEXT,
        error: undefined,
      });
    });

    it("throws the gateway's refusal as an ApiError with its message and code, before any event", async () => {
      const envelope = {
        error: {
          message: "The model 'gpt-9' is not served on this mesh.",
          type: "invalid_request_error",
          param: "model",
          code: "model_not_found",
        },
      };
      answerWith(() => new Response(JSON.stringify(envelope), { status: 404, headers: { "content-type": "application/json" } }));
      const { events, error } = await collect(streamChat("gpt-9", MESSAGES, new AbortController().signal));
      expect(events).to.deep.equal([]);
      expect(apiError(error)).to.deep.equal({ name: "ApiError", status: 404, message: envelope.error.message, code: "model_not_found" });
    });

    it("throws llama-server's own refusal of a streamed call with its message; its numeric code is no code", async () => {
      answerWith(
        () => new Response(fixture("err_ctx_exceeded_stream.body"), { status: 400, headers: { "content-type": "application/json" } }),
      );
      const { events, error } = await collect(streamChat("tiny-llama", MESSAGES, new AbortController().signal));
      expect(events).to.deep.equal([]);
      expect(apiError(error)).to.deep.equal({
        name: "ApiError",
        status: 400,
        message: "request (728 tokens) exceeds the available context size (256 tokens), try increasing it",
        code: undefined,
      });
    });

    it("says so when a successful answer has no body", async () => {
      answerWith(() => new Response(null, { status: 204 }));
      const { error } = await collect(streamChat("tiny-llama", MESSAGES, new AbortController().signal));
      expect(apiError(error)).to.deep.equal({
        name: "ApiError",
        status: 204,
        message: "The gateway's answer had no body.",
        code: undefined,
      });
    });
  });

  describe("chatStreamEvents", () => {
    for (const name of ["chat_stream.body", "chat_stream_usage.body"]) {
      const whole = name === "chat_stream.body" ? TEXT : [...TEXT, USAGE];
      for (const sizes of [[1], [2], [3], [4], [5], [6], [7], [3, 1, 7, 2, 5, 1, 6, 4]]) {
        it(`reads ${name} delivered in ${sizes.join(", ")}-byte chunks`, async () => {
          expect(await collect(chatStreamEvents(bodyOf(fixture(name), sizes).stream, 200))).to.deep.equal({
            events: whole,
            error: undefined,
          });
        });
      }
    }

    it("keeps characters whole when their UTF-8 bytes arrive in different chunks", async () => {
      const body = sse(
        delta({ reasoning_content: "Größe → 大きさ" }),
        delta({ content: "🌍 héllo" }),
        delta({ content: "", reasoning_content: "…" }),
        "[DONE]",
      );
      expect(await collect(chatStreamEvents(bodyOf(body, [1]).stream, 200))).to.deep.equal({
        events: [
          { kind: "delta", content: "", reasoning: "Größe → 大きさ" },
          { kind: "delta", content: "🌍 héllo", reasoning: "" },
          { kind: "delta", content: "", reasoning: "…" },
        ],
        error: undefined,
      });
    });

    it("passes over keepalive comments and reads CRLF line ends", async () => {
      const body = Buffer.from(
        `: keepalive\r\n\r\ndata: ${JSON.stringify(delta({ content: "a" }))}\r\n\r\n: keepalive\n\ndata: [DONE]\r\n\r\n`,
      );
      expect(await collect(chatStreamEvents(bodyOf(body, [2]).stream, 200))).to.deep.equal({
        events: [{ kind: "delta", content: "a", reasoning: "" }],
        error: undefined,
      });
    });

    it("turns the mesh's error frame mid-stream into an ApiError after the text before it, reading the stream to its end", async () => {
      // The gateway ends an event stream that fails once begun with one error frame in its envelope; a chunk after it,
      // were there one, would not be part of the answer.
      const failure = {
        error: { message: "The provider went away mid-answer.", type: "upstream_error", param: null, code: "provider_lost" },
      };
      const body = bodyOf(Buffer.concat([firstFrames("chat_stream.body", 2), sse(failure), sse(delta({ content: "after" }))]), [5]);
      const { events, error } = await collect(chatStreamEvents(body.stream, 200));
      expect(events).to.deep.equal(TEXT.slice(0, 1));
      expect(apiError(error)).to.deep.equal({ name: "ApiError", status: 200, message: failure.error.message, code: "provider_lost" });
      expect(body.drained(), "the stream was read to its end").to.equal(true);
    });

    it("turns llama-server's error frame (no [DONE] after it) into an ApiError with its message and no code", async () => {
      const failure = { error: { code: 500, message: "Failed to decode the batch", type: "server_error" } };
      const body = bodyOf(Buffer.concat([firstFrames("chat_stream.body", 4), sse(failure)]), [7]);
      const { events, error } = await collect(chatStreamEvents(body.stream, 200));
      expect(events).to.deep.equal(TEXT.slice(0, 3));
      expect(apiError(error)).to.deep.equal({ name: "ApiError", status: 200, message: "Failed to decode the batch", code: undefined });
    });

    it("says the answer failed midway when an error frame has no message", async () => {
      const { error } = await collect(chatStreamEvents(bodyOf(sse({ error: { type: "server_error" } })).stream, 200));
      expect(apiError(error)).to.deep.equal({ name: "ApiError", status: 200, message: "The answer failed midway.", code: undefined });
    });

    it("fails on a frame that is not JSON, after the text before it", async () => {
      const { events, error } = await collect(
        chatStreamEvents(bodyOf(sse(delta({ content: "a" }), "<html>", delta({ content: "b" }))).stream, 200),
      );
      expect(events).to.deep.equal([{ kind: "delta", content: "a", reasoning: "" }]);
      expect(apiError(error)).to.deep.equal({
        name: "ApiError",
        status: 200,
        message: "The answer stream sent something that is not JSON.",
        code: undefined,
      });
    });

    it("reads usage with no prompt count as zero prompt tokens, and ignores a usage with no completion count", async () => {
      const body = sse({ choices: [], usage: { prompt_tokens: 3 } }, { choices: [], usage: { completion_tokens: 9 } }, "[DONE]");
      expect(await collect(chatStreamEvents(bodyOf(body).stream, 200))).to.deep.equal({
        events: [{ kind: "usage", usage: { prompt_tokens: 0, completion_tokens: 9 } }],
        error: undefined,
      });
    });
  });

  describe("over HTTP", () => {
    let server: Server;
    let handler: (req: IncomingMessage, res: ServerResponse) => void = () => {};

    /** carriers are the open connections that have carried a call. */
    const carriers = new Set<Socket>();

    before(async () => {
      server = createServer((req, res) => {
        carriers.add(req.socket);
        req.socket.once("close", () => carriers.delete(req.socket));
        handler(req, res);
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    });

    beforeEach(() => {
      // The dashboard calls the gateway by path, as a page of its origin does; Node's fetch needs the origin said.
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      globalThis.fetch = ((input: string | URL | Request, init?: RequestInit) =>
        realFetch(new URL(String(input), base), init)) as typeof fetch;
    });

    after(async () => {
      server.closeIdleConnections();
      await waitFor("every connection that carried a call to close", () => carriers.size === 0);
      // After an abort, fetch opens a connection ahead for the next call; it carried none, and is not the calls' to close.
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it("reads a llama-server stream replayed byte for byte", async () => {
      let request: { method: string | undefined; url: string | undefined; body: string } | undefined;
      handler = (req, res) => {
        let body = "";
        req.setEncoding("utf8").on("data", (text: string) => {
          body += text;
        });
        req.on("end", () => {
          request = { method: req.method, url: req.url, body };
          res.writeHead(200, { ...SSE_HEADERS, "x-accel-buffering": "no" });
          res.end(fixture("chat_stream_usage.body"));
        });
      };
      expect(await collect(streamChat("tiny-llama", MESSAGES, new AbortController().signal))).to.deep.equal({
        events: [...TEXT, USAGE],
        error: undefined,
      });
      expect(request?.method).to.equal("POST");
      expect(request?.url).to.equal("/v1/chat/completions");
      expect(JSON.parse(request?.body ?? "")).to.deep.include({ model: "tiny-llama", stream: true });
    });

    it("throws an AbortError from the pending read when aborted, and the server sees the call end", async () => {
      const closed = new Promise<boolean>((resolve) => {
        handler = (req, res) => {
          req.resume();
          res.writeHead(200, SSE_HEADERS);
          // The first words, then the model is slow: the answer is still going when the reader stops it.
          res.write(sse(delta({ content: "first" })));
          res.on("close", () => resolve(res.writableFinished));
        };
      });
      const abort = new AbortController();
      const events = streamChat("tiny-llama", MESSAGES, abort.signal)[Symbol.asyncIterator]();
      expect(await events.next()).to.deep.equal({ done: false, value: { kind: "delta", content: "first", reasoning: "" } });
      const pending = events.next();
      abort.abort();
      const error = await pending.then(
        () => undefined,
        (failure: unknown) => failure,
      );
      expect(error).to.be.instanceOf(Error);
      expect((error as Error).name).to.equal("AbortError");
      expect(await closed, "the answer was cut, not finished").to.equal(false);
    });

    it("throws an AbortError when aborted before the answer's head arrives", async () => {
      // Wrapped, as a promise resolved with a promise would wait for it.
      const arrived = new Promise<{ closed: Promise<boolean> }>((resolveArrived) => {
        handler = (req, res) => {
          req.resume();
          resolveArrived({ closed: new Promise<boolean>((resolve) => res.on("close", () => resolve(res.headersSent))) });
        };
      });
      const abort = new AbortController();
      const outcome = collect(streamChat("tiny-llama", MESSAGES, abort.signal));
      const { closed } = await arrived;
      abort.abort();
      const { events, error } = await outcome;
      expect(events).to.deep.equal([]);
      expect((error as Error | undefined)?.name).to.equal("AbortError");
      expect(await closed, "the server saw the call end with no answer sent").to.equal(false);
    });
  });
});
