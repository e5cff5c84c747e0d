import { formatCount, formatDecimal } from "../format.js";
import type { UsageTotals as Totals } from "./usage-report.js";

/** UsageTotals is the range's sums in one line: what was asked, what failed, and what it came to. */
export function UsageTotals({ totals }: { totals: Totals }) {
  const items: readonly (readonly [string, string])[] = [
    ["Requests", formatCount(totals.requests)],
    ["Errors", formatCount(totals.errors)],
    ["Tokens in", formatCount(totals.prompt_tokens)],
    ["Tokens out", formatCount(totals.completion_tokens)],
    ["Audio seconds", formatDecimal(totals.audio_seconds)],
    ["Images", formatCount(totals.images)],
  ];
  return (
    <dl class="usage-totals">
      {items.map(([name, value]) => (
        <div key={name}>
          <dt>{name}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}
