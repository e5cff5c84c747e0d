import { useCallback, useEffect, useState } from "preact/hooks";
import { LocationProvider, Route, Router, useLocation } from "preact-iso";
import { api, messageOf, onSessionEnded, useCsrfToken } from "./api.js";
import { ErrorNotice, Loading } from "./components/notice.js";
import { InvitePage } from "./pages/invite.js";
import { ModelsPage } from "./pages/models.js";
import { PlaygroundPage } from "./pages/playground.js";
import { ProvidersPage } from "./pages/providers.js";
import { SignInPage } from "./pages/sign-in.js";
import { TokensPage } from "./pages/tokens.js";
import { UsagePage } from "./pages/usage.js";
import { PATHS } from "./paths.js";
import { mayBeSignedIn, type Session, SessionContext } from "./session.js";
import { Shell } from "./shell.js";
import type { SessionUser, SignedIn } from "./types.js";

/** Auth is where the page stands: finding out, signed out, or signed in as a member. */
type Auth =
  | { readonly state: "checking" }
  | { readonly state: "signed-out"; readonly error?: string }
  | { readonly state: "signed-in"; readonly user: SessionUser };

export function App() {
  return (
    <LocationProvider>
      <Dashboard />
    </LocationProvider>
  );
}

function Dashboard() {
  const location = useLocation();
  const [auth, setAuth] = useState<Auth>({ state: "checking" });

  const signedIn = useCallback((answer: SignedIn) => {
    useCsrfToken(answer.csrf_token);
    setAuth({ state: "signed-in", user: answer.user });
  }, []);

  useEffect(() => {
    onSessionEnded(() => setAuth({ state: "signed-out", error: "Your session ended; sign in again." }));
    // The readable hint cookie says whether a session cookie is set, so a signed-out visit costs no 401.
    if (!mayBeSignedIn()) {
      setAuth({ state: "signed-out" });
      return;
    }
    api<SignedIn>("GET", "/api/auth/session").then(signedIn, (error: unknown) => setAuth({ state: "signed-out", error: messageOf(error) }));
  }, [signedIn]);

  const signOut = useCallback(async () => {
    await api("POST", "/api/auth/logout");
    useCsrfToken("");
    setAuth({ state: "signed-out" });
    location.route(PATHS.signIn);
  }, [location]);

  // The invite page works signed out: it is how a new member gets a password.
  if (location.path === PATHS.invite || location.path === "/dashboard/invite") return <InvitePage onSignedIn={signedIn} />;
  if (auth.state === "checking") return <Loading>Checking your session…</Loading>;
  if (auth.state === "signed-out") return <SignInPage onSignedIn={signedIn} notice={auth.error} />;

  const session: Session = { user: auth.user, signOut };
  return (
    <SessionContext.Provider value={session}>
      <Shell>
        <Router>
          <Route path={PATHS.playground} component={PlaygroundPage} />
          <Route path={PATHS.providers} component={ProvidersPage} />
          <Route path={PATHS.models} component={ModelsPage} />
          <Route path={PATHS.usage} component={UsagePage} />
          <Route path={PATHS.tokens} component={TokensPage} />
          <Route default component={Home} />
        </Router>
      </Shell>
    </SessionContext.Provider>
  );
}

/** Home sends a signed-in member to the playground: the sign-in page, a sign-in link and / all land here. */
function Home() {
  const location = useLocation();
  useEffect(() => location.route(PATHS.playground, true), [location]);
  return <ErrorNotice error={undefined} />;
}
