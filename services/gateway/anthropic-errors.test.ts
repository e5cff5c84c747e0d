import { expect } from "chai";
import { anthropicErrorBody, anthropicErrorType, anthropicRelayedError } from "./anthropic-errors.js";
import { GatewayError, invalidApiKey, noProvider, tooLarge } from "./gateway-errors.js";
import { anthropicSseErrorFrame } from "./sse-frames.js";

const relayed = (status: number, body: string) => JSON.parse(anthropicRelayedError(status, Buffer.from(body), "req-1").toString());
const envelope = (type: string, message: string) => ({ type: "error", error: { type, message }, request_id: "req-1" });

describe("Anthropic's error envelope", () => {
  it("gives each status Anthropic's error type", () => {
    const statuses = [400, 401, 403, 404, 405, 408, 413, 415, 422, 429, 431, 500, 501, 502, 503, 504, 529];
    expect(Object.fromEntries(statuses.map((status) => [status, anthropicErrorType(status)]))).to.deep.equal({
      400: "invalid_request_error",
      401: "authentication_error",
      403: "permission_error",
      404: "not_found_error",
      405: "invalid_request_error",
      408: "invalid_request_error",
      413: "request_too_large",
      415: "invalid_request_error",
      422: "invalid_request_error",
      429: "rate_limit_error",
      431: "invalid_request_error",
      500: "api_error",
      501: "api_error",
      502: "api_error",
      503: "overloaded_error",
      504: "api_error",
      529: "overloaded_error",
    });
  });

  it("writes the gateway's own failures with their message and the request id", () => {
    expect([
      anthropicErrorBody(invalidApiKey(true, "anthropic"), "req-1"),
      anthropicErrorBody(noProvider("claude-x"), "req-1"),
      anthropicErrorBody(tooLarge("The request body is too large."), "req-1"),
      anthropicErrorBody(new GatewayError(502, "upstream_error", "the provider failed"), "req-1"),
    ]).to.deep.equal([
      envelope("authentication_error", "Incorrect API key provided."),
      envelope("not_found_error", "No online provider serving model 'claude-x' for this user."),
      envelope("request_too_large", "The request body is too large."),
      envelope("api_error", "the provider failed"),
    ]);
  });

  it("rewrites a provider's error answer, keeping its message: OpenAI's envelope, Ollama's, a bare message, plain text", () => {
    expect([
      relayed(400, '{"error":{"code":400,"message":"the request exceeds the available context size","type":"invalid_request_error"}}'),
      relayed(404, '{"error":"model \\"x\\" not found, try pulling it first"}'),
      relayed(400, '{"object":"error","message":"max_tokens is too large","type":"BadRequestError","code":400}'),
      relayed(422, '{"detail":"Field required"}'),
      relayed(500, "  Internal Server Error\n"),
      relayed(502, ""),
      relayed(500, "{}"),
    ]).to.deep.equal([
      envelope("invalid_request_error", "the request exceeds the available context size"),
      envelope("not_found_error", 'model "x" not found, try pulling it first'),
      envelope("invalid_request_error", "max_tokens is too large"),
      envelope("invalid_request_error", "Field required"),
      envelope("api_error", "Internal Server Error"),
      envelope("api_error", "The provider answered with status 502 Bad Gateway"),
      envelope("api_error", "{}"),
    ]);
  });

  it("passes an answer already in Anthropic's envelope byte for byte, and cuts a long text message short", () => {
    const anthropics = '{"type":"error", "error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011"}';
    expect(anthropicRelayedError(529, Buffer.from(anthropics), "req-1").toString()).to.equal(anthropics);
    const long = relayed(500, "x".repeat(5_000));
    expect(long.error.message).to.equal(`${"x".repeat(1_000)}…`);
  });

  it("ends a failed stream with Anthropic's error event", () => {
    expect(anthropicSseErrorFrame({ type: "api_error", message: "the model server failed" }).toString()).to.equal(
      'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"the model server failed"}}\n\n',
    );
  });
});
