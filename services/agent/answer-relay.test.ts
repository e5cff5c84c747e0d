import { PassThrough } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { expect } from "chai";
import { InferenceCallSchema, Operation } from "../../gen/infermesh/v1/inference_pb.js";
import { systemClock } from "../shared/clock.js";
import { type BodyRelay, type CallOutcome, relayAnswer, relayEvents, type UpstreamExchange } from "./answer-relay.js";
import { headPart, type InferResponseInit, trailerPart } from "./inference-parts.js";
import { sampleBody, sampleHead } from "./test-support/fake-upstream.js";
import type { UpstreamClient, UpstreamResponse } from "./upstream-client.js";

const sse = (...data: string[]) => Buffer.from(data.map((d) => `data: ${d}\n\n`).join(""));

/** shape names each message's parts: "head", "event:a", "trailer". */
function shape(message: InferResponseInit): string[] {
  const parts = message.part ? [message.part] : (message.parts ?? []);
  return parts.map((part) => {
    const p = part.part;
    if (p?.case === "event") return `event:${new TextDecoder().decode(p.value.data)}`;
    return String(p?.case);
  });
}

const exchange: UpstreamExchange = {
  client: undefined as unknown as UpstreamClient,
  server: "the local llm server",
  path: "/v1/chat/completions",
  call: create(InferenceCallSchema, { model: "m" }),
  signal: new AbortController().signal,
  timeoutMs: 1_000,
  maxBodyBytes: 1_000_000,
  onHeaders: () => {},
  onFailure: () => {},
  clock: systemClock,
};

describe("relayEvents", () => {
  async function relay(body: PassThrough, afterFirst?: () => void): Promise<string[][]> {
    const response: UpstreamResponse = { status: 200, contentType: "text/event-stream", body: body as unknown as UpstreamResponse["body"] };
    const messages: string[][] = [];
    for await (const message of relayEvents(exchange, response)) {
      messages.push(shape(message));
      if (messages.length === 1) afterFirst?.();
    }
    return messages;
  }

  it("sends the events one read completes in one message, with the head when they came with the headers", async () => {
    const body = new PassThrough();
    body.write(sse("a", "b", "c"));
    const messages = await relay(body, () => {
      body.write(sse("d"));
      body.end(sse("e", "[DONE]"));
    });
    expect(messages[0]).to.deep.equal(["head", "event:a", "event:b", "event:c"]);
    expect(messages.slice(1, -1).flat()).to.deep.equal(["event:d", "event:e", "event:[DONE]"]);
    expect(messages.at(-1)).to.deep.equal(["trailer"]);
  });

  it("sends the head at once when no event has arrived yet, as for a long prompt", async () => {
    const body = new PassThrough();
    const messages = await relay(body, () => body.end(sse("a")));
    expect(messages).to.deep.equal([["head"], ["event:a"], ["trailer"]]);
  });
});

describe("relayAnswer", () => {
  /** bodyRelay stands for an operation's own relay of a 2xx body, so that a test sees when it is chosen. */
  const bodyRelay: BodyRelay = async function* (_exchange, response) {
    yield headPart(response.status, "application/octet-stream");
    yield trailerPart({});
    return "ok";
  };

  async function relay(status: number, contentType: string, body: PassThrough): Promise<{ shapes: string[]; outcome: CallOutcome }> {
    const response: UpstreamResponse = { status, contentType, body: body as unknown as UpstreamResponse["body"] };
    const shapes: string[] = [];
    const answer = relayAnswer(exchange, response, bodyRelay);
    for (let next = await answer.next(); ; next = await answer.next()) {
      if (next.done) return { shapes, outcome: next.value };
      shapes.push(...shape(next.value));
    }
  }

  it("relays a 2xx event stream event by event", async () => {
    const result = await relay(200, "text/event-stream; charset=utf-8", new PassThrough().end(sse("a")));
    expect(result).to.deep.equal({ shapes: ["head", "event:a", "trailer"], outcome: "ok" });
  });

  it("passes a 4xx through as the upstream's own answer", async () => {
    const result = await relay(404, "application/json", new PassThrough().end('{"error":"no"}'));
    expect(result).to.deep.equal({ shapes: ["head", "data", "trailer"], outcome: "client_error" });
  });

  it("turns a 5xx or a 3xx into one upstream_error part", async () => {
    for (const status of [503, 302]) {
      const result = await relay(status, "text/plain", new PassThrough().end("down"));
      expect(result).to.deep.equal({ shapes: ["error"], outcome: "upstream_error" }, `HTTP ${status}`);
    }
  });

  it("hands any other 2xx to the operation's body relay, and destroys the body it left unread", async () => {
    const body = new PassThrough();
    body.write("unread");
    const result = await relay(200, "audio/wav", body);
    expect(result).to.deep.equal({ shapes: ["head", "trailer"], outcome: "ok" });
    expect(body.destroyed).to.equal(true);
  });
});

describe("relayAnswer for a server without the operation's route", () => {
  /** answerTo relays a captured llama-server answer to a call of operation, and returns the messages and the outcome. */
  async function answerTo(
    operation: Operation,
    status: number,
    body: Buffer,
    path = "/v1/x",
  ): Promise<{ messages: InferResponseInit[]; outcome: CallOutcome }> {
    const call = create(InferenceCallSchema, { operation, model: "tiny-llama" });
    const response: UpstreamResponse = {
      status,
      contentType: "application/json; charset=utf-8",
      body: new PassThrough().end(body) as unknown as UpstreamResponse["body"],
    };
    const messages: InferResponseInit[] = [];
    const answer = relayAnswer({ ...exchange, call, path }, response, async function* () {
      yield trailerPart({});
      return "ok" as const;
    });
    for (let next = await answer.next(); ; next = await answer.next()) {
      if (next.done) return { messages, outcome: next.value };
      messages.push(next.value);
    }
  }

  const unsupported = (message: string) => ({
    part: {
      part: {
        case: "error",
        value: { type: "invalid_request_error", httpStatus: 400, message, code: "unsupported_endpoint", param: "model" },
      },
    },
  });

  it("answers llama-server's 404 on a route it predates with the client's unsupported_endpoint error, naming the model and the route", async () => {
    const { status } = sampleHead("err_404");
    for (const [operation, route] of [
      [Operation.RESPONSE, "/v1/responses"],
      [Operation.MESSAGE, "/v1/messages"],
      [Operation.COUNT_TOKENS, "/v1/messages/count_tokens"],
      [Operation.EMBEDDING, "/v1/embeddings"],
      [Operation.RERANK, "/v1/rerank"],
    ] as const) {
      expect(await answerTo(operation, status, sampleBody("err_404"), route)).to.deep.equal({
        messages: [unsupported(`Model 'tiny-llama' is served by a server that does not serve POST ${route} (it answered HTTP 404)`)],
        outcome: "client_error",
      });
    }
    expect((await answerTo(Operation.TRANSLATION, 405, Buffer.from("Method Not Allowed"), "/inference")).messages).to.deep.equal(
      [unsupported("Model 'tiny-llama' is served by a server that does not serve POST /v1/audio/translations (it answered HTTP 405)")],
      "the route the client called, not the server's own",
    );
  });

  it("answers llama-server's 501 not_supported_error the same way, quoting why, instead of a 5xx that fails over", async () => {
    const { status } = sampleHead("embeddings_on_chat_server");
    expect(await answerTo(Operation.EMBEDDING, status, sampleBody("embeddings_on_chat_server"), "/v1/embeddings")).to.deep.equal({
      messages: [
        unsupported(
          "Model 'tiny-llama' is served by a server that does not serve POST /v1/embeddings (it answered HTTP 501: " +
            "This server does not support embeddings. Start it with `--embeddings`)",
        ),
      ],
      outcome: "client_error",
    });
    const rerank = await answerTo(Operation.RERANK, sampleHead("rerank").status, sampleBody("rerank"), "/v1/rerank");
    expect(rerank.messages).to.deep.equal([
      unsupported(
        "Model 'tiny-llama' is served by a server that does not serve POST /v1/rerank (it answered HTTP 501: " +
          "This server does not support reranking. Start it with `--reranking`)",
      ),
    ]);
  });

  it("passes chat's and transcription's 404 through as the server's own answer, and other 4xx of the new routes too", async () => {
    for (const operation of [Operation.CHAT_COMPLETION, Operation.TRANSCRIPTION]) {
      const { messages, outcome } = await answerTo(operation, 404, sampleBody("err_404"));
      expect([messages.flatMap(shape), outcome]).to.deep.equal([["head", "data", "trailer"], "client_error"], Operation[operation]);
    }
    const refused = await answerTo(Operation.RESPONSE, 400, Buffer.from('{"error":{"message":"input is required"}}'));
    expect([refused.messages.flatMap(shape), refused.outcome]).to.deep.equal([["head", "data", "trailer"], "client_error"]);
    const failed = await answerTo(Operation.CHAT_COMPLETION, 501, sampleBody("embeddings_on_chat_server"));
    expect([failed.messages.flatMap(shape), failed.outcome]).to.deep.equal([["error"], "upstream_error"]);
  });
});
