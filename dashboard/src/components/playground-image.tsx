import { useState } from "preact/hooks";
import { call } from "../api.js";
import { useRequest } from "../use-request.js";
import { ActionRow } from "./action-row.js";

/** SIZES are the sizes offered besides the model's own default; most image models take these. */
const SIZES = ["256x256", "512x512", "1024x1024"] as const;

/** GeneratedImage is an answer: the picture (src, shown inline) or a link to it elsewhere, and what was asked. */
interface GeneratedImage {
  readonly prompt: string;
  readonly src: string | undefined;
  readonly link: string | undefined;
  readonly revisedPrompt: string | undefined;
}

/** ImagePanel asks an image model for one picture from a prompt. */
export function ImagePanel({ model }: { model: string }) {
  const image = useRequest<GeneratedImage>();
  const [prompt, setPrompt] = useState("");
  const [size, setSize] = useState("");

  function submit(event: Event) {
    event.preventDefault();
    const asked = prompt.trim();
    if (asked === "") return;
    void image.run((signal) => generate(model, asked, size, signal));
  }

  const result = image.result;
  return (
    <div class="playground-media">
      <form onSubmit={submit}>
        <label for="image-prompt">Image prompt</label>
        <textarea id="image-prompt" rows={3} required value={prompt} onInput={(event) => setPrompt(event.currentTarget.value)} />
        <label for="image-size">Size</label>
        <select id="image-size" class="playground-select" value={size} onChange={(event) => setSize(event.currentTarget.value)}>
          <option value="">The model's default</option>
          {SIZES.map((choice) => (
            <option key={choice} value={choice}>
              {choice.replace("x", " × ")}
            </option>
          ))}
        </select>
        <ActionRow label="Generate image" primary busy={image.busy} status={image.busy ? "Generating…" : ""} error={image.error} />
      </form>
      {result === undefined ? null : (
        <figure class="playground-result playground-image">
          {result.src === undefined ? null : <img src={result.src} alt={result.prompt} />}
          <figcaption>
            {result.revisedPrompt ?? result.prompt}
            {result.src === undefined ? null : (
              <>
                {" · "}
                <a href={result.src} download="image">
                  Download
                </a>
              </>
            )}
            {result.link === undefined ? null : (
              <>
                {" · "}
                <a href={result.link} target="_blank" rel="noopener noreferrer">
                  Open the image
                </a>
              </>
            )}
          </figcaption>
        </figure>
      )}
    </div>
  );
}

/** generate posts to /v1/images/generations and reads OpenAI's answer, whether it carries base64 or a URL. */
async function generate(model: string, prompt: string, size: string, signal: AbortSignal): Promise<GeneratedImage> {
  const body = { model, prompt, n: 1, response_format: "b64_json", ...(size === "" ? {} : { size }) };
  const response = await call("/v1/images/generations", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  const answer = (await response.json()) as { data?: unknown; output_format?: unknown };
  const first = (Array.isArray(answer.data) ? answer.data[0] : undefined) as
    | { b64_json?: unknown; url?: unknown; revised_prompt?: unknown }
    | undefined;
  const revisedPrompt = typeof first?.revised_prompt === "string" && first.revised_prompt !== "" ? first.revised_prompt : undefined;
  if (typeof first?.b64_json === "string") {
    const format = typeof answer.output_format === "string" ? answer.output_format : "png";
    return { prompt, src: `data:image/${format};base64,${first.b64_json}`, link: undefined, revisedPrompt };
  }
  if (typeof first?.url === "string") {
    // The page may only show images of its own origin or inline data; any other address becomes a link.
    const inline = first.url.startsWith("data:image/") || new URL(first.url, location.href).origin === location.origin;
    return { prompt, src: inline ? first.url : undefined, link: inline ? undefined : first.url, revisedPrompt };
  }
  throw new Error("The answer carried no image.");
}
