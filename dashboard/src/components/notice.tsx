import type { ComponentChildren } from "preact";

/** ErrorNotice shows a failure; screen readers announce it as it appears. */
export function ErrorNotice({ error }: { error: string | undefined }) {
  return (
    <p role="alert" class="error" hidden={!error}>
      {error}
    </p>
  );
}

/** Loading marks a region that is still fetching, for screen readers too. */
export function Loading({ children = "Loading…" }: { children?: ComponentChildren }) {
  return (
    <p class="hint" aria-busy="true">
      {children}
    </p>
  );
}
