import { PassThrough } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { expect } from "chai";
import { InferenceCallSchema } from "../../gen/infermesh/v1/inference_pb.js";
import { systemClock } from "../shared/clock.js";
import { type BodyRelay, type CallOutcome, relayAnswer, relayEvents, type UpstreamExchange } from "./answer-relay.js";
import { headPart, type InferResponseInit, trailerPart } from "./inference-parts.js";
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
