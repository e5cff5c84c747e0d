import { PassThrough } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { expect } from "chai";
import { InferenceCallSchema } from "../../gen/infermesh/v1/inference_pb.js";
import { systemClock } from "../shared/clock.js";
import { relayEvents, type UpstreamExchange } from "./answer-relay.js";
import type { InferResponseInit } from "./inference-parts.js";
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

describe("relayEvents", () => {
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
