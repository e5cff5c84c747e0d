import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { expect } from "chai";
import { Response } from "undici";
import { type MediaFile, MediaFileSchema, MediaRole, Operation } from "../../gen/infermesh/v1/inference_pb.js";
import { FormBodyError, parseFormFields } from "../shared/form-fields.js";
import { buildForm, openAiFormParts } from "./multipart-form.js";
import { readForm, recordedFile } from "./test-support/recorded-form.js";

const TRICKY_NAME = 'rec ü "1".wav';

function media(role: MediaRole, filename: string, contentType: string, text: string): MediaFile {
  return create(MediaFileSchema, { role, filename, contentType, data: Buffer.from(text) });
}

function formError(run: () => unknown): FormBodyError {
  try {
    run();
  } catch (error) {
    expect(error).to.be.instanceOf(FormBodyError);
    expect((error as FormBodyError).code).to.equal(Code.InvalidArgument);
    return error as FormBodyError;
  }
  throw new Error("expected a FormBodyError");
}

describe("multipart forms", () => {
  it("reads the gateway's form-field JSON in order, a repeated field once per value", () => {
    const body = Buffer.from(
      JSON.stringify({ model: "whisper-1", "timestamp_granularities[]": ["word", "segment"], temperature: "0.2", x: "" }),
    );
    expect(parseFormFields(body)).to.deep.equal([
      ["model", "whisper-1"],
      ["timestamp_granularities[]", "word"],
      ["timestamp_granularities[]", "segment"],
      ["temperature", "0.2"],
      ["x", ""],
    ]);
  });

  it("refuses a body that is not an object of strings and string lists", () => {
    for (const body of ["not json", "[]", "null", '{"n":2}', '{"a":["x",1]}', '{"a":{"b":"c"}}']) {
      formError(() => parseFormFields(Buffer.from(body)));
    }
    expect(formError(() => parseFormFields(Buffer.from('{"n":2}'))).message).to.contain("'n'");
  });

  it("names the files as OpenAI does: file, image or image[] in order, mask", () => {
    const audio = media(MediaRole.AUDIO, "a.wav", "audio/wav", "a");
    expect(openAiFormParts(Operation.TRANSCRIPTION, [], [audio]).files.map((f) => f.field)).to.deep.equal(["file"]);
    const one = media(MediaRole.IMAGE, "1.png", "image/png", "1");
    const two = media(MediaRole.IMAGE, "2.png", "image/png", "2");
    const mask = media(MediaRole.MASK, "m.png", "image/png", "m");
    expect(openAiFormParts(Operation.IMAGE_EDIT, [], [one, mask]).files.map((f) => [f.field, f.file.filename])).to.deep.equal([
      ["image", "1.png"],
      ["mask", "m.png"],
    ]);
    expect(openAiFormParts(Operation.IMAGE_EDIT, [], [mask, one, two]).files.map((f) => [f.field, f.file.filename])).to.deep.equal([
      ["image[]", "1.png"],
      ["image[]", "2.png"],
      ["mask", "m.png"],
    ]);
  });

  it("refuses media that do not fit the operation", () => {
    const audio = media(MediaRole.AUDIO, "a.wav", "audio/wav", "a");
    const image = media(MediaRole.IMAGE, "1.png", "image/png", "1");
    const mask = media(MediaRole.MASK, "m.png", "image/png", "m");
    expect(formError(() => openAiFormParts(Operation.TRANSCRIPTION, [], [])).message).to.contain("exactly one audio file, got none");
    formError(() => openAiFormParts(Operation.TRANSCRIPTION, [], [audio, audio]));
    formError(() => openAiFormParts(Operation.TRANSCRIPTION, [], [audio, image]));
    formError(() => openAiFormParts(Operation.IMAGE_EDIT, [], [mask]));
    formError(() => openAiFormParts(Operation.IMAGE_EDIT, [], [image, mask, mask]));
    expect(formError(() => openAiFormParts(Operation.IMAGE_EDIT, [], [image, audio])).message).to.contain("IMAGE, AUDIO");
  });

  it("builds a form a WHATWG parser reads back exactly: fields, repeats, file names, content types, bytes", async () => {
    const audio = media(MediaRole.AUDIO, TRICKY_NAME, "audio/x-wav", "RIFF....WAVE");
    const form = buildForm(
      openAiFormParts(
        Operation.TRANSCRIPTION,
        [
          ["a[]", "1"],
          ["b", "ü"],
          ["a[]", "2"],
        ],
        [audio],
      ),
    );
    const response = new Response(form);
    const body = Buffer.from(await response.arrayBuffer());
    const request = { method: "POST", path: "/", headers: { "content-type": response.headers.get("content-type") ?? "" }, body };
    expect(await readForm(request)).to.deep.equal([
      ["a[]", "1"],
      ["b", "ü"],
      ["a[]", "2"],
      ["file", recordedFile(TRICKY_NAME, "audio/x-wav", Buffer.from("RIFF....WAVE"))],
    ]);
    expect(body.toString("utf8")).to.contain('filename="rec ü %221%22.wav"');
  });
});
