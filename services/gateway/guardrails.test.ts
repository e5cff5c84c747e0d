import { expect } from "chai";
import { Operation } from "../../gen/infermesh/v1/inference_pb.js";
import type { KnownOperation } from "../shared/inference-catalog.js";
import { GatewayError } from "./gateway-errors.js";
import { checkInputSize, clampTokens, type Guardrails } from "./guardrails.js";

const BOUNDS: Guardrails = { maxMessages: 2, maxInputChars: 10, maxTokens: 100 };

/** refusal is the 413's param and message, or "ok" when the input is within the bounds. */
function refusal(operation: KnownOperation, body: Record<string, unknown>): string {
  try {
    checkInputSize(operation, body, BOUNDS);
    return "ok";
  } catch (error) {
    if (error instanceof GatewayError) return `${error.status} ${error.detail.param}: ${error.message}`;
    throw error;
  }
}

describe("guardrails", () => {
  it("measures each protocol's text input where it keeps it", () => {
    const eleven = "x".repeat(11);
    expect([
      refusal(Operation.CHAT_COMPLETION, { messages: [{ role: "user", content: [{ type: "text", text: eleven }] }] }),
      refusal(Operation.COMPLETION, { prompt: [eleven] }),
      refusal(Operation.EMBEDDING, { input: ["xxxxx", "xxxxxx"] }),
      refusal(Operation.EMBEDDING, {
        input: [
          [1, 2, 3, 4, 5, 6],
          [7, 8, 9, 10, 11],
        ],
      }),
      refusal(Operation.RERANK, { query: "xxxxx", documents: ["xxx", { text: "xxx" }] }),
      refusal(Operation.RESPONSE, { instructions: "xxxxxx", input: "xxxxx" }),
      refusal(Operation.RESPONSE, { input: [{ type: "function_call_output", output: eleven }] }),
      refusal(Operation.MESSAGE, { system: [{ type: "text", text: "xxxxxx" }], messages: [{ role: "user", content: "xxxxx" }] }),
      refusal(Operation.COUNT_TOKENS, {
        messages: [{ role: "user", content: [{ type: "tool_result", tool_use_id: "t", content: [{ type: "text", text: eleven }] }] }],
      }),
    ]).to.deep.equal([
      "413 messages: The input has 11 characters; at most 10 are allowed.",
      "413 prompt: The input has 11 characters; at most 10 are allowed.",
      "413 input: The input has 11 characters; at most 10 are allowed.",
      "413 input: The input has 11 characters; at most 10 are allowed.",
      "413 documents: The input has 11 characters; at most 10 are allowed.",
      "413 input: The input has 11 characters; at most 10 are allowed.",
      "413 input: The input has 11 characters; at most 10 are allowed.",
      "413 messages: The input has 11 characters; at most 10 are allowed.",
      "413 messages: The input has 11 characters; at most 10 are allowed.",
    ]);
  });

  it("bounds the messages of a conversation and the items of a Responses input, and lets input within the bounds through", () => {
    const three = [
      { role: "user", content: "a" },
      { role: "assistant", content: "b" },
      { role: "user", content: "c" },
    ];
    expect([
      refusal(Operation.CHAT_COMPLETION, { messages: three }),
      refusal(Operation.MESSAGE, { messages: three }),
      refusal(Operation.RESPONSE, { input: three }),
      refusal(Operation.EMBEDDING, { input: ["a", "b", "c"] }),
      refusal(Operation.MESSAGE, { messages: three.slice(1), system: "xxxxxxxx" }),
      refusal(Operation.SPEECH, { input: "x".repeat(1_000) }),
    ]).to.deep.equal([
      "413 messages: The request has 3 messages; at most 2 are allowed.",
      "413 messages: The request has 3 messages; at most 2 are allowed.",
      "413 input: The request has 3 input items; at most 2 are allowed.",
      "ok",
      "ok",
      "ok",
    ]);
  });

  it("clamps each protocol's own token limits, and leaves a body within them, and other protocols' fields, alone", () => {
    expect([
      clampTokens(Operation.CHAT_COMPLETION, { max_tokens: 500, max_completion_tokens: 50, max_output_tokens: 500 }, BOUNDS),
      clampTokens(Operation.RESPONSE, { max_output_tokens: 500, max_tokens: 500 }, BOUNDS),
      clampTokens(Operation.MESSAGE, { max_tokens: 101 }, BOUNDS),
      clampTokens(Operation.MESSAGE, { max_tokens: 100 }, BOUNDS),
      clampTokens(Operation.COUNT_TOKENS, { max_tokens: 500 }, BOUNDS),
      clampTokens(Operation.EMBEDDING, { dimensions: 500 }, BOUNDS),
      clampTokens(Operation.MESSAGE, { max_tokens: 500 }, { ...BOUNDS, maxTokens: 0 }),
    ]).to.deep.equal([
      { max_tokens: 100, max_completion_tokens: 50, max_output_tokens: 500 },
      { max_output_tokens: 100, max_tokens: 500 },
      { max_tokens: 100 },
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
  });
});
