/** How the dashboard writes numbers and times: the reader's locale, times in their zone. */

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

/** formatUnixTime writes Unix seconds as a date and time; null reads as "never". */
export function formatUnixTime(seconds: number | null, never = "never"): string {
  return seconds === null ? never : dateTime.format(new Date(seconds * 1000));
}

/** formatAgo says how long ago Unix seconds were, roughly: "12 s ago", "3 min ago". */
export function formatAgo(seconds: number | null, nowMs = Date.now()): string {
  if (seconds === null) return "never";
  const elapsed = Math.max(0, Math.round(nowMs / 1000 - seconds));
  if (elapsed < 60) return `${elapsed} s ago`;
  if (elapsed < 3600) return `${Math.floor(elapsed / 60)} min ago`;
  if (elapsed < 86400) return `${Math.floor(elapsed / 3600)} h ago`;
  return formatUnixTime(seconds);
}

export function formatCount(value: number): string {
  return integer.format(value);
}

export function formatDecimal(value: number): string {
  return decimal.format(value);
}
