import { create } from "@bufbuild/protobuf";
import { expect } from "chai";
import { type MediaFile, MediaFileSchema, MediaRole } from "../../gen/infermesh/v1/inference_pb.js";
import type { FormFields } from "../shared/form-fields.js";
import { WHISPER_CPP_CONTENT_TYPES, WHISPER_CPP_SRT, WHISPER_CPP_TEXT, WHISPER_CPP_VERBOSE } from "./test-support/whisper-cpp-samples.js";
import type { TranslatedAnswer } from "./translated-answer.js";
import {
  joinedTranscript,
  openAiVerboseJson,
  type WhisperCppPlan,
  whisperCppAnswer,
  whisperCppPlan,
  wordsOf,
} from "./whisper-cpp-adapter.js";

const AUDIO: MediaFile = create(MediaFileSchema, {
  role: MediaRole.AUDIO,
  filename: "a.wav",
  contentType: "audio/wav",
  data: Buffer.from("RIFF"),
});
const TRANSCRIPT = "And so my fellow Americans, ask not.";

function plan(fields: FormFields, stream = false): WhisperCppPlan {
  const result = whisperCppPlan(fields, [AUDIO], stream);
  if ("kind" in result) throw new Error(`expected a plan, got ${JSON.stringify(result)}`);
  return result;
}

function answer(p: WhisperCppPlan, format: string, body: string, status = 200): TranslatedAnswer {
  return whisperCppAnswer(p, status, WHISPER_CPP_CONTENT_TYPES[format] ?? "application/json", Buffer.from(body));
}

function bodyJson(translated: TranslatedAnswer): unknown {
  if (translated.kind !== "body") throw new Error(`expected a body, got ${translated.kind}`);
  return JSON.parse(Buffer.from(translated.body).toString("utf8"));
}

describe("whisper.cpp adapter", () => {
  it("maps OpenAI's form to /inference: format, language ('auto' when absent), the rest as sent, OpenAI-only fields left out", () => {
    const p = plan([
      ["model", "whisper-large-v3"],
      ["prompt", "JFK"],
      ["temperature", "0.2"],
      ["timestamp_granularities[]", "word"],
      ["timestamp_granularities[]", "segment"],
      ["response_format", "verbose_json"],
      ["stream", "false"],
      ["beam_size", "5"],
    ]);
    expect(p.form.fields).to.deep.equal([
      ["response_format", "verbose_json"],
      ["language", "auto"],
      ["translate", "false"],
      ["prompt", "JFK"],
      ["temperature", "0.2"],
      ["beam_size", "5"],
    ]);
    expect(p.form.files).to.deep.equal([{ field: "file", file: AUDIO }]);
    expect(p).to.deep.include({ format: "verbose_json", segments: true, words: true, stream: false });
    expect(plan([["language", "de"]]).form.fields).to.deep.equal([
      ["response_format", "json"],
      ["language", "de"],
      ["translate", "false"],
    ]);
    expect(plan([["timestamp_granularities[]", "word"]])).to.deep.include({ segments: false, words: true });
    expect(plan([], true).stream, "json streams").to.equal(true);
    expect(plan([["response_format", "srt"]], true).stream, "srt does not").to.equal(false);
  });

  it("asks for a translation with translate=true, whatever the client put in that field, and for a transcript with false", () => {
    const translation = whisperCppPlan(
      [
        ["model", "whisper-large-v3"],
        ["translate", "false"],
        ["prompt", "JFK"],
      ],
      [AUDIO],
      false,
      "translate",
    );
    expect((translation as WhisperCppPlan).form.fields).to.deep.equal([
      ["response_format", "json"],
      ["language", "auto"],
      ["translate", "true"],
      ["prompt", "JFK"],
    ]);
    expect(plan([["translate", "true"]]).form.fields, "a transcription stays one on a server started with --translate").to.deep.equal([
      ["response_format", "json"],
      ["language", "auto"],
      ["translate", "false"],
    ]);
    expect(() => whisperCppPlan([], [], false, "translate")).to.throw("a translation takes exactly one audio file, got none");
  });

  it("refuses a response format whisper.cpp cannot give, as the client's error", () => {
    const refused = whisperCppPlan([["response_format", "diarized_json"]], [AUDIO], false);
    expect(bodyJson(refused as TranslatedAnswer)).to.deep.equal({
      error: {
        message: "response_format must be one of json, text, srt, verbose_json, vtt",
        type: "invalid_request_error",
        param: "response_format",
        code: null,
      },
    });
  });

  it("answers json and text with OpenAI's joined transcript, text as text/plain", () => {
    expect(bodyJson(answer(plan([]), "json", JSON.stringify({ text: WHISPER_CPP_TEXT })))).to.deep.equal({ text: TRANSCRIPT });
    const text = answer(plan([["response_format", "text"]]), "text", WHISPER_CPP_TEXT);
    expect(text).to.deep.equal({
      kind: "body",
      status: 200,
      contentType: "text/plain; charset=utf-8",
      body: Buffer.from(`${TRANSCRIPT}\n`),
    });
  });

  it("passes srt and vtt through as text/plain", () => {
    const srt = answer(plan([["response_format", "srt"]]), "srt", WHISPER_CPP_SRT);
    expect(srt).to.deep.equal({ kind: "body", status: 200, contentType: "text/plain; charset=utf-8", body: Buffer.from(WHISPER_CPP_SRT) });
  });

  it("maps verbose_json to OpenAI's shape: joined text, segments, words, duration usage", () => {
    const p = plan([
      ["response_format", "verbose_json"],
      ["timestamp_granularities[]", "word"],
      ["timestamp_granularities[]", "segment"],
    ]);
    expect(bodyJson(answer(p, "verbose_json", JSON.stringify(WHISPER_CPP_VERBOSE)))).to.deep.equal({
      task: "transcribe",
      language: "english",
      duration: 3.5,
      text: TRANSCRIPT,
      words: [
        { word: "And", start: 0, end: 0.32 },
        { word: "so", start: 0.32, end: 0.5 },
        { word: "my", start: 0.5, end: 0.7 },
        { word: "fellow", start: 0.7, end: 1.1 },
        { word: "Americans", start: 1.1, end: 2 },
        { word: "ask", start: 2, end: 2.6 },
        { word: "not", start: 2.6, end: 3.5 },
      ],
      segments: [
        {
          id: 0,
          seek: 0,
          start: 0,
          end: 2,
          text: " And so my fellow Americans,",
          tokens: [400, 370, 452, 7177, 6280, 11],
          temperature: 0,
          avg_logprob: -0.21,
          no_speech_prob: 0.012,
        },
        {
          id: 1,
          seek: 200,
          start: 2,
          end: 3.5,
          text: " ask not.",
          tokens: [1029, 406, 13],
          temperature: 0,
          avg_logprob: -0.3,
          no_speech_prob: 0.02,
        },
      ],
      usage: { type: "duration", seconds: 4 },
    });
    const segmentsOnly = openAiVerboseJson(WHISPER_CPP_VERBOSE, { segments: true, words: false });
    expect(segmentsOnly).to.have.keys("task", "language", "duration", "text", "segments", "usage");
  });

  it("joins tokens into words and lines into a transcript, for languages with and without spaces", () => {
    expect(
      wordsOf([
        {
          words: [
            { word: "こんにちは", start: 0, end: 1 },
            { word: "世界", start: 1, end: 2 },
          ],
        },
      ]),
    ).to.deep.equal([{ word: "こんにちは世界", start: 0, end: 2 }]);
    expect(joinedTranscript("こんにちは\n世界\n")).to.equal("こんにちは世界");
    expect(joinedTranscript(" Hello\r\n world.\n")).to.equal("Hello world.");
  });

  it("streams the transcript as a delta and a done event when the client asked to stream", () => {
    const streamed = answer(plan([], true), "json", JSON.stringify({ text: WHISPER_CPP_TEXT }));
    if (streamed.kind !== "events") throw new Error(streamed.kind);
    expect(streamed.events.map((e) => [e.event, JSON.parse(Buffer.from(e.data).toString())])).to.deep.equal([
      ["", { type: "transcript.text.delta", delta: TRANSCRIPT }],
      ["", { type: "transcript.text.done", text: TRANSCRIPT }],
    ]);
  });

  it("turns whisper.cpp's 200 {error} into the client's 400, and a 404 or a missing transcript into a failure", () => {
    expect(bodyJson(answer(plan([]), "json", '{"error":"failed to read audio data"}'))).to.deep.equal({
      error: {
        message: "whisper.cpp could not transcribe the audio: failed to read audio data",
        type: "invalid_request_error",
        param: "file",
        code: null,
      },
    });
    expect(whisperCppAnswer(plan([]), 404, "text/plain", Buffer.from("File Not Found (/inference)"))).to.deep.equal({
      kind: "failed",
      message: "answered HTTP 404 on /inference: is it whisper.cpp's server?",
    });
    expect(answer(plan([]), "json", '{"txt":"x"}')).to.deep.include({ kind: "failed" });
  });
});
