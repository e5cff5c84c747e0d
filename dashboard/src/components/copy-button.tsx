import { useState } from "preact/hooks";

/**
 * CopyButton copies text to the clipboard. Browsers only offer the clipboard API to secure pages (HTTPS or
 * localhost); on a LAN address over plain HTTP the text is selected instead, for Ctrl+C.
 */
export function CopyButton({ text, label = "Copy", target }: { text: string; label?: string; target?: string }) {
  const [said, setSaid] = useState("");
  async function copy() {
    try {
      await navigator.clipboard.writeText(text);
      setSaid("Copied");
    } catch {
      const element = target === undefined ? null : document.getElementById(target);
      if (element) getSelection()?.selectAllChildren(element);
      setSaid("Selected: press Ctrl+C to copy");
    }
  }
  return (
    <span class="copy">
      <button type="button" onClick={copy} aria-describedby={target}>
        {label}
      </button>
      <span role="status" class="hint">
        {said}
      </span>
    </span>
  );
}
