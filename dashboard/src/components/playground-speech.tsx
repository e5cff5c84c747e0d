import { useEffect, useMemo, useState } from "preact/hooks";
import { call } from "../api.js";
import { useRequest } from "../use-request.js";
import { ActionRow } from "./action-row.js";

/** VOICES are OpenAI's voice names; servers that mimic its API map them to voices of their own. */
const VOICES = ["alloy", "ash", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer"] as const;

/** SpeechPanel has a text-to-speech model read a text aloud, in a player. */
export function SpeechPanel({ model }: { model: string }) {
  const speech = useRequest<Blob>();
  const [text, setText] = useState("");
  const [voice, setVoice] = useState<string>(VOICES[0]);
  const audio = useObjectUrl(speech.result);

  function submit(event: Event) {
    event.preventDefault();
    const input = text.trim();
    if (input === "") return;
    void speech.run((signal) => speak(model, input, voice, signal));
  }

  return (
    <div class="playground-media">
      <form onSubmit={submit}>
        <label for="speech-text">Text to speak</label>
        <textarea id="speech-text" rows={3} required value={text} onInput={(event) => setText(event.currentTarget.value)} />
        <label for="speech-voice">Voice</label>
        <select id="speech-voice" class="playground-select" value={voice} onChange={(event) => setVoice(event.currentTarget.value)}>
          {VOICES.map((name) => (
            <option key={name} value={name}>
              {name}
            </option>
          ))}
        </select>
        <ActionRow label="Speak" primary busy={speech.busy} status={speech.busy ? "Synthesising…" : ""} error={speech.error} />
      </form>
      {audio === undefined ? null : (
        <div class="playground-result">
          {/* biome-ignore lint/a11y/useMediaCaption: the text it was made from is on the page, just above the player. */}
          <audio controls aria-label="Speech" src={audio} />
          <p>
            <a href={audio} download="speech.mp3">
              Download
            </a>
          </p>
        </div>
      )}
    </div>
  );
}

/** speak posts to /v1/audio/speech and returns the MP3 it answers. */
async function speak(model: string, input: string, voice: string, signal: AbortSignal): Promise<Blob> {
  const response = await call("/v1/audio/speech", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, input, voice, response_format: "mp3" }),
    signal,
  });
  return await response.blob();
}

/** useObjectUrl gives a blob an address for as long as it is shown, and gives the address back after. */
function useObjectUrl(blob: Blob | undefined): string | undefined {
  const url = useMemo(() => (blob === undefined ? undefined : URL.createObjectURL(blob)), [blob]);
  useEffect(
    () => () => {
      if (url !== undefined) URL.revokeObjectURL(url);
    },
    [url],
  );
  return url;
}
