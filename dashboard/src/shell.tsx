import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { messageOf } from "./api.js";
import { ErrorNotice } from "./components/notice.js";
import { useGatewayOptions } from "./gateway-options.js";
import { PATHS } from "./paths.js";
import { useSession } from "./session.js";

const NAV: readonly (readonly [path: string, label: string])[] = [
  [PATHS.playground, "Playground"],
  [PATHS.providers, "My providers"],
  [PATHS.models, "Models"],
  [PATHS.usage, "Usage"],
  [PATHS.tokens, "Settings → Tokens"],
];

/** Shell is the frame of every signed-in page: the site's navigation, who is signed in, and sign-out. */
export function Shell({ children }: { children: ComponentChildren }) {
  const { user, signOut } = useSession();
  const { path } = useLocation();
  const [error, setError] = useState<string>();
  const metricsPath = useGatewayOptions()?.metrics_path;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={PATHS.playground}>
          infermesh
        </a>
        <nav aria-label="Dashboard">
          <ul>
            {NAV.map(([href, label]) => (
              <li key={href}>
                <a href={href} aria-current={path === href ? "page" : undefined}>
                  {label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="account">
          <span>
            Signed in as <strong>{user.name}</strong>
          </span>
          <button type="button" onClick={() => signOut().catch((failure: unknown) => setError(messageOf(failure)))}>
            Sign out
          </button>
        </div>
      </header>
      <ErrorNotice error={error} />
      <main id="main" tabIndex={-1}>
        {children}
      </main>
      <footer>
        <a href="/docs">API explorer</a> · <a href="/openapi.json">OpenAPI document</a>
        {metricsPath ? (
          <>
            {" · "}
            <a href={metricsPath}>Metrics</a>
          </>
        ) : null}
      </footer>
    </>
  );
}
