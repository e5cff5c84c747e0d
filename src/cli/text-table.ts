/**
 * formatTable lays rows out in columns two spaces apart, the header first, as `keys list`, `users list`, `usage` and
 * `providers list` print them: each column as wide as its widest cell, no trailing spaces, one line per row.
 * Columns named in alignRight (numbers) are padded on the left.
 */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], alignRight: readonly string[] = []): string {
  const all = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...all.map((row) => (row[column] ?? "").length)));
  const right = header.map((name) => alignRight.includes(name));
  const lines = all.map((row) =>
    header
      .map((_, column) => {
        const cell = row[column] ?? "";
        const width = widths[column] ?? 0;
        return right[column] ? cell.padStart(width) : cell.padEnd(width);
      })
      .join("  ")
      .trimEnd(),
  );
  return `${lines.join("\n")}\n`;
}

/** isoTime writes a time in milliseconds since the epoch as ISO-8601 UTC, or "-" for no time. */
export function isoTime(timeMs: number | undefined): string {
  return timeMs === undefined ? "-" : new Date(timeMs).toISOString();
}
