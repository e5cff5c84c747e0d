/**
 * The playground's remembered choices: the last tab and the last model of each service type, kept in this browser's
 * localStorage so that a member comes back to where they were. Storage may be off (private windows, policies); the
 * playground then simply starts from its defaults.
 */

/** PlaygroundMemory is what the playground remembers. */
export interface PlaygroundMemory {
  readonly tab: string | undefined;
  /** models maps a service type to the model last chosen for it. */
  readonly models: Readonly<Record<string, string>>;
}

const STORAGE_KEY = "infermesh.playground";

export function recallPlayground(): PlaygroundMemory {
  try {
    const stored: unknown = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "{}");
    if (typeof stored !== "object" || stored === null) return { tab: undefined, models: {} };
    const { tab, models } = stored as { tab?: unknown; models?: unknown };
    const remembered: Record<string, string> = {};
    if (typeof models === "object" && models !== null) {
      for (const [type, model] of Object.entries(models)) if (typeof model === "string") remembered[type] = model;
    }
    return { tab: typeof tab === "string" ? tab : undefined, models: remembered };
  } catch {
    return { tab: undefined, models: {} };
  }
}

export function rememberPlayground(memory: PlaygroundMemory): void {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(memory));
  } catch {
    // Nothing is lost but the convenience.
  }
}
