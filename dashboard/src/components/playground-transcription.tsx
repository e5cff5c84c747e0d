import { call } from "../api.js";
import { useRequest } from "../use-request.js";
import { ActionRow } from "./action-row.js";

/** TranscriptionPanel sends an audio file to a speech-to-text model and shows what it heard. */
export function TranscriptionPanel({ model }: { model: string }) {
  const transcript = useRequest<string>();

  function submit(event: Event) {
    event.preventDefault();
    const file = new FormData(event.currentTarget as HTMLFormElement).get("file");
    if (!(file instanceof File) || file.name === "") return;
    void transcript.run((signal) => transcribe(model, file, signal));
  }

  return (
    <div class="playground-media">
      <form onSubmit={submit}>
        <label for="transcription-file">Audio file</label>
        <input id="transcription-file" name="file" type="file" accept="audio/*" required aria-describedby="transcription-hint" />
        <p class="hint" id="transcription-hint">
          A recording in a format the model reads, such as WAV, MP3, FLAC or Ogg.
        </p>
        <ActionRow
          label="Transcribe"
          primary
          busy={transcript.busy}
          status={transcript.busy ? "Transcribing…" : ""}
          error={transcript.error}
        />
      </form>
      {transcript.result === undefined ? null : (
        <div class="playground-result">
          <h2>Transcript</h2>
          <output aria-label="Transcript" class="playground-transcript">
            {transcript.result || <span class="hint">(the model heard no words)</span>}
          </output>
        </div>
      )}
    </div>
  );
}

/** transcribe posts the file to /v1/audio/transcriptions and returns the text of OpenAI's json answer. */
async function transcribe(model: string, file: File, signal: AbortSignal): Promise<string> {
  const form = new FormData();
  form.append("file", file);
  form.append("model", model);
  form.append("response_format", "json");
  const response = await call("/v1/audio/transcriptions", { method: "POST", body: form, signal });
  const { text } = (await response.json()) as { text?: unknown };
  if (typeof text !== "string") throw new Error("The answer carried no transcript.");
  return text;
}
