import { useEffect, useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { api, messageOf } from "../api.js";
import { ErrorNotice, Loading } from "../components/notice.js";
import { Page } from "../components/page.js";
import { useGatewayOptions } from "../gateway-options.js";
import { fragmentParam, PATHS } from "../paths.js";
import type { SignedIn } from "../types.js";

/**
 * SignInPage signs a member in: with a name and password, with a one-time sign-in link's token (`infermesh dev`
 * prints one), or by opening an account where the gateway's sign-up is open. After it, the member lands where they
 * were going, or in the playground.
 */
export function SignInPage({ onSignedIn, notice }: { onSignedIn: (answer: SignedIn) => void; notice?: string | undefined }) {
  const location = useLocation();
  const [error, setError] = useState<string | undefined>(notice);
  const [busy, setBusy] = useState(false);
  const signup = useGatewayOptions()?.signup;
  const [mode, setMode] = useState<"sign-in" | "sign-up">("sign-in");
  const linkToken = location.path === PATHS.signIn ? fragmentParam("token") : undefined;
  const [redeeming, setRedeeming] = useState(linkToken !== undefined);

  function land(answer: SignedIn) {
    onSignedIn(answer);
    if (location.path === PATHS.signIn || !location.path.startsWith("/dashboard/")) location.route(PATHS.playground, true);
  }

  useEffect(() => {
    if (linkToken === undefined) return;
    // The token leaves the address bar at once: a reload or a shared screen should not show a spent link.
    history.replaceState(null, "", location.path);
    api<SignedIn>("POST", "/api/auth/sign-in-link", { token: linkToken }).then(land, (failure: unknown) => {
      setError(`${messageOf(failure)} Sign-in links work once; sign in with your password, or ask for a new link.`);
      setRedeeming(false);
    });
  }, []);

  async function submit(event: Event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    setBusy(true);
    setError(undefined);
    try {
      const body = { name: String(form.get("name")), password: String(form.get("password")) };
      land(await api<SignedIn>("POST", mode === "sign-in" ? "/api/auth/login" : "/api/auth/signup", body));
    } catch (failure) {
      setError(messageOf(failure));
      setBusy(false);
    }
  }

  if (redeeming) return <Loading>Signing you in with your link…</Loading>;
  const signingIn = mode === "sign-in";
  return (
    <main id="main" class="narrow">
      <Page
        title={signingIn ? "Sign in" : "Create an account"}
        intro="infermesh: your models, your friends' models, one OpenAI-compatible URL."
      >
        <form onSubmit={submit} aria-describedby="sign-in-error">
          <label for="name">User name</label>
          <input id="name" name="name" autocomplete="username" maxLength={64} required />
          <label for="password">Password{signingIn ? "" : " (8 characters or more)"}</label>
          <input
            id="password"
            name="password"
            type="password"
            autocomplete={signingIn ? "current-password" : "new-password"}
            minLength={signingIn ? undefined : 8}
            maxLength={1024}
            required
          />
          <button type="submit" class="primary" disabled={busy}>
            {signingIn ? "Sign in" : "Create account"}
          </button>
        </form>
        <div id="sign-in-error">
          <ErrorNotice error={error} />
        </div>
        {signup === "open" ? (
          <p>
            <button type="button" class="link" onClick={() => setMode(signingIn ? "sign-up" : "sign-in")}>
              {signingIn ? "New here? Create an account" : "Have an account? Sign in"}
            </button>
          </p>
        ) : (
          <p class="hint">
            New members join by invitation: the operator runs <code>infermesh users add NAME</code> and sends you the link.
          </p>
        )}
      </Page>
    </main>
  );
}
