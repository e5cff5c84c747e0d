import { Duplex } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { expect } from "chai";
import { ErrorKind, InferenceErrorSchema, Operation } from "../../gen/infermesh/v1/inference_pb.js";
import { OPERATIONS } from "../shared/inference-catalog.js";
import {
  answerClientError,
  clientErrorFailure,
  echoed,
  fromErrorPart,
  fromGrpcStatus,
  type GatewayError,
  internalError,
  invalidApiKey,
  invalidRequest,
  modelNotFound,
  noProvider,
  notFound,
  permissionDenied,
  rateLimited,
  refusedHttp,
  tooLarge,
  unavailable,
  unknownRoute,
  unsupportedEndpoint,
  upstreamFailed,
} from "./gateway-errors.js";

/** answer is what a client reads of a GatewayError: the status, the Retry-After header's value and the body. */
function answer(error: GatewayError) {
  return { status: error.status, retryAfterSeconds: error.retryAfterSeconds, body: error.body() };
}

function envelope(message: string, type: string, param: string | null, code: string | null) {
  return { error: { message, type, param, code } };
}

/** CollectingSocket is a Duplex standing in for a client's socket: it keeps what is written to it. */
class CollectingSocket extends Duplex {
  readonly written: string[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.written.push(chunk.toString("utf8"));
    callback();
  }
}

describe("gateway errors", () => {
  describe("the named constructors", () => {
    it("invalidRequest is a 400 invalid_request_error naming the parameter and code it is given", () => {
      expect(answer(invalidRequest("'n' must be a whole number.", { param: "n", code: "invalid_type" }))).to.deep.equal({
        status: 400,
        retryAfterSeconds: undefined,
        body: envelope("'n' must be a whole number.", "invalid_request_error", "n", "invalid_type"),
      });
      expect(answer(invalidRequest("Bad."))).to.deep.equal({
        status: 400,
        retryAfterSeconds: undefined,
        body: envelope("Bad.", "invalid_request_error", null, null),
      });
    });

    it("tooLarge is a 413 with the code request_too_large", () => {
      expect(answer(tooLarge("The upload is too large.", { param: "file" }))).to.deep.equal({
        status: 413,
        retryAfterSeconds: undefined,
        body: envelope("The upload is too large.", "invalid_request_error", "file", "request_too_large"),
      });
    });

    it("refusedHttp is the status it is given, with the code it is given and no parameter", () => {
      expect(answer(refusedHttp(415, "Send application/json.", "unsupported_media_type"))).to.deep.equal({
        status: 415,
        retryAfterSeconds: undefined,
        body: envelope("Send application/json.", "invalid_request_error", null, "unsupported_media_type"),
      });
      expect(answer(refusedHttp(400, "Bad framing."))).to.deep.equal({
        status: 400,
        retryAfterSeconds: undefined,
        body: envelope("Bad framing.", "invalid_request_error", null, null),
      });
    });

    it("unknownRoute is a 404 unknown_url naming the method and the path without its query", () => {
      expect(answer(unknownRoute("GET", "/v1/nothing?key=secret"))).to.deep.equal({
        status: 404,
        retryAfterSeconds: undefined,
        body: envelope("Unknown route: GET /v1/nothing", "invalid_request_error", null, "unknown_url"),
      });
    });

    it("unknownRoute cuts a long path short", () => {
      const path = `/${"x".repeat(1_000)}`;
      expect(unknownRoute("POST", path).body().error.message).to.equal(`Unknown route: POST ${path.slice(0, 256)}…`);
    });

    it("invalidApiKey names x-api-key too for a missing key on Anthropic's routes", () => {
      expect(invalidApiKey(false, "anthropic").body().error.message).to.equal(
        "You didn't provide an API key. Provide it as 'x-api-key: YOUR_KEY' or 'Authorization: Bearer YOUR_KEY'.",
      );
      expect(invalidApiKey(true, "anthropic").body().error.message).to.equal("Incorrect API key provided.");
    });

    it("modelNotFound is OpenAI's 404 model_not_found, in OpenAI's words", () => {
      expect(answer(modelNotFound("org/name"))).to.deep.equal({
        status: 404,
        retryAfterSeconds: undefined,
        body: envelope(
          "The model 'org/name' does not exist or you do not have access to it.",
          "invalid_request_error",
          "model",
          "model_not_found",
        ),
      });
    });

    it("unsupportedEndpoint is a 400 unsupported_endpoint naming the protocol and its route", () => {
      expect(answer(unsupportedEndpoint("qwen", OPERATIONS[Operation.MESSAGE]))).to.deep.equal({
        status: 400,
        retryAfterSeconds: undefined,
        body: envelope(
          "Model 'qwen' is served by no provider whose server speaks the Anthropic Messages API (POST /v1/messages); its servers " +
            "serve chat completions: use /v1/chat/completions",
          "invalid_request_error",
          "model",
          "unsupported_endpoint",
        ),
      });
    });

    it("invalidApiKey is a 401 invalid_api_key, in OpenAI's words for a missing key and for a wrong one", () => {
      expect([answer(invalidApiKey(false)), answer(invalidApiKey(true))]).to.deep.equal([
        {
          status: 401,
          retryAfterSeconds: undefined,
          body: envelope(
            "You didn't provide an API key. Provide it as 'Authorization: Bearer YOUR_KEY'.",
            "authentication_error",
            null,
            "invalid_api_key",
          ),
        },
        {
          status: 401,
          retryAfterSeconds: undefined,
          body: envelope("Incorrect API key provided.", "authentication_error", null, "invalid_api_key"),
        },
      ]);
    });

    it("permissionDenied is a 403 permission_error", () => {
      expect(answer(permissionDenied("That provider is someone else's.", { param: "provider_id" }))).to.deep.equal({
        status: 403,
        retryAfterSeconds: undefined,
        body: envelope("That provider is someone else's.", "permission_error", "provider_id", null),
      });
    });

    it("notFound is a 404 invalid_request_error", () => {
      expect(answer(notFound("No such provider.", { code: "provider_not_found" }))).to.deep.equal({
        status: 404,
        retryAfterSeconds: undefined,
        body: envelope("No such provider.", "invalid_request_error", null, "provider_not_found"),
      });
    });

    it("noProvider is a 404 no_provider naming the model, with the noun of its kind and the reason's code", () => {
      expect([
        answer(noProvider("sim-llama")),
        answer(noProvider("whisper", "speech-to-text model", { code: "providers_paused" })),
        answer(noProvider("m", "model", { code: "providers_offline", sinceMs: Date.UTC(2026, 11, 2) })),
      ]).to.deep.equal([
        {
          status: 404,
          retryAfterSeconds: undefined,
          body: envelope("No online provider serving model 'sim-llama' for this user.", "no_provider", "model", "model_not_served"),
        },
        {
          status: 404,
          retryAfterSeconds: undefined,
          body: envelope(
            "No online provider serving speech-to-text model 'whisper' for this user: your providers that serve it are paused; resume one to use it.",
            "no_provider",
            "model",
            "providers_paused",
          ),
        },
        {
          status: 404,
          retryAfterSeconds: undefined,
          body: {
            error: {
              ...envelope(
                "No online provider serving model 'm' for this user: the providers that serve it are offline.",
                "no_provider",
                "model",
                "providers_offline",
              ).error,
              offline_since: "2026-12-02T00:00:00.000Z",
            },
          },
        },
      ]);
    });

    it("noProvider cuts a long model name short", () => {
      const model = "m".repeat(10_000);
      expect(noProvider(model).body().error.message).to.equal(`No online provider serving model '${"m".repeat(256)}…' for this user.`);
    });

    it("rateLimited is a 429 rate_limit_exceeded with its limit's code, and Retry-After when given", () => {
      expect([
        answer(rateLimited("Too many requests.", "requests_per_minute", 12)),
        answer(rateLimited("Too many streams.", "concurrent_streams")),
      ]).to.deep.equal([
        { status: 429, retryAfterSeconds: 12, body: envelope("Too many requests.", "rate_limit_exceeded", null, "requests_per_minute") },
        {
          status: 429,
          retryAfterSeconds: undefined,
          body: envelope("Too many streams.", "rate_limit_exceeded", null, "concurrent_streams"),
        },
      ]);
    });

    it("upstreamFailed, unavailable and internalError are 502, 503 and 500 that keep their cause out of the body", () => {
      const cause = new Error("ECONNREFUSED 10.0.0.7:9000");
      const errors = [
        upstreamFailed("the provider failed", cause),
        unavailable("the registry is unreachable", cause),
        internalError("The gateway failed.", cause),
      ];
      expect(errors.map(answer)).to.deep.equal([
        { status: 502, retryAfterSeconds: undefined, body: envelope("the provider failed", "upstream_error", null, null) },
        { status: 503, retryAfterSeconds: undefined, body: envelope("the registry is unreachable", "service_unavailable", null, null) },
        { status: 500, retryAfterSeconds: undefined, body: envelope("The gateway failed.", "internal_error", null, null) },
      ]);
      expect(errors.map((error) => error.cause)).to.deep.equal([cause, cause, cause]);
    });

    it("is an Error named GatewayError whose message is the envelope's", () => {
      const error = invalidRequest("Bad.");
      expect(error).to.be.instanceOf(Error);
      expect({ name: error.name, message: error.message }).to.deep.equal({ name: "GatewayError", message: "Bad." });
    });
  });

  describe("echoed", () => {
    it("repeats input of up to 256 characters whole and cuts longer input to 256 and an ellipsis", () => {
      const exactly = "a".repeat(256);
      expect([echoed(""), echoed("gpt-4o"), echoed(exactly), echoed(`${exactly}b`)]).to.deep.equal(["", "gpt-4o", exactly, `${exactly}…`]);
    });
  });

  describe("clientErrorFailure", () => {
    it("answers headers over the limit with 431", () => {
      const error = Object.assign(new Error("Header overflow"), { code: "HPE_HEADER_OVERFLOW" });
      expect(answer(clientErrorFailure(error))).to.deep.equal({
        status: 431,
        retryAfterSeconds: undefined,
        body: envelope(
          "The request's headers and URL are larger than the gateway accepts.",
          "invalid_request_error",
          null,
          "request_header_fields_too_large",
        ),
      });
    });

    it("answers a request that did not arrive in time with 408", () => {
      const error = Object.assign(new Error("Request timeout"), { code: "ERR_HTTP_REQUEST_TIMEOUT" });
      expect(answer(clientErrorFailure(error))).to.deep.equal({
        status: 408,
        retryAfterSeconds: undefined,
        body: envelope("The request did not arrive in time.", "invalid_request_error", null, "request_timeout"),
      });
    });

    it("answers anything else with 400 malformed_http, quoting the parser's reason when it gave one", () => {
      const withReason = Object.assign(new Error("Parse Error"), { code: "HPE_INVALID_METHOD", reason: "Invalid method encountered" });
      const withoutReason = Object.assign(new Error("Parse Error"), { code: "HPE_INVALID_CONSTANT" });
      expect([answer(clientErrorFailure(withReason)), answer(clientErrorFailure(withoutReason))]).to.deep.equal([
        {
          status: 400,
          retryAfterSeconds: undefined,
          body: envelope("The request is not valid HTTP/1.1: Invalid method encountered.", "invalid_request_error", null, "malformed_http"),
        },
        {
          status: 400,
          retryAfterSeconds: undefined,
          body: envelope("The request is not valid HTTP/1.1.", "invalid_request_error", null, "malformed_http"),
        },
      ]);
    });
  });

  describe("answerClientError", () => {
    it("writes the failure as a whole HTTP response on the socket, then closes it", async () => {
      const socket = new CollectingSocket();
      const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
      socket.on("error", () => {});
      answerClientError(Object.assign(new Error("Request timeout"), { code: "ERR_HTTP_REQUEST_TIMEOUT" }), socket);
      await closed;
      const body = JSON.stringify(envelope("The request did not arrive in time.", "invalid_request_error", null, "request_timeout"));
      expect(socket.written.join("")).to.equal(
        `HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    });

    it("writes nothing to a connection the client reset", () => {
      const socket = new CollectingSocket();
      answerClientError(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }), socket);
      expect({ written: socket.written, destroyed: socket.destroyed }).to.deep.equal({ written: [], destroyed: false });
    });
  });

  describe("fromErrorPart", () => {
    it("answers with the status, type, message, code and param the agent gave", () => {
      const part = create(InferenceErrorSchema, {
        kind: ErrorKind.UNSPECIFIED,
        type: "invalid_request_error",
        message: "context length exceeded",
        httpStatus: 400,
        code: "context_length_exceeded",
        param: "messages",
      });
      expect(answer(fromErrorPart(part))).to.deep.equal({
        status: 400,
        retryAfterSeconds: undefined,
        body: envelope("context length exceeded", "invalid_request_error", "messages", "context_length_exceeded"),
      });
    });

    it("answers a part without status or type as a 502 upstream_error", () => {
      const part = create(InferenceErrorSchema, { kind: ErrorKind.UPSTREAM, message: "connection refused" });
      expect(answer(fromErrorPart(part))).to.deep.equal({
        status: 502,
        retryAfterSeconds: undefined,
        body: envelope("connection refused", "upstream_error", null, null),
      });
    });
  });

  describe("fromGrpcStatus", () => {
    it("answers a gRPC failure with the status and type of the one mapping, keeping the cause", () => {
      const cause = new Error("deadline");
      const timedOut = fromGrpcStatus(Code.DeadlineExceeded, "the provider took too long", cause);
      expect([
        answer(timedOut),
        answer(fromGrpcStatus(Code.NotFound, "no such model")),
        answer(fromGrpcStatus(Code.Unauthenticated, "bad agent token")),
      ]).to.deep.equal([
        { status: 504, retryAfterSeconds: undefined, body: envelope("the provider took too long", "timeout", null, null) },
        { status: 404, retryAfterSeconds: undefined, body: envelope("no such model", "no_provider", null, null) },
        { status: 502, retryAfterSeconds: undefined, body: envelope("bad agent token", "upstream_error", null, null) },
      ]);
      expect(timedOut.cause).to.equal(cause);
    });
  });
});
