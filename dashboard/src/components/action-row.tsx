import { ErrorNotice } from "./notice.js";

/** ActionRowProps: the button's text, what the row says now, and whether the action is under way. */
interface ActionRowProps {
  readonly label: string;
  readonly status: string;
  readonly busy: boolean;
  readonly error: string | undefined;
  /** ariaLabel names the button when its text alone is ambiguous on the page ("Pause" of which provider). */
  readonly ariaLabel?: string;
  /** onClick makes it a plain button; without it, it submits its form. */
  readonly onClick?: () => void;
  readonly primary?: boolean;
}

/**
 * ActionRow is a form's one action: its button, a status line beside it that says what the action is doing or did
 * (announced to screen readers), and the action's error under it.
 */
export function ActionRow({ label, status, busy, error, ariaLabel, onClick, primary = false }: ActionRowProps) {
  return (
    <>
      <div class="actions">
        <button
          type={onClick ? "button" : "submit"}
          class={primary ? "primary" : undefined}
          disabled={busy}
          onClick={onClick}
          aria-label={ariaLabel}
        >
          {label}
        </button>
        <span role="status" class="hint">
          {status}
        </span>
      </div>
      <ErrorNotice error={error} />
    </>
  );
}
