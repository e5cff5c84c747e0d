import { create } from "@bufbuild/protobuf";
import { expect } from "chai";
import { type MediaFile, MediaFileSchema, MediaRole } from "../../gen/infermesh/v1/inference_pb.js";
import {
  type Automatic1111Request,
  type ImagePlan,
  img2imgRequest,
  openAiImagesAnswer,
  parseSdModels,
  txt2imgRequest,
} from "./automatic1111-adapter.js";
import { base64MediaType, imageMediaType, pngHeader } from "./image-format.js";
import { tinyPng } from "./test-support/tiny-png.js";
import type { TranslatedAnswer } from "./translated-answer.js";

const MODEL = "v1-5-pruned-emaonly";
const NOW_MS = 1_750_000_000_123;

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

function planned(result: Automatic1111Request | TranslatedAnswer): Automatic1111Request {
  if ("kind" in result) throw new Error(`expected a request, got ${JSON.stringify(result)}`);
  return result;
}

function refusal(result: Automatic1111Request | TranslatedAnswer): unknown {
  if (!("kind" in result) || result.kind !== "body") throw new Error("expected a refusal");
  expect(result.status).to.equal(400);
  return JSON.parse(Buffer.from(result.body).toString());
}

function file(role: MediaRole, bytes: Buffer, filename = "in.png"): MediaFile {
  return create(MediaFileSchema, { role, filename, contentType: "image/png", data: bytes });
}

describe("AUTOMATIC1111 adapter", () => {
  it("maps a generation to txt2img: prompt, n as batch_size, size, the model as checkpoint, the rest passed through", () => {
    const body = json({
      model: MODEL,
      prompt: "a lighthouse at dusk",
      n: 2,
      size: "640x384",
      response_format: "b64_json",
      quality: "hd",
      style: "vivid",
      user: "u-1",
      negative_prompt: "blurry",
      steps: 20,
      seed: 42,
      override_settings: { CLIP_stop_at_last_layers: 2 },
    });
    const request = planned(txt2imgRequest(body, MODEL, false));
    expect(request.payload).to.deep.equal({
      prompt: "a lighthouse at dusk",
      negative_prompt: "blurry",
      steps: 20,
      seed: 42,
      batch_size: 2,
      width: 640,
      height: 384,
      override_settings: { CLIP_stop_at_last_layers: 2, sd_model_checkpoint: MODEL },
      override_settings_restore_afterwards: false,
    });
    expect(request.plan).to.deep.equal({ operation: "generation", responseFormat: "b64_json", n: 2, stream: false });
    const defaults = planned(txt2imgRequest(json({ model: MODEL, prompt: "x", size: "auto" }), MODEL, true));
    expect(defaults.payload).to.not.have.any.keys("width", "height");
    expect(defaults.plan).to.deep.equal({ operation: "generation", responseFormat: "b64_json", n: 1, stream: true });
  });

  it("refuses what txt2img cannot do as the client's error", () => {
    expect(refusal(txt2imgRequest(json({ prompt: "x", size: "big" }), MODEL, false))).to.deep.nested.include({ "error.param": "size" });
    expect(refusal(txt2imgRequest(json({ prompt: "x", n: 11 }), MODEL, false))).to.deep.nested.include({ "error.param": "n" });
    expect(refusal(txt2imgRequest(json({ prompt: "x", response_format: "png" }), MODEL, false))).to.deep.nested.include({
      "error.param": "response_format",
    });
    expect(refusal(txt2imgRequest(Buffer.from("[1]"), MODEL, false))).to.deep.nested.include({ "error.type": "invalid_request_error" });
  });

  it("maps an edit to img2img: the image and an alpha mask as base64, inverted, the input's size, form fields passed on", () => {
    const image = tinyPng({ width: 64, height: 48, seed: 3 });
    const mask = tinyPng({ width: 64, height: 48, alpha: true });
    const request = planned(
      img2imgRequest(
        [
          ["model", MODEL],
          ["prompt", "add a red boat"],
          ["n", "1"],
          ["response_format", "url"],
          ["denoising_strength", "0.6"],
        ],
        [file(MediaRole.IMAGE, image), file(MediaRole.MASK, mask, "mask.png")],
        MODEL,
        false,
      ),
    );
    expect(request.payload).to.deep.equal({
      mask: mask.toString("base64"),
      inpainting_mask_invert: 1,
      inpainting_fill: 1,
      denoising_strength: "0.6",
      prompt: "add a red boat",
      init_images: [image.toString("base64")],
      batch_size: 1,
      width: 64,
      height: 48,
      override_settings: { sd_model_checkpoint: MODEL },
      override_settings_restore_afterwards: false,
    });
    expect(request.plan).to.deep.equal({ operation: "edit", responseFormat: "url", n: 1, stream: false });
    const blackAndWhite = planned(
      img2imgRequest(
        [
          ["prompt", "x"],
          ["size", "512x512"],
        ],
        [file(MediaRole.IMAGE, image), file(MediaRole.MASK, tinyPng({ width: 64, height: 48 }))],
        MODEL,
        false,
      ),
    );
    expect(blackAndWhite.payload).to.deep.include({ inpainting_mask_invert: 0, width: 512, height: 512 });
  });

  it("refuses several input images, which AUTOMATIC1111 would answer with one image each", () => {
    const image = file(MediaRole.IMAGE, tinyPng({ width: 8, height: 8 }));
    expect(refusal(img2imgRequest([["prompt", "x"]], [image, image], MODEL, false))).to.deep.equal({
      error: { message: "this server edits one image at a time, got 2", type: "invalid_request_error", param: "image", code: null },
    });
  });

  it("answers OpenAI's images shape, at most n images, as b64_json or data: URLs, the bytes unchanged", () => {
    const pngs = [tinyPng({ width: 16, height: 8, seed: 1 }), tinyPng({ width: 16, height: 8, seed: 2 }), tinyPng({ width: 4, height: 4 })];
    const answer = json({ images: pngs.map((png) => png.toString("base64")), parameters: { prompt: "x" }, info: '{"seed": 42}' });
    const plan: ImagePlan = { operation: "generation", responseFormat: "b64_json", n: 2, stream: false };
    const translated = openAiImagesAnswer(plan, 200, "application/json", answer, NOW_MS);
    if (translated.kind !== "body") throw new Error(translated.kind);
    const body = JSON.parse(Buffer.from(translated.body).toString()) as { created: number; data: { b64_json: string }[] };
    expect(body).to.deep.equal({ created: 1_750_000_000, data: pngs.slice(0, 2).map((png) => ({ b64_json: png.toString("base64") })) });
    expect(Buffer.from(body.data[1]?.b64_json ?? "", "base64")).to.deep.equal(pngs[1]);

    const urls = openAiImagesAnswer({ ...plan, responseFormat: "url", n: 1 }, 200, "application/json", answer, NOW_MS);
    if (urls.kind !== "body") throw new Error(urls.kind);
    expect(JSON.parse(Buffer.from(urls.body).toString())).to.deep.equal({
      created: 1_750_000_000,
      data: [{ url: `data:image/png;base64,${(pngs[0] as Buffer).toString("base64")}` }],
    });
  });

  it("streams one completed event per image when the client asked to stream", () => {
    const png = tinyPng({ width: 4, height: 4 }).toString("base64");
    const translated = openAiImagesAnswer(
      { operation: "edit", responseFormat: "b64_json", n: 1, stream: true },
      200,
      "application/json",
      json({ images: [png] }),
      NOW_MS,
    );
    if (translated.kind !== "events") throw new Error(translated.kind);
    expect(translated.events.map((e) => [e.event, JSON.parse(Buffer.from(e.data).toString())])).to.deep.equal([
      ["image_edit.completed", { type: "image_edit.completed", b64_json: png, created_at: 1_750_000_000 }],
    ]);
  });

  it("turns a 422 into the client's 400 naming the field, and a 404 or an answer without images into a failure", () => {
    const plan: ImagePlan = { operation: "generation", responseFormat: "b64_json", n: 1, stream: false };
    const invalid = openAiImagesAnswer(
      plan,
      422,
      "application/json",
      json({ detail: [{ loc: ["body", "steps"], msg: "value is not a valid integer", type: "type_error.integer" }] }),
      NOW_MS,
    );
    if (invalid.kind !== "body") throw new Error(invalid.kind);
    expect(JSON.parse(Buffer.from(invalid.body).toString())).to.deep.nested.include({
      "error.message": "the image server refused the request: steps: value is not a valid integer",
    });
    expect(openAiImagesAnswer(plan, 404, "application/json", json({ detail: "Not Found" }), NOW_MS)).to.deep.equal({
      kind: "failed",
      message: "answered HTTP 404 on /sdapi/v1/txt2img: is the WebUI started with --api?",
    });
    expect(openAiImagesAnswer(plan, 200, "application/json", json({ images: [], info: "" }), NOW_MS)).to.deep.include({ kind: "failed" });
  });

  it("lists sd-models by model_name", () => {
    expect(
      parseSdModels([
        {
          title: "v1-5-pruned-emaonly.safetensors [6ce0161689]",
          model_name: MODEL,
          hash: "6ce0161689",
          sha256: "6ce0",
          filename: "/m/v1.safetensors",
          config: null,
        },
        { title: "broken" },
      ]),
    ).to.deep.equal({ models: [{ id: MODEL }], engine: "automatic1111" });
    expect(parseSdModels({ data: [] })).to.equal(undefined);
  });

  it("reads image formats and PNG headers by their bytes", () => {
    expect(pngHeader(tinyPng({ width: 300, height: 200, alpha: true }))).to.deep.equal({ width: 300, height: 200, hasAlpha: true });
    expect(pngHeader(Buffer.from("GIF89a"))).to.equal(undefined);
    expect(imageMediaType(Buffer.from([0xff, 0xd8, 0xff, 0xe0]))).to.equal("image/jpeg");
    expect(imageMediaType(Buffer.from("RIFF\0\0\0\0WEBPVP8 "))).to.equal("image/webp");
    expect(base64MediaType(tinyPng({ width: 1, height: 1 }).toString("base64"))).to.equal("image/png");
    expect(imageMediaType(Buffer.from("hello"))).to.equal("application/octet-stream");
  });
});
