import { useEffect, useState } from "preact/hooks";
import { api, messageOf } from "../api.js";
import { ErrorNotice, Loading } from "../components/notice.js";
import { Page } from "../components/page.js";
import { ChatPanel } from "../components/playground-chat.js";
import { ImagePanel } from "../components/playground-image.js";
import { ModelSelect, NoModels } from "../components/playground-model-select.js";
import { SpeechPanel } from "../components/playground-speech.js";
import { PlaygroundTabs } from "../components/playground-tabs.js";
import { TranscriptionPanel } from "../components/playground-transcription.js";
import { recallPlayground, rememberPlayground } from "../playground-memory.js";
import type { List, Model } from "../types.js";

/**
 * KINDS are the playground's tabs: a service type, the tab's name, its panel's name (see PlaygroundTab), the word
 * for its models, and its panel.
 */
const KINDS = [
  { type: "llm", label: "Chat", panelLabel: "Chat", noun: "chat", Panel: ChatPanel },
  { type: "stt", label: "Transcription", panelLabel: "Audio to text", noun: "transcription", Panel: TranscriptionPanel },
  { type: "image", label: "Image", panelLabel: "Image generation", noun: "image", Panel: ImagePanel },
  { type: "tts", label: "Speech", panelLabel: "Text to audio", noun: "speech", Panel: SpeechPanel },
] as const;

/**
 * PlaygroundPage tries the models the mesh serves the member, one tab per service type, through the same OpenAI
 * routes their apps use, signed in by the session. The last tab and the model chosen in each are remembered.
 */
export function PlaygroundPage() {
  const [memory] = useState(recallPlayground);
  const [models, setModels] = useState<readonly Model[]>();
  const [error, setError] = useState<string>();
  const [loading, setLoading] = useState(true);
  const [tab, setTab] = useState(() => KINDS.find((kind) => kind.type === memory.tab)?.type ?? KINDS[0].type);
  const [chosen, setChosen] = useState<Readonly<Record<string, string>>>(memory.models);

  async function load() {
    setLoading(true);
    setError(undefined);
    try {
      setModels((await api<List<Model>>("GET", "/v1/models")).data);
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setLoading(false);
    }
  }
  useEffect(() => void load(), []);
  useEffect(() => rememberPlayground({ tab, models: chosen }), [tab, chosen]);

  function selectTab(key: string) {
    const kind = KINDS.find((candidate) => candidate.type === key);
    if (kind) setTab(kind.type);
  }

  const tabs = KINDS.map(({ type, label, panelLabel, noun, Panel }) => {
    const offered = (models ?? []).filter((model) => model.service_type === type);
    const model = offered.find((candidate) => candidate.id === chosen[type])?.id ?? offered[0]?.id;
    const panel =
      model === undefined ? (
        <NoModels kind={noun} onRetry={() => void load()} busy={loading} />
      ) : (
        <>
          <ModelSelect
            id={`model-${type}`}
            models={offered}
            value={model}
            onChange={(id) => setChosen((before) => ({ ...before, [type]: id }))}
          />
          <Panel model={model} />
        </>
      );
    return { key: type, label, panelLabel, panel };
  });

  return (
    <Page title="Playground" intro="Try the models the mesh serves you, through the same OpenAI routes your apps call.">
      <ErrorNotice error={error} />
      {models !== undefined ? (
        <PlaygroundTabs label="Service type" tabs={tabs} selected={tab} onSelect={selectTab} />
      ) : loading ? (
        <Loading>Loading your models…</Loading>
      ) : (
        <button type="button" onClick={() => void load()}>
          Try again
        </button>
      )}
    </Page>
  );
}
