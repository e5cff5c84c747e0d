import { useState } from "preact/hooks";
import { api, messageOf } from "../api.js";
import { formatAgo, formatCount } from "../format.js";
import type { Provider, ProviderModel } from "../types.js";
import { ActionRow } from "./action-row.js";
import { ProviderSharingForm } from "./provider-sharing-form.js";

/** loadText says how busy a provider is: "2 in flight of 4, 1 queued" (no "of" when it sets no limit). */
export function loadText({ in_flight, max_concurrency, queued }: Provider["load"]): string {
  const limit = max_concurrency > 0 ? ` of ${formatCount(max_concurrency)}` : "";
  return `${formatCount(in_flight)} in flight${limit}, ${formatCount(queued)} queued`;
}

/**
 * ProviderCard is one of the member's providers: its state and load, its models, the pause switch and its sharing.
 * onChanged receives the provider as the gateway answered a change, so that the card shows it at once.
 */
export function ProviderCard({ provider, onChanged }: { provider: Provider; onChanged: (provider: Provider) => void }) {
  const [busy, setBusy] = useState(false);
  const [said, setSaid] = useState("");
  const [error, setError] = useState<string>();
  const action = provider.paused ? "Resume" : "Pause";

  async function toggle() {
    setBusy(true);
    setError(undefined);
    setSaid("");
    try {
      const path = `/api/providers/${encodeURIComponent(provider.id)}/${provider.paused ? "resume" : "pause"}`;
      const answer = await api<Provider>("POST", path);
      onChanged(answer);
      setSaid(answer.paused ? "Paused: no new call reaches it; calls in flight finish." : "Resumed: it takes calls again.");
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  }

  return (
    <article class="card provider">
      <div class="provider-head">
        <h2>{provider.name}</h2>
        <span class={`badge ${provider.status}`}>{provider.status}</span>
      </div>
      <dl class="provider-facts">
        <div>
          <dt>Last seen</dt>
          <dd>{formatAgo(provider.last_seen)}</dd>
        </div>
        <div>
          <dt>Version</dt>
          <dd>{provider.version || "—"}</dd>
        </div>
        <div>
          <dt>Load</dt>
          <dd>{loadText(provider.load)}</dd>
        </div>
        <div>
          <dt>Id</dt>
          <dd>
            <code>{provider.id}</code>
          </dd>
        </div>
      </dl>
      <h3 class="provider-subhead">Models</h3>
      {provider.models.length === 0 ? (
        <p class="hint">No models announced{provider.online ? " yet" : " while it was last online"}.</p>
      ) : (
        <ul class="provider-models">
          {provider.models.map((model) => (
            <ProviderModelItem key={`${model.id}\u0000${model.service_type}`} model={model} />
          ))}
        </ul>
      )}
      <div class="provider-pause">
        <ActionRow label={action} ariaLabel={`${action} ${provider.name}`} onClick={toggle} busy={busy} status={said} error={error} />
      </div>
      <ProviderSharingForm provider={provider} onChanged={onChanged} />
    </article>
  );
}

function ProviderModelItem({ model }: { model: ProviderModel }) {
  const details = [
    model.service_type,
    model.supported_features.length > 0 ? model.supported_features.join(", ") : undefined,
    model.context_length === null ? undefined : `context ${formatCount(model.context_length)} tokens`,
  ].filter((detail) => detail !== undefined);
  return (
    <li>
      <code>{model.id}</code>
      <span class="hint"> · {details.join(" · ")}</span>
    </li>
  );
}
