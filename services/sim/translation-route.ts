import type { UploadedForm } from "./form-upload.js";
import { sendError } from "./http-replies.js";
import type { MediaContext } from "./media-replies.js";
import { formPacing, isError, pickModel, wholeAnswer } from "./media-replies.js";
import { translationOf } from "./simulated-transcript.js";
import { checkAudioUpload, transcriptContentType, transcriptionBody } from "./transcription-route.js";

/**
 * answerTranslation answers POST /v1/audio/translations like OpenAI, for "stt" models: the upload is checked and the
 * answer written as a transcription's is (json, text, srt, vtt or verbose_json), but the text is the upload's English
 * translation (see translationOf; tests predict it with expectedTranslation), verbose_json says task "translate" and
 * language "english", and, as OpenAI's translations take neither, `language`, timestamp_granularities and `stream`
 * are ignored and no usage is reported.
 */
export function answerTranslation(context: MediaContext, form: UploadedForm): void {
  const { res, config } = context;
  const model = form.fields.get("model")?.at(-1);
  context.note(model, false);
  if (pickModel(context, model, "stt") === undefined) return;
  const upload = checkAudioUpload(context, form);
  if (upload === undefined) return;
  const pacing = formPacing(form.fields, config);
  if (isError(pacing)) {
    sendError(res, pacing);
    return;
  }
  const translation = translationOf(upload.file);
  const verbose = { task: "translate", language: "english", temperature: upload.temperature, words: false, segments: true };
  context.play(
    wholeAnswer(pacing, transcriptContentType(upload.format), () => transcriptionBody(translation, upload.format, verbose, undefined)),
  );
}
