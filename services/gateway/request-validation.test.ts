import type { AnySchema } from "ajv";
import { expect } from "chai";
import Fastify from "fastify";
import { GatewayError } from "./gateway-errors.js";
import { AGENT_HEARTBEAT_BODY, CHAT_COMPLETIONS_BODY, IMAGE_EDIT_FIELDS, TRANSCRIPTION_FIELDS } from "./openai-schemas.js";
import {
  compileChecker,
  type JsonBody,
  type JsonObject,
  MAX_JSON_DEPTH,
  parseJsonBody,
  requestValidatorCompiler,
} from "./request-validation.js";

/** Validated is what the gateway's body validator gives Fastify: the body to hand the route, or the error to answer. */
type Validated = { readonly value: JsonBody } | { readonly error: GatewayError };

/** bodyValidator compiles a route's body schema as Fastify does, for a JSON request. */
function bodyValidator(schema: AnySchema, url: string): (body: Uint8Array) => Validated {
  const validate = requestValidatorCompiler({ schema, httpPart: "body", method: "POST", url });
  return (body) => {
    const result: unknown = validate(body);
    if (typeof result !== "object" || result === null || !("value" in result || "error" in result)) {
      throw new Error(`the validator answered ${String(result)}, not { value } or { error }`);
    }
    return result as Validated;
  };
}

const chat = bodyValidator(CHAT_COMPLETIONS_BODY, "/v1/chat/completions");
const heartbeat = bodyValidator(AGENT_HEARTBEAT_BODY, "/api/agents/heartbeat");

/** Outcome is a validation's result as the client and the route see it: an error's status and envelope, or the body. */
type Outcome =
  | { readonly status: number; readonly body: { readonly error: GatewayError["detail"] } }
  | { readonly bytes: string; readonly json: JsonObject };

function outcome(result: Validated): Outcome {
  if ("error" in result) {
    expect(result.error, "the error is the gateway's own").to.be.instanceOf(GatewayError);
    return { status: result.error.status, body: result.error.body() };
  }
  return { bytes: Buffer.from(result.value.bytes).toString("utf8"), json: result.value.json };
}

/** refused is the outcome of a 400 with OpenAI's envelope. */
function refused(message: string, param: string | null, code: string | null): Outcome {
  return { status: 400, body: { error: { message, type: "invalid_request_error", param, code } } };
}

/** thrown is the outcome of a call that throws a GatewayError, or the value it returned when it did not throw. */
function thrown(run: () => unknown): Outcome | { readonly returned: unknown } {
  try {
    return { returned: run() };
  } catch (error) {
    if (!(error instanceof GatewayError)) throw error;
    return { status: error.status, body: error.body() };
  }
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const messages = [{ role: "user", content: "hi" }];

describe("request validation", () => {
  describe("a chat completion body, as Fastify validates it", () => {
    it("asks for a model when the model is missing", () => {
      expect(outcome(chat(json({ messages })))).to.deep.equal(
        refused("you must provide a model parameter", "model", "missing_required_parameter"),
      );
    });

    it("treats a null model as a missing one", () => {
      expect(outcome(chat(json({ model: null, messages })))).to.deep.equal(
        refused("you must provide a model parameter", "model", "missing_required_parameter"),
      );
    });

    it("refuses an empty model name", () => {
      expect(outcome(chat(json({ model: "", messages })))).to.deep.equal(
        refused("'model' must not be empty.", "model", "missing_required_parameter"),
      );
    });

    it("refuses missing messages with the code OpenAI gives, invalid_type", () => {
      expect(outcome(chat(json({ model: "m" })))).to.deep.equal(
        refused("'messages' is required: it must be an array.", "messages", "invalid_type"),
      );
    });

    it("refuses empty messages as empty_array", () => {
      expect(outcome(chat(json({ model: "m", messages: [] })))).to.deep.equal(
        refused("'messages' must not be empty.", "messages", "empty_array"),
      );
    });

    it("refuses messages that are not an array", () => {
      expect(outcome(chat(json({ model: "m", messages: "hi" })))).to.deep.equal(
        refused("'messages' must be an array.", "messages", "invalid_type"),
      );
    });

    it("names the message without a role by its index", () => {
      expect(outcome(chat(json({ model: "m", messages: [{ role: "user", content: "a" }, { content: "b" }] })))).to.deep.equal(
        refused("'messages[1].role' is required: it must be a string.", "messages[1].role", "invalid_type"),
      );
    });

    it("refuses n below 1 and above 128 as invalid_value, and a fraction as invalid_type", () => {
      expect([0, 129, 1.5].map((n) => outcome(chat(json({ model: "m", messages, n }))))).to.deep.equal([
        refused("'n' must be a whole number from 1 to 128.", "n", "invalid_value"),
        refused("'n' must be a whole number from 1 to 128.", "n", "invalid_value"),
        refused("'n' must be a whole number.", "n", "invalid_type"),
      ]);
    });

    it("refuses 1e309, which JSON.parse reads as Infinity, as a number out of range", () => {
      const body = Buffer.from('{"model":"m","messages":[{"role":"user"}],"temperature":1e309}');
      expect(outcome(chat(body))).to.deep.equal(refused("'temperature' must be a number from 0 to 2.", "temperature", "invalid_value"));
    });

    it("refuses a body that is valid JSON but not an object as invalid_json, blaming no parameter", () => {
      expect([json([{ model: "m", messages }]), json("m"), Buffer.from("null")].map((body) => outcome(chat(body)))).to.deep.equal([
        refused("The request body must be a JSON object.", null, "invalid_json"),
        refused("The request body must be a JSON object.", null, "invalid_json"),
        refused("The request body must be a JSON object.", null, "invalid_json"),
      ]);
    });

    it("refuses a body that starts with a byte order mark", () => {
      const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), json({ model: "m", messages })]);
      expect(outcome(chat(body))).to.deep.equal(
        refused("The request body starts with a byte order mark; send JSON without one.", null, "invalid_json"),
      );
    });

    it("refuses a body that is not valid UTF-8 rather than decoding it leniently", () => {
      const body = Buffer.concat([Buffer.from('{"model":"'), Buffer.from([0xc3, 0x28]), Buffer.from('","messages":[{"role":"user"}]}')]);
      expect(outcome(chat(body))).to.deep.equal(refused("The request body is not valid UTF-8.", null, "invalid_json"));
    });

    it("refuses a body that is not JSON, quoting the parser", () => {
      expect(outcome(chat(Buffer.from('{"model":')))).to.deep.equal(
        refused("The request body is not valid JSON: Unexpected end of JSON input", null, "invalid_json"),
      );
    });

    it(`accepts nesting ${MAX_JSON_DEPTH} deep and refuses one level more as json_too_deep`, () => {
      // The body object is the first level; x adds the rest.
      const nested = (levels: number) =>
        Buffer.from(`{"model":"m","messages":[{"role":"user"}],"x":${"[".repeat(levels)}${"]".repeat(levels)}}`);
      expect(outcome(chat(nested(MAX_JSON_DEPTH - 1)))).to.have.property("json");
      expect(outcome(chat(nested(MAX_JSON_DEPTH)))).to.deep.equal(
        refused(`The request body nests arrays and objects more than ${MAX_JSON_DEPTH} deep.`, null, "json_too_deep"),
      );
    });

    it("refuses a deeply nested body without overflowing the stack", () => {
      const levels = 100_000;
      const body = Buffer.from(`{"model":"m","messages":[{"role":"user"}],"x":${"[".repeat(levels)}${"]".repeat(levels)}}`);
      expect(outcome(chat(body))).to.deep.equal(
        refused(`The request body nests arrays and objects more than ${MAX_JSON_DEPTH} deep.`, null, "json_too_deep"),
      );
    });

    it("refuses an empty or blank body where the schema requires fields", () => {
      expect([Buffer.alloc(0), Buffer.from(" \r\n\t")].map((body) => outcome(chat(body)))).to.deep.equal([
        refused("The request body is empty; send a JSON object.", null, "invalid_json"),
        refused("The request body is empty; send a JSON object.", null, "invalid_json"),
      ]);
    });

    it("hands the route the very bytes the client sent, with what they parse to, adding nothing", () => {
      const sent = '{ "model" : "Sim-Llama",\n  "messages": [{"role": "user", "content": "caf\\u00e9"}], "x-extra": 1 }';
      const body = Buffer.from(sent);
      const result = chat(body);
      expect(outcome(result)).to.deep.equal({
        bytes: sent,
        json: { model: "Sim-Llama", messages: [{ role: "user", content: "café" }], "x-extra": 1 },
      });
      if ("value" in result) expect(result.value.bytes.buffer, "the client's buffer, not a copy").to.equal(body.buffer);
    });

    it("coerces nothing: a string where the schema wants a boolean or a number is refused", () => {
      expect([
        outcome(chat(json({ model: "m", messages, stream: "true" }))),
        outcome(chat(json({ model: "m", messages, n: "2" }))),
      ]).to.deep.equal([
        refused("'stream' must be true or false.", "stream", "invalid_type"),
        refused("'n' must be a whole number.", "n", "invalid_type"),
      ]);
    });
  });

  describe("a body whose schema requires no field (the agent heartbeat)", () => {
    it("reads an empty body as the empty object", () => {
      expect(outcome(heartbeat(Buffer.alloc(0)))).to.deep.equal({ bytes: "", json: {} });
    });

    it("still checks the types of the fields it is sent", () => {
      expect([outcome(heartbeat(json({}))), outcome(heartbeat(json({ name: 3 })))]).to.deep.equal([
        { bytes: "{}", json: {} },
        refused("'name' must be a string.", "name", "invalid_type"),
      ]);
    });

    it("refuses a body of characters JSON does not count as whitespace instead of reading it as empty", () => {
      const statuses = [Buffer.from("\f"), Buffer.from("\v"), Buffer.from([0xa0])].map((body) => {
        const result = outcome(heartbeat(body));
        return "status" in result ? result.status : result;
      });
      expect(statuses).to.deep.equal([400, 400, 400]);
    });
  });

  describe("requestValidatorCompiler for other parts", () => {
    it("leaves a multipart body to its route", () => {
      const validate = requestValidatorCompiler({
        schema: TRANSCRIPTION_FIELDS,
        httpPart: "body",
        contentType: "multipart/form-data",
        method: "POST",
        url: "/v1/audio/transcriptions",
      });
      expect(validate("anything")).to.equal(true);
    });
  });

  describe("compileChecker on a form's text fields", () => {
    const transcription = compileChecker(TRANSCRIPTION_FIELDS);
    const imageEdit = compileChecker(IMAGE_EDIT_FIELDS);

    it("accepts a repeated field the form allows to repeat", () => {
      expect(thrown(() => transcription({ model: "whisper", language: ["en", "fr"] }))).to.deep.equal({ returned: undefined });
    });

    it("refuses a repeated model or response_format (an array) as invalid_value", () => {
      expect([
        thrown(() => transcription({ model: ["whisper", "whisper"] })),
        thrown(() => transcription({ model: "whisper", response_format: ["json", "text"] })),
        thrown(() => imageEdit({ model: "sd", prompt: "a cat", n: ["1", "2"] })),
      ]).to.deep.equal([
        refused("'model' must be a string.", "model", "invalid_value"),
        refused("'response_format' must be a string.", "response_format", "invalid_value"),
        refused("'n' must be a string.", "n", "invalid_value"),
      ]);
    });

    it("refuses n of 0, 11 or a word as invalid_value, and accepts 1 and 10", () => {
      expect(["0", "11", "abc", "1", "10"].map((n) => thrown(() => imageEdit({ model: "sd", prompt: "a cat", n })))).to.deep.equal([
        refused("'n' must be a whole number from 1 to 10.", "n", "invalid_value"),
        refused("'n' must be a whole number from 1 to 10.", "n", "invalid_value"),
        refused("'n' must be a whole number from 1 to 10.", "n", "invalid_value"),
        { returned: undefined },
        { returned: undefined },
      ]);
    });

    it("asks for a missing model and a missing prompt", () => {
      expect([thrown(() => transcription({})), thrown(() => imageEdit({ model: "sd" }))]).to.deep.equal([
        refused("you must provide a model parameter", "model", "missing_required_parameter"),
        refused("'prompt' is required: it must be a string.", "prompt", "missing_required_parameter"),
      ]);
    });

    it("refuses a stream field other than 'true' or 'false'", () => {
      expect(thrown(() => transcription({ model: "whisper", stream: "yes" }))).to.deep.equal(
        refused("'stream' must be one of true, false.", "stream", "invalid_value"),
      );
    });
  });

  describe("parseJsonBody", () => {
    it("reads no body as the empty object only where that is a valid request", () => {
      expect([thrown(() => parseJsonBody(undefined, true)), thrown(() => parseJsonBody(undefined, false))]).to.deep.equal([
        { returned: { bytes: new Uint8Array(0), json: {} } },
        refused("The request body is empty; send a JSON object.", null, "invalid_json"),
      ]);
    });

    it("returns what a non-object parses to, for the schema to refuse", () => {
      const parsed = parseJsonBody(Buffer.from("[1,2]"), false);
      expect({ bytes: Buffer.from(parsed.bytes).toString(), json: parsed.json }).to.deep.equal({ bytes: "[1,2]", json: [1, 2] });
    });

    it("reads a Uint8Array that views part of a larger buffer as just its own bytes", () => {
      const whole = Buffer.from('xx{"a":1}yy');
      const parsed = parseJsonBody(new Uint8Array(whole.buffer, whole.byteOffset + 2, 7), false);
      expect({ bytes: Buffer.from(parsed.bytes).toString(), json: parsed.json }).to.deep.equal({ bytes: '{"a":1}', json: { a: 1 } });
    });
  });

  describe("through Fastify", () => {
    it("hands the route the JsonBody and the error handler the very GatewayError, whatever Fastify stamps on it", async () => {
      const app = Fastify();
      app.removeAllContentTypeParsers();
      app.addContentTypeParser("*", { parseAs: "buffer" }, (_request, body, done) => done(null, body));
      app.setValidatorCompiler(requestValidatorCompiler);
      app.setErrorHandler((error, _request, reply) => {
        const failure = error instanceof GatewayError ? error : new GatewayError(599, "not_a_gateway_error", String(error));
        void reply.code(failure.status).send(failure.body());
      });
      app.post("/v1/chat/completions", { schema: { body: CHAT_COMPLETIONS_BODY } }, async (request) => {
        const body = request.body as JsonBody;
        return { bytes: Buffer.from(body.bytes).toString(), json: body.json };
      });
      try {
        const sent = '{"model":"m", "messages":[{"role":"user"}]}';
        const ok = await app.inject({
          method: "POST",
          url: "/v1/chat/completions",
          headers: { "content-type": "application/json" },
          payload: sent,
        });
        const bad = await app.inject({
          method: "POST",
          url: "/v1/chat/completions",
          headers: { "content-type": "application/json" },
          payload: "[]",
        });
        expect([
          { status: ok.statusCode, body: ok.json<unknown>() },
          { status: bad.statusCode, body: bad.json<unknown>() },
        ]).to.deep.equal([
          { status: 200, body: { bytes: sent, json: { model: "m", messages: [{ role: "user" }] } } },
          {
            status: 400,
            body: {
              error: {
                message: "The request body must be a JSON object.",
                type: "invalid_request_error",
                param: null,
                code: "invalid_json",
              },
            },
          },
        ]);
      } finally {
        await app.close();
      }
    });
  });
});
