import type { ComponentChildren } from "preact";
import { useRef } from "preact/hooks";

/** PlaygroundTab is one tab: its key, its visible name, and its panel with the panel's accessible name. */
export interface PlaygroundTab {
  readonly key: string;
  readonly label: string;
  /**
   * panelLabel names the panel. It is not the tab's name, so that the controls inside keep names of their own:
   * a panel called "Speech" would share its name with the speech player in it.
   */
  readonly panelLabel: string;
  readonly panel: ComponentChildren;
}

/**
 * PlaygroundTabs shows one panel at a time under a tab list, keyboard-driven as the ARIA tabs pattern says: the
 * arrow keys move between tabs (wrapping), Home and End go to the ends, and a tab is chosen as it takes focus. Every
 * panel stays mounted while hidden, so that a streaming answer or a half-written prompt survives a look elsewhere.
 */
export function PlaygroundTabs({
  label,
  tabs,
  selected,
  onSelect,
}: {
  label: string;
  tabs: readonly PlaygroundTab[];
  selected: string;
  onSelect: (key: string) => void;
}) {
  const buttons = useRef<(HTMLButtonElement | null)[]>([]);
  const current = Math.max(
    0,
    tabs.findIndex((tab) => tab.key === selected),
  );

  function onKeyDown(event: KeyboardEvent) {
    const next = keyTarget(event.key, current, tabs.length);
    const tab = next === undefined ? undefined : tabs[next];
    if (next === undefined || tab === undefined) return;
    event.preventDefault();
    onSelect(tab.key);
    buttons.current[next]?.focus();
  }

  return (
    <div class="playground-tabs">
      <div role="tablist" aria-label={label} onKeyDown={onKeyDown}>
        {tabs.map((tab, index) => {
          const active = index === current;
          return (
            <button
              key={tab.key}
              ref={(element) => {
                buttons.current[index] = element;
              }}
              type="button"
              role="tab"
              id={`tab-${tab.key}`}
              aria-selected={active}
              aria-controls={`panel-${tab.key}`}
              tabIndex={active ? 0 : -1}
              onClick={() => onSelect(tab.key)}
            >
              {tab.label}
            </button>
          );
        })}
      </div>
      {tabs.map((tab, index) => (
        <div
          key={tab.key}
          role="tabpanel"
          id={`panel-${tab.key}`}
          aria-label={tab.panelLabel}
          hidden={index !== current}
          class="playground-panel"
        >
          {tab.panel}
        </div>
      ))}
    </div>
  );
}

/** keyTarget is the index of the tab a key moves to from current, or undefined for keys the tab list leaves alone. */
function keyTarget(key: string, current: number, count: number): number | undefined {
  switch (key) {
    case "ArrowRight":
      return (current + 1) % count;
    case "ArrowLeft":
      return (current - 1 + count) % count;
    case "Home":
      return 0;
    case "End":
      return count - 1;
    default:
      return undefined;
  }
}
