import { useEffect, useState } from "preact/hooks";
import { api, messageOf } from "../api.js";
import { CopyButton } from "../components/copy-button.js";
import { ErrorNotice, Loading } from "../components/notice.js";
import { Page } from "../components/page.js";
import { formatAgo, formatUnixTime } from "../format.js";
import type { ApiKey, CreatedApiKey, List } from "../types.js";

/**
 * TokensPage is Settings → Tokens: the member's API keys. A new key's secret is shown once, with a copy button; the
 * list shows when each key was made and last used; revoking stops a key on every gateway within seconds.
 */
export function TokensPage() {
  const [keys, setKeys] = useState<readonly ApiKey[]>();
  const [created, setCreated] = useState<CreatedApiKey>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  async function load() {
    try {
      setKeys((await api<List<ApiKey>>("GET", "/api/keys")).data);
    } catch (failure) {
      setError(messageOf(failure));
    }
  }
  useEffect(() => void load(), []);

  async function create(event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const label = String(new FormData(form).get("label")).trim();
    setBusy(true);
    setError(undefined);
    try {
      setCreated(await api<CreatedApiKey>("POST", "/api/keys", { label }));
      form.reset();
      await load();
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  }

  async function revoke(key: ApiKey) {
    if (!confirm(`Revoke the key "${key.label || key.id}"? Apps and agents using it stop working.`)) return;
    setError(undefined);
    try {
      await api("DELETE", `/api/keys/${encodeURIComponent(key.id)}`);
      if (created?.id === key.id) setCreated(undefined);
      await load();
    } catch (failure) {
      setError(messageOf(failure));
    }
  }

  return (
    <Page title="Tokens" intro="One token serves your OpenAI clients (as OPENAI_API_KEY) and your agents (--api-key).">
      <form class="inline" onSubmit={create}>
        <label for="token-label">Label for a new token</label>
        <input id="token-label" name="label" maxLength={256} placeholder="laptop, open-webui, agent on gpu-box" />
        <button type="submit" class="primary" disabled={busy}>
          Create token
        </button>
      </form>
      {created ? (
        <div class="secret" role="status">
          <p>Your new token{created.label ? ` "${created.label}"` : ""}. Copy it now: it is not shown again.</p>
          <code id="new-token">{created.key}</code> <CopyButton text={created.key} target="new-token" label="Copy token" />
        </div>
      ) : null}
      <ErrorNotice error={error} />
      {keys === undefined ? (
        <Loading />
      ) : keys.length === 0 ? (
        <p>No tokens yet.</p>
      ) : (
        <div class="scroll">
          <table>
            <caption>Your tokens</caption>
            <thead>
              <tr>
                <th scope="col">Label</th>
                <th scope="col">Id</th>
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {keys.map((key) => (
                <tr key={key.id}>
                  <td>{key.label || <span class="hint">(no label)</span>}</td>
                  <td>
                    <code>{key.id}</code>
                  </td>
                  <td>{formatUnixTime(key.created_at, "—")}</td>
                  <td>{formatAgo(key.last_used_at)}</td>
                  <td>
                    <button type="button" class="danger" onClick={() => revoke(key)} aria-label={`Revoke ${key.label || key.id}`}>
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Page>
  );
}
