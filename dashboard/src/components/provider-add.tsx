import { useState } from "preact/hooks";
import { api, messageOf } from "../api.js";
import type { CreatedApiKey } from "../types.js";
import { CopyButton } from "./copy-button.js";
import { ErrorNotice } from "./notice.js";

/** agentCommand is the command that connects llama.cpp's server on this machine to the mesh at origin. */
export function agentCommand(origin: string, key = "<KEY>"): string {
  return `infermesh agent --mesh ${origin} --api-key ${key} --upstream llm=http://127.0.0.1:8080`;
}

/** UPSTREAM_EXAMPLES are --upstream values for common servers on their default ports ([TYPE=][KIND+]URL[#MODEL]). */
const UPSTREAM_EXAMPLES: readonly (readonly [server: string, flag: string])[] = [
  ["Ollama", "llm=http://127.0.0.1:11434"],
  ["vLLM", "llm=http://127.0.0.1:8000"],
  ["whisper.cpp (it cannot list its model: name it after #)", "stt=whispercpp+http://127.0.0.1:8081#MODEL"],
  ["AUTOMATIC1111 or Forge", "image=automatic1111+http://127.0.0.1:7860"],
];

/**
 * ProviderAdd tells how to add a provider: the agent command to paste on the machine with the model server, and a
 * button that makes a key for it and puts the key into the command (shown this once, as on the tokens page).
 */
export function ProviderAdd() {
  const [key, setKey] = useState<CreatedApiKey>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const command = agentCommand(location.origin, key?.key);

  async function makeKey() {
    setBusy(true);
    setError(undefined);
    try {
      setKey(await api<CreatedApiKey>("POST", "/api/keys", { label: "agent" }));
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section class="provider-add" aria-labelledby="provider-add-title">
      <h2 id="provider-add-title">Add a provider</h2>
      <p>
        A provider is the <code>infermesh agent</code> on a machine that runs a model server: it connects to this mesh and serves that
        server's models to you (and to whoever you share them with). Run this there:
      </p>
      <pre>
        <code id="agent-command">{command}</code>
      </pre>
      <div class="actions">
        <button type="button" class="primary" disabled={busy} onClick={makeKey}>
          Make a key for this agent
        </button>
        <CopyButton text={command} target="agent-command" label="Copy command" />
      </div>
      <p role="status" class={key ? "secret" : "visually-hidden"}>
        {key ? "A new key labelled “agent” is in the command above. Copy it now: it is not shown again." : ""}
      </p>
      <ErrorNotice error={error} />
      <div class="hint provider-add-hints">
        <p>
          Another model server? Give one <code>--upstream</code> for each (the type, then its address), or add <code>--discover</code> to
          find llama.cpp, Ollama, vLLM, LM Studio and LocalAI on their usual ports:
        </p>
        <ul class="provider-add-servers">
          {UPSTREAM_EXAMPLES.map(([server, flag]) => (
            <li key={server}>
              {server}: <code>--upstream {flag}</code>
            </li>
          ))}
        </ul>
        <p>
          <code>--api-key-file FILE</code> in place of <code>--api-key KEY</code> keeps the key out of the shell history (and out of{" "}
          <code>ps</code>). <code>--share public</code> or <code>--share users:alice,bob</code> sets who may use the models each time the
          agent starts; without it, what you choose here stays.
        </p>
      </div>
    </section>
  );
}
