import { useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { api, messageOf } from "../api.js";
import { ErrorNotice } from "../components/notice.js";
import { Page } from "../components/page.js";
import { fragmentParam, PATHS } from "../paths.js";
import type { SignedIn } from "../types.js";

/**
 * InvitePage is where an invite link lands (`infermesh users add` prints it): the new member sets a password and is
 * signed in. The token stays in the URL's fragment, which the browser never sends, until it is used.
 */
export function InvitePage({ onSignedIn }: { onSignedIn: (answer: SignedIn) => void }) {
  const location = useLocation();
  const [token] = useState(() => fragmentParam("token"));
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  async function submit(event: Event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const password = String(form.get("password"));
    if (password !== String(form.get("again"))) {
      setError("The two passwords differ.");
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      const answer = await api<SignedIn>("POST", "/api/auth/invite", { token, password });
      onSignedIn(answer);
      location.route(PATHS.tokens, true);
    } catch (failure) {
      setError(messageOf(failure));
      setBusy(false);
    }
  }

  return (
    <main id="main" class="narrow">
      <Page title="Set your password" intro="Welcome to infermesh. Choose a password; then make a key for your apps and agents.">
        {token === undefined ? (
          <ErrorNotice error="This page needs the whole invite link, including the part after '#'. Open the link you were sent again." />
        ) : (
          <form onSubmit={submit}>
            <label for="new-password">New password (8 characters or more)</label>
            <input id="new-password" name="password" type="password" autocomplete="new-password" minLength={8} maxLength={1024} required />
            <label for="again">The same again</label>
            <input id="again" name="again" type="password" autocomplete="new-password" minLength={8} maxLength={1024} required />
            <button type="submit" class="primary" disabled={busy}>
              Set password and sign in
            </button>
            <ErrorNotice error={error} />
          </form>
        )}
      </Page>
    </main>
  );
}
