import type { ComponentChildren } from "preact";
import { useEffect } from "preact/hooks";

/** Page is one page of the dashboard: its heading names it, and so does the window's title. */
export function Page({ title, intro, children }: { title: string; intro?: ComponentChildren; children: ComponentChildren }) {
  useEffect(() => {
    document.title = `${title} · infermesh`;
  }, [title]);
  return (
    <section class="page" aria-labelledby="page-title">
      <h1 id="page-title">{title}</h1>
      {intro === undefined ? null : <p class="intro">{intro}</p>}
      {children}
    </section>
  );
}
