import { useState } from "preact/hooks";
import { api, messageOf } from "../api.js";
import type { Provider, Visibility } from "../types.js";
import { ActionRow } from "./action-row.js";

const CHOICES: readonly (readonly [Visibility, string])[] = [
  ["private", "Only me"],
  ["users", "Members I name"],
  ["public", "Everyone on this mesh"],
];

/** MEMBER_NAME and MAX_MEMBERS are the gateway's own limits, checked here so that a typo costs no refused request. */
const MEMBER_NAME = /^[A-Za-z0-9._@-]{1,64}$/;
const MAX_MEMBERS = 256;

/** Draft is the form as the owner is editing it; while there is one, polls do not overwrite what they typed. */
interface Draft {
  readonly visibility: Visibility;
  readonly users: string;
}

/** parseMembers reads "alice, bob" as names, or says what is wrong with them. */
export function parseMembers(text: string): { readonly users: readonly string[] } | { readonly error: string } {
  const users = [...new Set(text.split(",").map((name) => name.trim()))].filter((name) => name !== "");
  const bad = users.filter((name) => !MEMBER_NAME.test(name));
  if (bad.length > 0) {
    return { error: `Not a member name: ${bad.join(", ")}. Names are 1 to 64 of A-Z a-z 0-9 . _ @ -, separated by commas.` };
  }
  if (users.length === 0) return { error: "Name at least one member, or choose “Only me”." };
  if (users.length > MAX_MEMBERS) return { error: `Name at most ${MAX_MEMBERS} members.` };
  return { users };
}

/**
 * ProviderSharingForm sets who besides its owner may use a provider. It follows the provider as polled until the
 * owner starts editing, then keeps their draft until it is saved.
 */
export function ProviderSharingForm({ provider, onChanged }: { provider: Provider; onChanged: (provider: Provider) => void }) {
  const [draft, setDraft] = useState<Draft>();
  const [said, setSaid] = useState("");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const shown: Draft = draft ?? { visibility: provider.sharing.visibility, users: provider.sharing.users.join(", ") };
  const select = `sharing-${provider.id}`;
  const members = `members-${provider.id}`;

  function edit(change: Partial<Draft>) {
    setDraft({ ...shown, ...change });
    setSaid("");
  }

  async function save(event: Event) {
    event.preventDefault();
    setError(undefined);
    setSaid("");
    let users: readonly string[] = [];
    if (shown.visibility === "users") {
      const parsed = parseMembers(shown.users);
      if ("error" in parsed) {
        setError(parsed.error);
        return;
      }
      users = parsed.users;
    }
    setBusy(true);
    try {
      const path = `/api/providers/${encodeURIComponent(provider.id)}/sharing`;
      onChanged(await api<Provider>("PUT", path, { visibility: shown.visibility, users }));
      setDraft(undefined);
      setSaid("Sharing saved");
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="provider-sharing" onSubmit={save}>
      <label for={select}>
        Who may use <span class="visually-hidden">{provider.name}</span>
      </label>
      <select id={select} value={shown.visibility} onChange={(event) => edit({ visibility: event.currentTarget.value as Visibility })}>
        {CHOICES.map(([value, label]) => (
          <option key={value} value={value}>
            {label}
          </option>
        ))}
      </select>
      {shown.visibility === "users" ? (
        <>
          <label for={members}>
            Members (comma-separated) <span class="visually-hidden">for {provider.name}</span>
          </label>
          <input
            id={members}
            value={shown.users}
            autoComplete="off"
            spellcheck={false}
            placeholder="alice, bob"
            onInput={(event) => edit({ users: event.currentTarget.value })}
          />
        </>
      ) : null}
      <ActionRow label="Save sharing" ariaLabel={`Save sharing for ${provider.name}`} busy={busy} status={said} error={error} />
    </form>
  );
}
