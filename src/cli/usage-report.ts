import type { UsageGroupBy, UsageRowData } from "../../services/registry/store/registry-store.js";
import { ConfigError } from "../../services/shared/config-error.js";
import { listInWords } from "../../services/shared/config-values.js";
import { formatTable } from "./text-table.js";

/** USAGE_DIMENSIONS are what usage can be grouped by, in the order the table shows them. */
export const USAGE_DIMENSIONS: readonly UsageGroupBy[] = ["day", "hour", "model", "key", "provider", "user"];

/** UsageReportRow is one group's sums as GET /api/usage writes them: one property per dimension, then the sums. */
export interface UsageReportRow {
  readonly [dimension: string]: string | number;
  readonly requests: number;
  readonly errors: number;
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
  readonly audio_seconds: number;
  readonly images: number;
  readonly ttfb_ms_avg: number;
  readonly duration_ms_avg: number;
}

/** UsageReport is GET /api/usage's answer; `infermesh usage --db` writes the same from the store. */
export interface UsageReport {
  readonly object: "list";
  readonly scope: string;
  readonly group_by: readonly string[];
  /** from and to are the window's ends as the API wrote them: ISO-8601, or unix seconds. */
  readonly from: string | number;
  readonly to: string | number;
  readonly data: readonly UsageReportRow[];
}

/** parseGroupBy reads a comma-separated list of USAGE_DIMENSIONS, each at most once; an empty one sums everything in one row. */
export function parseGroupBy(where: string, text: string): UsageGroupBy[] {
  if (text.trim() === "") return [];
  const names = text.split(",").map((name) => name.trim());
  const seen = new Set<string>();
  for (const name of names) {
    if (!(USAGE_DIMENSIONS as readonly string[]).includes(name)) {
      throw new ConfigError(where, `${where} expects a comma-separated list of ${listInWords(USAGE_DIMENSIONS, "and")}, got '${text}'`);
    }
    if (seen.has(name)) throw new ConfigError(where, `${where} names ${name} twice, in '${text}'`);
    seen.add(name);
  }
  return names as UsageGroupBy[];
}

/** parseUsageTime reads a time as ISO-8601 (a date, or a date and time; UTC unless it says otherwise) or unix seconds. */
export function parseUsageTime(where: string, text: string): number {
  const timeMs = /^\d+$/.test(text) ? Number(text) * 1000 : /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : Number.NaN;
  if (!Number.isSafeInteger(timeMs)) {
    throw new ConfigError(where, `${where} expects an ISO-8601 time (2025-05-01, 2025-05-01T12:00:00Z) or unix seconds, got '${text}'`);
  }
  return timeMs;
}

/** usageReport is the store's rows as GET /api/usage answers them, so that both forms of `infermesh usage` print alike. */
export function usageReport(
  rows: readonly UsageRowData[],
  query: { readonly scope: string; readonly groupBy: readonly UsageGroupBy[]; readonly fromMs: number; readonly toMs: number },
): UsageReport {
  return {
    object: "list",
    scope: query.scope,
    group_by: [...query.groupBy],
    from: new Date(query.fromMs).toISOString(),
    to: new Date(query.toMs).toISOString(),
    data: rows.map((row) => ({
      ...Object.fromEntries(query.groupBy.map((dimension, i) => [dimension, row.group[i] ?? ""])),
      requests: row.requests,
      errors: row.errors,
      prompt_tokens: row.promptTokens,
      completion_tokens: row.completionTokens,
      total_tokens: row.promptTokens + row.completionTokens,
      audio_seconds: row.audioSeconds,
      images: row.images,
      ttfb_ms_avg: row.ttfbMsAvg,
      duration_ms_avg: row.durationMsAvg,
    })),
  };
}

/** SUM_COLUMNS are the table's columns after the dimensions: heading, field, and how a value is written. */
const SUM_COLUMNS: readonly (readonly [string, string, (value: number) => string])[] = [
  ["REQUESTS", "requests", String],
  ["ERRORS", "errors", String],
  ["PROMPT_TOKENS", "prompt_tokens", String],
  ["COMPLETION_TOKENS", "completion_tokens", String],
  ["TOTAL_TOKENS", "total_tokens", String],
  ["AUDIO_S", "audio_seconds", (value) => value.toFixed(1)],
  ["IMAGES", "images", String],
  ["TTFB_MS", "ttfb_ms_avg", (value) => String(Math.round(value))],
  ["DURATION_MS", "duration_ms_avg", (value) => String(Math.round(value))],
];

/** OPTIONAL_COLUMNS are left out of a table where every row has 0 in them: most meshes serve no audio or images. */
const OPTIONAL_COLUMNS = new Set(["audio_seconds", "images"]);

/**
 * formatUsageReport writes a report for people: a line with the scope and the window, then a table with one column per
 * dimension and one per sum (times as means, in milliseconds), or a line saying there were no calls.
 */
export function formatUsageReport(report: UsageReport): string {
  const title = `usage (${report.scope}) from ${shownTime(report.from)} to ${shownTime(report.to)}\n`;
  if (report.data.length === 0) return `${title}no calls\n`;
  const sums = SUM_COLUMNS.filter(([, field]) => !OPTIONAL_COLUMNS.has(field) || report.data.some((row) => Number(row[field]) !== 0));
  const header = [...report.group_by.map((dimension) => dimension.toUpperCase()), ...sums.map(([heading]) => heading)];
  const rows = report.data.map((row) => [
    ...report.group_by.map((dimension) => shownGroup(dimension, row[dimension])),
    ...sums.map(([, field, write]) => write(Number(row[field] ?? 0))),
  ]);
  return (
    title +
    formatTable(
      header,
      rows,
      sums.map(([heading]) => heading),
    )
  );
}

/** shownTime writes an end of the window as ISO-8601, whichever form the API gave. */
function shownTime(time: string | number): string {
  return typeof time === "number" ? new Date(time * 1000).toISOString() : time;
}

/** shownGroup writes a day as 2025-05-01 and an hour as 2025-05-01 13:00 (UTC); any other value as it is. */
function shownGroup(dimension: string, value: string | number | undefined): string {
  if (value === undefined) return "-";
  const timeMs = typeof value === "number" ? value * 1000 : Date.parse(value);
  if ((dimension !== "day" && dimension !== "hour") || !Number.isFinite(timeMs)) return String(value);
  const iso = new Date(timeMs).toISOString();
  return dimension === "day" ? iso.slice(0, 10) : `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
}
