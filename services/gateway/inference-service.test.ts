import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import { type InferenceCall, InferenceCallSchema, MediaFileSchema, MediaRole, Operation } from "../../gen/infermesh/v1/inference_pb.js";
import { GatewayError } from "./gateway-errors.js";
import { readCall } from "./inference-service.js";

const call = (init: MessageInitShape<typeof InferenceCallSchema>): InferenceCall => create(InferenceCallSchema, init);
const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const chatBody = json({ model: "sim-llama", messages: [{ role: "user", content: "hi" }] });

/** refusal is the ConnectError readCall throws, as a gRPC caller reads it: the code and the message. */
function refusal(input: InferenceCall | undefined): { code: string; message: string } {
  try {
    readCall(input);
  } catch (error) {
    if (error instanceof ConnectError) return { code: Code[error.code], message: error.rawMessage };
    throw error;
  }
  throw new Error("expected a ConnectError, but readCall returned");
}

const invalid = (message: string) => ({ code: "InvalidArgument", message });

describe("readCall (the gRPC face's reading of a call)", () => {
  it("refuses a missing call, and an unspecified or unknown operation", () => {
    expect([
      refusal(undefined),
      refusal(call({ operation: Operation.UNSPECIFIED, model: "m", body: chatBody })),
      refusal(call({ operation: 99 as Operation, model: "m", body: chatBody })),
    ]).to.deep.equal([
      invalid("call.operation must be a known operation"),
      invalid("call.operation must be a known operation"),
      invalid("call.operation must be a known operation"),
    ]);
  });

  it("refuses an empty model", () => {
    expect(refusal(call({ operation: Operation.CHAT_COMPLETION, model: "", body: chatBody }))).to.deep.equal(
      invalid("call.model is required"),
    );
  });

  it("refuses a body that is empty or not JSON, naming call.body and keeping the reason as the cause", () => {
    const notJson = call({ operation: Operation.CHAT_COMPLETION, model: "m", body: Buffer.from('{"model":') });
    expect([refusal(call({ operation: Operation.CHAT_COMPLETION, model: "m" })), refusal(notJson)]).to.deep.equal([
      invalid("call.body: The request body is empty; send a JSON object."),
      invalid("call.body: The request body is not valid JSON: Unexpected end of JSON input"),
    ]);
    const cause = (() => {
      try {
        readCall(notJson);
      } catch (error) {
        return error instanceof ConnectError ? error.cause : error;
      }
      return undefined;
    })();
    expect(cause).to.be.instanceOf(GatewayError);
  });

  it("refuses a body that is not valid UTF-8 or nests too deep", () => {
    expect([
      refusal(call({ operation: Operation.CHAT_COMPLETION, model: "m", body: Buffer.from([0x7b, 0xff, 0x7d]) })),
      refusal(call({ operation: Operation.CHAT_COMPLETION, model: "m", body: Buffer.from(`${"[".repeat(200)}${"]".repeat(200)}`) })),
    ]).to.deep.equal([
      invalid("call.body: The request body is not valid UTF-8."),
      invalid("call.body: The request body nests arrays and objects more than 128 deep."),
    ]);
  });

  it("refuses a body that is JSON but not an object", () => {
    expect(
      ["[1,2]", "null", '"text"', "42"].map((body) =>
        refusal(call({ operation: Operation.CHAT_COMPLETION, model: "m", body: Buffer.from(body) })),
      ),
    ).to.deep.equal([
      invalid("call.body must be a JSON object"),
      invalid("call.body must be a JSON object"),
      invalid("call.body must be a JSON object"),
      invalid("call.body must be a JSON object"),
    ]);
  });

  it("refuses a form body with a field that is not a string or a list of strings, naming the field", () => {
    const form = (fields: Record<string, unknown>) => call({ operation: Operation.TRANSCRIPTION, model: "whisper", body: json(fields) });
    expect([
      refusal(form({ model: "whisper", temperature: 0.2 })),
      refusal(form({ model: "whisper", "timestamp_granularities[]": ["word", 1] })),
      refusal(form({ model: "whisper", language: null })),
      refusal(form({ model: "whisper", extra: { nested: "x" } })),
    ]).to.deep.equal([
      invalid("call.body: form field 'temperature' must be a string or a list of strings"),
      invalid("call.body: form field 'timestamp_granularities[]' must be a string or a list of strings"),
      invalid("call.body: form field 'language' must be a string or a list of strings"),
      invalid("call.body: form field 'extra' must be a string or a list of strings"),
    ]);
  });

  it("reads a valid JSON call into the InferenceRequest, with the caller's very bytes", () => {
    const body = Buffer.from('{ "model": "sim-llama",  "stream": true, "messages": [] }');
    const valid = call({ operation: Operation.CHAT_COMPLETION, model: "sim-llama", stream: true, body, requestId: "req-9" });
    const read = readCall(valid);
    expect(read).to.deep.equal({
      operation: Operation.CHAT_COMPLETION,
      model: "sim-llama",
      stream: true,
      body: { bytes: valid.body, fields: { model: "sim-llama", stream: true, messages: [] } },
      media: [],
      hideUsageChunks: false,
    });
    expect(Buffer.from(read.body.bytes).toString()).to.equal(body.toString());
  });

  it("reads a valid form call, its repeated fields as lists and its files as media", () => {
    const media = [{ role: MediaRole.AUDIO, filename: "a.wav", contentType: "audio/wav", data: Buffer.from("RIFF") }];
    const valid = call({
      operation: Operation.TRANSCRIPTION,
      model: "whisper",
      body: json({ model: "whisper", "timestamp_granularities[]": ["word", "segment"] }),
      media,
    });
    expect(readCall(valid)).to.deep.equal({
      operation: Operation.TRANSCRIPTION,
      model: "whisper",
      stream: false,
      body: { bytes: valid.body, fields: { model: "whisper", "timestamp_granularities[]": ["word", "segment"] } },
      media: media.map((file) => create(MediaFileSchema, file)),
      hideUsageChunks: false,
    });
  });
});
