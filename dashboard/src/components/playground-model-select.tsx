import { PATHS } from "../paths.js";
import type { Model } from "../types.js";

/** ModelSelect picks one of a service type's models; the hint under it names the providers that serve it. */
export function ModelSelect({
  id,
  models,
  value,
  onChange,
}: {
  id: string;
  models: readonly Model[];
  value: string;
  onChange: (model: string) => void;
}) {
  const current = models.find((model) => model.id === value);
  return (
    <div class="playground-model">
      <label for={id}>Model</label>
      <select
        id={id}
        class="playground-select"
        value={value}
        onChange={(event) => onChange(event.currentTarget.value)}
        aria-describedby={`${id}-hint`}
      >
        {models.map((model) => (
          <option key={model.id} value={model.id}>
            {model.id}
          </option>
        ))}
      </select>
      <p class="hint" id={`${id}-hint`}>
        {current?.owned_by ? `Served by ${current.owned_by.split(",").join(", ")}` : ""}
      </p>
    </div>
  );
}

/** NoModels says that no model of a kind is online for the member, and where to look, or to look again. */
export function NoModels({ kind, onRetry, busy }: { kind: string; onRetry: () => void; busy: boolean }) {
  return (
    <div class="playground-empty">
      <p>
        No {kind} model is online for you right now. Start an agent that serves one, or ask a member to share theirs; see{" "}
        <a href={PATHS.providers}>My providers</a>.
      </p>
      <button type="button" onClick={onRetry} disabled={busy}>
        Check again
      </button>
    </div>
  );
}
