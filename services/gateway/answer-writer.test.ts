import { request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import Fastify, { type FastifyInstance } from "fastify";
import { ErrorKind, type InferencePart, InferencePartSchema } from "../../gen/infermesh/v1/inference_pb.js";
import { type Gate, gate } from "../../test/support/gate.js";
import { waitFor } from "../../test/support/wait-for.js";
import { writeAnswer } from "./answer-writer.js";
import { type Api, GatewayError } from "./gateway-errors.js";
import { SilenceTicker } from "./silence-ticker.js";

/** PartInit is one part as written in a script: which case, and its value. */
type PartInit = NonNullable<Exclude<MessageInitShape<typeof InferencePartSchema>, InferencePart>["part"]>;
const part = (init: PartInit) => create(InferencePartSchema, { part: init });
const head = (status: number, contentType: string) => part({ case: "head", value: { status, contentType } });
const data = (text: string) => part({ case: "data", value: Buffer.from(text) });
const event = (text: string, name = "") => part({ case: "event", value: { data: Buffer.from(text), event: name } });
const trailer = (promptTokens: number, completionTokens: number) =>
  part({ case: "trailer", value: { usage: { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens } } });
const errorPart = (httpStatus: number, type: string, message: string) =>
  part({ case: "error", value: { kind: ErrorKind.UPSTREAM, httpStatus, type, message } });

/** Answer is a scripted answer: the parts to write, and whether the writer closed them. */
interface Answer {
  readonly parts: AsyncIterable<InferencePart>;
  readonly closed: () => boolean;
}

/** answer yields the script's parts; a Gate in the script is waited for, an Error thrown. */
function answer(...script: (InferencePart | Error | Gate)[]): Answer {
  let closed = false;
  async function* parts(): AsyncGenerator<InferencePart> {
    try {
      for (const step of script) {
        if (step instanceof Error) throw step;
        if ("opened" in step) await step.opened;
        else yield step;
      }
    } finally {
      closed = true;
    }
  }
  return { parts: parts(), closed: () => closed };
}

/** Harness is a tiny Fastify app whose one route writes a scripted answer, with the gateway's error handling. */
interface Harness {
  readonly app: FastifyInstance;
  /** log is what the observer heard, in order. */
  readonly log: string[];
  /** thrown is what writeAnswer threw. */
  readonly thrown: unknown[];
}

function harness(next: () => Answer, options: { hideUsageChunks?: boolean; api?: Api } = {}): Harness {
  const app = Fastify();
  const log: string[] = [];
  const thrown: unknown[] = [];
  const silence = new SilenceTicker(60_000);
  app.setErrorHandler((error, _request, reply) => {
    const failure = error instanceof GatewayError ? error : new GatewayError(599, "not_a_gateway_error", String(error));
    void reply.code(failure.status).header("content-type", "application/json").send(failure.body());
  });
  app.get("/answer", async (_request, reply) => {
    // Set before the answer, as the rate limiter does: it must go out with a streamed head too.
    void reply.header("x-ratelimit-remaining", "9");
    try {
      await writeAnswer(reply, next().parts, {
        requestId: "req-1",
        api: options.api ?? "openai",
        silence,
        hideUsageChunks: options.hideUsageChunks ?? false,
        observer: {
          firstByte: () => log.push("firstByte"),
          trailer: ({ usage }) => log.push(`trailer ${usage?.promptTokens ?? "-"}/${usage?.completionTokens ?? "-"}`),
        },
      });
    } catch (error) {
      thrown.push(error);
      throw error;
    }
  });
  return { app, log, thrown };
}

/** served is what a client of the harness reads (status, the headers that matter and the body); it closes the app. */
async function served(h: Harness) {
  const response = await h.app.inject({ method: "GET", url: "/answer" }).finally(() => h.app.close());
  return {
    status: response.statusCode,
    headers: {
      "content-type": response.headers["content-type"],
      "cache-control": response.headers["cache-control"],
      "x-accel-buffering": response.headers["x-accel-buffering"],
      "x-request-id": response.headers["x-request-id"],
      "x-ratelimit-remaining": response.headers["x-ratelimit-remaining"],
    },
    body: response.body,
  };
}

const SSE_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
  "x-request-id": "req-1",
  "x-ratelimit-remaining": "9",
};

const envelope = (message: string, type: string) => ({ error: { message, type, param: null, code: null } });

/** Received is what a client over a real socket got: the head, the body bytes, and whether the body ended cleanly. */
interface Received {
  readonly status: number | undefined;
  readonly contentType: string | undefined;
  readonly body: string;
  readonly complete: boolean;
}

/**
 * fetchRaw reads the harness's answer over a real connection, noting whether the body completed or was cut;
 * received hears of the first body bytes.
 */
function fetchRaw(port: number, received = () => {}): Promise<Received> {
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: "127.0.0.1", port, path: "/answer", agent: false }, (response) => {
      const chunks: Buffer[] = [];
      let settled = false;
      const settle = (complete: boolean) => {
        if (settled) return;
        settled = true;
        resolve({
          status: response.statusCode,
          contentType: response.headers["content-type"],
          body: Buffer.concat(chunks).toString(),
          complete,
        });
      };
      response.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        if (chunks.length === 1) received();
      });
      response.on("end", () => settle(response.complete));
      response.on("error", () => settle(false));
      response.on("close", () => settle(response.complete));
    });
    request.on("error", reject);
    request.end();
  });
}

/** listening starts the harness on port 0 and returns its port and a close that waits for every connection to go. */
async function listening(h: Harness): Promise<{ port: number; close: () => Promise<void> }> {
  await h.app.listen({ host: "127.0.0.1", port: 0 });
  const server = h.app.server;
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: async () => {
      await waitFor(
        "every connection to close",
        () => new Promise<boolean>((resolve) => server.getConnections((_error, count) => resolve(count === 0))),
      );
      await h.app.close();
    },
  };
}

describe("writeAnswer", () => {
  describe("a JSON answer", () => {
    it("is sent whole, with the provider's status and content type, after its trailer", async () => {
      const h = harness(() =>
        answer(head(200, "application/json"), data('{"id":"c1",'), data('"object":"chat.completion"}'), trailer(3, 5)),
      );
      expect(await served(h)).to.deep.equal({
        status: 200,
        headers: {
          "content-type": "application/json",
          "cache-control": undefined,
          "x-accel-buffering": undefined,
          "x-request-id": undefined,
          "x-ratelimit-remaining": "9",
        },
        body: '{"id":"c1","object":"chat.completion"}',
      });
      expect(h.log).to.deep.equal(["trailer 3/5", "firstByte"]);
    });

    it("keeps the provider's error status and body when the provider answered with one", async () => {
      const body = JSON.stringify(envelope("context length exceeded", "invalid_request_error"));
      const h = harness(() => answer(head(400, "application/json; charset=utf-8"), data(body)));
      const got = await served(h);
      expect({ status: got.status, contentType: got.headers["content-type"], body: got.body }).to.deep.equal({
        status: 400,
        contentType: "application/json; charset=utf-8",
        body,
      });
    });

    it("answers with the error part that comes in place of the body", async () => {
      const h = harness(() => answer(head(200, "application/json"), data('{"id":'), errorPart(502, "upstream_error", "model server died")));
      const got = await served(h);
      expect({ status: got.status, body: JSON.parse(got.body) as unknown }).to.deep.equal({
        status: 502,
        body: envelope("model server died", "upstream_error"),
      });
    });
  });

  describe("an event stream", () => {
    it("frames each event exactly: one data line per line, the event's name, 200 and the SSE headers", async () => {
      const h = harness(() =>
        answer(
          head(200, "text/event-stream"),
          event("first line\nsecond line"),
          event('{"type":"image_generation.partial_image"}', "image_generation.partial_image"),
          event("[DONE]"),
          trailer(2, 4),
        ),
      );
      expect(await served(h)).to.deep.equal({
        status: 200,
        headers: SSE_HEADERS,
        body:
          "data: first line\ndata: second line\n\n" +
          'event: image_generation.partial_image\ndata: {"type":"image_generation.partial_image"}\n\n' +
          "data: [DONE]\n\n",
      });
      expect(h.log).to.deep.equal(["firstByte", "trailer 2/4"]);
    });

    it("ends the response at [DONE], without waiting for the rest of the call", async () => {
      const rest = gate();
      const h = harness(() => answer(head(200, "text/event-stream"), event('{"n":1}'), event("[DONE]"), rest, trailer(1, 1)));
      const got = await served(h);
      expect(got.body).to.equal('data: {"n":1}\n\ndata: [DONE]\n\n');
      expect(h.log, "the trailer had not come yet").to.deep.equal(["firstByte"]);
      rest.open();
      await waitFor("the trailer read after the answer", () => h.log.length === 2);
      expect(h.log).to.deep.equal(["firstByte", "trailer 1/1"]);
    });

    const chunks = () =>
      answer(
        head(200, "text/event-stream"),
        event('{"choices":[{"delta":{"content":"hi"}}]}'),
        event('{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'),
        event("[DONE]"),
      );

    it("hides the usage-only chunk the gateway asked for on the client's behalf", async () => {
      const got = await served(harness(chunks, { hideUsageChunks: true }));
      expect(got.body).to.equal('data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n');
    });

    it("keeps the usage-only chunk when the client asked for it", async () => {
      const got = await served(harness(chunks, { hideUsageChunks: false }));
      expect(got.body).to.equal(
        'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n' +
          'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}\n\n' +
          "data: [DONE]\n\n",
      );
    });

    it("ends with one error frame when an error part comes after the first event", async () => {
      const h = harness(() =>
        answer(head(200, "text/event-stream"), event('{"n":1}'), errorPart(502, "upstream_error", "model server died"), event('{"n":2}')),
      );
      expect(await served(h)).to.deep.equal({
        status: 200,
        headers: SSE_HEADERS,
        body: `data: {"n":1}\n\ndata: ${JSON.stringify(envelope("model server died", "upstream_error"))}\n\n`,
      });
    });

    it("ends with one error frame when the call fails after the first event", async () => {
      const h = harness(() =>
        answer(head(200, "text/event-stream"), event('{"n":1}'), new ConnectError("connection reset", Code.Unavailable)),
      );
      const got = await served(h);
      expect(got.body).to.equal(
        `data: {"n":1}\n\ndata: ${JSON.stringify(envelope("the provider is unreachable: connection reset", "upstream_error"))}\n\n`,
      );
      expect(h.thrown, "nothing is thrown once the head is out").to.deep.equal([]);
    });
  });

  describe("before the head", () => {
    it("throws the GatewayError of an error part, whose status and envelope the client gets", async () => {
      const h = harness(() => answer(errorPart(504, "timeout", "the deadline passed")));
      const got = await served(h);
      expect({
        status: got.status,
        body: JSON.parse(got.body) as unknown,
        thrownIsGatewayError: h.thrown[0] instanceof GatewayError,
      }).to.deep.equal({
        status: 504,
        body: envelope("the deadline passed", "timeout"),
        thrownIsGatewayError: true,
      });
      expect(h.log).to.deep.equal([]);
    });

    it("answers a failed call, an empty answer and a part before the head with the statuses they mean", async () => {
      const results = [];
      for (const script of [
        () => answer(new ConnectError("connection refused", Code.Unavailable)),
        () => answer(new ConnectError("took too long", Code.DeadlineExceeded)),
        () => answer(),
        () => answer(data("{}")),
      ]) {
        const got = await served(harness(script));
        results.push({ status: got.status, body: JSON.parse(got.body) as unknown });
      }
      expect(results).to.deep.equal([
        { status: 502, body: envelope("the provider is unreachable: connection refused", "upstream_error") },
        { status: 504, body: envelope("took too long", "timeout") },
        { status: 502, body: envelope("the provider ended the answer without a response", "upstream_error") },
        { status: 502, body: envelope("the provider sent 'data' before a head", "upstream_error") },
      ]);
    });
  });

  describe("a streamed body (speech)", () => {
    it("relays each piece as it comes, under the provider's status and content type, and ends it cleanly", async () => {
      const h = harness(() => answer(head(200, "audio/wav"), data("RIFF"), data("WAVE"), trailer(0, 0)));
      const server = await listening(h);
      try {
        expect(await fetchRaw(server.port)).to.deep.equal({ status: 200, contentType: "audio/wav", body: "RIFFWAVE", complete: true });
        expect(h.log).to.deep.equal(["firstByte", "trailer 0/0"]);
      } finally {
        await server.close();
      }
    });

    // The failure is held until the client has the first piece, as a provider's failure arrives later than its bytes.
    for (const [how, failure] of [
      ["the call fails", new ConnectError("connection reset", Code.Unavailable)],
      ["an error part comes", errorPart(502, "upstream_error", "model server died")],
    ] as const) {
      it(`cuts the connection when ${how} midway, so the client never sees a complete-looking body`, async () => {
        const held = gate();
        const server = await listening(harness(() => answer(head(200, "audio/wav"), data("RIFF"), held, failure)));
        try {
          expect(await fetchRaw(server.port, held.open)).to.deep.equal({
            status: 200,
            contentType: "audio/wav",
            body: "RIFF",
            complete: false,
          });
        } finally {
          await server.close();
        }
      });
    }
  });

  describe("releasing the answer", () => {
    it("has read every part to the end when the answer completes", async () => {
      const answers: Answer[] = [];
      const h = harness(() => {
        const a = answer(head(200, "text/event-stream"), event("[DONE]"), trailer(1, 1));
        answers.push(a);
        return a;
      });
      await served(h);
      await waitFor("the answer read to its end", () => answers[0]?.closed());
    });

    it("closes the parts it stops reading, at an error part before or after the head", async () => {
      const answers: Answer[] = [];
      const scripts = [
        () => answer(errorPart(504, "timeout", "the deadline passed"), trailer(0, 0)),
        () => answer(head(200, "application/json"), errorPart(502, "upstream_error", "died"), trailer(0, 0)),
        () => answer(head(200, "text/event-stream"), event('{"n":1}'), errorPart(502, "upstream_error", "died"), trailer(0, 0)),
      ];
      for (const script of scripts) {
        await served(
          harness(() => {
            const a = script();
            answers.push(a);
            return a;
          }),
        );
      }
      expect(answers.map((a) => a.closed())).to.deep.equal([true, true, true]);
    });
  });
});
