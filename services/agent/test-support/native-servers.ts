import type { ServerResponse } from "node:http";
import type { FakeHandler, FakeRequest } from "./fake-upstream.js";
import { type RecordedEntry, readForm } from "./recorded-form.js";
import { tinyPng } from "./tiny-png.js";
import {
  WHISPER_CPP_CONTENT_TYPES,
  WHISPER_CPP_SRT,
  WHISPER_CPP_TEXT,
  WHISPER_CPP_VERBOSE,
  WHISPER_CPP_VTT,
} from "./whisper-cpp-samples.js";

/** NativeRecord collects what a fake native server was sent: forms for whisper.cpp, JSON payloads for AUTOMATIC1111. */
export interface NativeRecord {
  readonly forms: RecordedEntry[][];
  readonly payloads: Record<string, unknown>[];
}

function send(response: ServerResponse, status: number, contentType: string, body: string): void {
  response.writeHead(status, { "content-type": contentType });
  response.end(body);
}

/**
 * whisperCppServer answers like whisper.cpp's server example: GET /health, POST /inference in the format the form's
 * response_format asks for (json by default) with that format's content type, `{"error": ...}` with HTTP 200 for
 * audio it cannot read (here: audio starting with "bad"), and httplib's plain-text 404 elsewhere.
 */
export function whisperCppServer(record: NativeRecord): FakeHandler {
  return (request, response) => {
    if (request.method === "GET" && request.path === "/health") return send(response, 200, "application/json", '{"status":"ok"}');
    if (request.method !== "POST" || request.path !== "/inference") {
      return send(response, 404, "text/plain", `File Not Found (${request.path})`);
    }
    void answerInference(record, request, response);
  };
}

async function answerInference(record: NativeRecord, request: FakeRequest, response: ServerResponse): Promise<void> {
  const form = await readForm(request);
  record.forms.push(form);
  const file = form.find(([name]) => name === "file")?.[1];
  if (file === undefined) return send(response, 200, "application/json", `{"error":"no 'file' field in the request"}`);
  if (request.body.includes("bad-audio")) return send(response, 200, "application/json", '{"error":"failed to read audio data"}');
  const format = String(form.find(([name]) => name === "response_format")?.[1] ?? "json");
  const bodies: Record<string, string> = {
    json: JSON.stringify({ text: WHISPER_CPP_TEXT }),
    text: WHISPER_CPP_TEXT,
    srt: WHISPER_CPP_SRT,
    vtt: WHISPER_CPP_VTT,
    verbose_json: JSON.stringify(WHISPER_CPP_VERBOSE),
  };
  send(response, 200, WHISPER_CPP_CONTENT_TYPES[format] ?? "application/json", bodies[format] ?? bodies["json"] ?? "");
}

/** SD_MODELS is the fake WebUI's checkpoint list, as GET /sdapi/v1/sd-models answers it. */
export const SD_MODELS = [
  {
    title: "v1-5-pruned-emaonly.safetensors [6ce0161689]",
    model_name: "v1-5-pruned-emaonly",
    hash: "6ce0161689",
    sha256: "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa",
    filename: "/webui/models/Stable-diffusion/v1-5-pruned-emaonly.safetensors",
    config: null,
  },
  {
    title: "sd_xl_base_1.0.safetensors [31e35c80fc]",
    model_name: "sd_xl_base_1.0",
    hash: "31e35c80fc",
    sha256: "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b",
    filename: "/webui/models/Stable-diffusion/sd_xl_base_1.0.safetensors",
    config: null,
  },
];

/** generatedPng is the image the fake WebUI generates at an index of a batch: real PNG bytes of the asked size. */
export function generatedPng(width: number, height: number, index: number): Buffer {
  return tinyPng({ width, height, seed: index + 1 });
}

/**
 * automatic1111Server answers like the WebUI's API (--api): sd-models, and txt2img / img2img with batch_size PNGs of
 * width x height (512 x 512 by default) in base64, the parameters echoed and info as JSON text. Like its pydantic
 * models it answers 422 for a steps value that is not an integer, and a prompt of "explode" fails the way an
 * exception in a script does: HTTP 500 with the exception's name and text.
 */
export function automatic1111Server(record: NativeRecord): FakeHandler {
  return (request, response) => {
    if (request.method === "GET" && request.path === "/sdapi/v1/sd-models") {
      return send(response, 200, "application/json", JSON.stringify(SD_MODELS));
    }
    if (request.method !== "POST" || !["/sdapi/v1/txt2img", "/sdapi/v1/img2img"].includes(request.path)) {
      return send(response, 404, "application/json", '{"detail":"Not Found"}');
    }
    const payload = JSON.parse(request.body.toString("utf8")) as Record<string, unknown>;
    record.payloads.push(payload);
    if (payload["steps"] !== undefined && !/^\d+$/.test(String(payload["steps"]))) {
      const detail = [{ loc: ["body", "steps"], msg: "value is not a valid integer", type: "type_error.integer" }];
      return send(response, 422, "application/json", JSON.stringify({ detail }));
    }
    if (payload["prompt"] === "explode") {
      const failure = { error: "RuntimeError", detail: "", body: "", errors: "CUDA out of memory" };
      return send(response, 500, "application/json", JSON.stringify(failure));
    }
    const width = Number(payload["width"] ?? 512);
    const height = Number(payload["height"] ?? 512);
    const count = Number(payload["batch_size"] ?? 1);
    const images = Array.from({ length: count }, (_, index) => generatedPng(width, height, index).toString("base64"));
    const info = JSON.stringify({ prompt: payload["prompt"], seed: 1234, width, height, sd_model_name: "v1-5-pruned-emaonly" });
    send(response, 200, "application/json", JSON.stringify({ images, parameters: { ...payload, init_images: null }, info }));
  };
}
