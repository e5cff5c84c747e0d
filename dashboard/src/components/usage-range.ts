/**
 * The time range the usage page sums over, in the reader's local time: either a preset that ends now, or the whole
 * local days from one date to another. Times are epoch milliseconds; `toMs` is exclusive, as /api/usage reads it.
 */

export const HOUR_MS = 60 * 60 * 1000;
export const DAY_MS = 24 * HOUR_MS;

/** HOURLY_MAX_MS is the longest range charted by the hour: two days, plus the hour a daylight-saving change adds. */
const HOURLY_MAX_MS = 2 * DAY_MS + HOUR_MS;

export type PresetId = "24h" | "7d" | "30d";

export const PRESETS: readonly (readonly [PresetId, string])[] = [
  ["24h", "Last 24 hours"],
  ["7d", "Last 7 days"],
  ["30d", "Last 30 days"],
];

export const DEFAULT_PRESET: PresetId = "7d";

/** UsageRange is a range to sum over; preset says which button chose it, if one did. */
export interface UsageRange {
  readonly fromMs: number;
  readonly toMs: number;
  readonly preset?: PresetId;
}

/** Bucket is the width of a chart's step. */
export type Bucket = "hour" | "day";

/** presetRange is a preset as of nowMs: the last 24 hours to the minute, or the last N local days including today. */
export function presetRange(preset: PresetId, nowMs = Date.now()): UsageRange {
  if (preset === "24h") return { fromMs: nowMs - DAY_MS, toMs: nowMs, preset };
  const today = startOfLocalDay(nowMs);
  const days = preset === "7d" ? 7 : 30;
  return { fromMs: addLocalDays(today, 1 - days), toMs: addLocalDays(today, 1), preset };
}

/** datesRange is the whole local days from one "YYYY-MM-DD" date to another, both included; undefined if either is not a date. */
export function datesRange(from: string, to: string): UsageRange | undefined {
  const fromMs = parseLocalDate(from);
  const toDayMs = parseLocalDate(to);
  if (fromMs === undefined || toDayMs === undefined) return undefined;
  return { fromMs, toMs: addLocalDays(toDayMs, 1) };
}

/** rangeDates are the local dates a range's date inputs show: the day it starts, and the day it ends in. */
export function rangeDates(range: UsageRange): { readonly from: string; readonly to: string } {
  return { from: localDate(range.fromMs), to: localDate(Math.max(range.fromMs, range.toMs - 1)) };
}

/** bucketOf charts up to two days by the hour and longer ranges by the day. */
export function bucketOf(range: UsageRange): Bucket {
  return range.toMs - range.fromMs <= HOURLY_MAX_MS ? "hour" : "day";
}

/** localDate writes a time as the reader's local "YYYY-MM-DD", the value of an <input type="date">. */
export function localDate(ms: number): string {
  const date = new Date(ms);
  const pad = (value: number) => String(value).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** parseLocalDate reads "YYYY-MM-DD" as the start of that local day. */
export function parseLocalDate(value: string): number | undefined {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (!match) return undefined;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const date = new Date(year, month - 1, day);
  // Date rolls 2025-02-30 over into March; a date that does not exist is no date.
  return date.getFullYear() === year && date.getMonth() === month - 1 && date.getDate() === day ? date.getTime() : undefined;
}

export function startOfLocalDay(ms: number): number {
  const date = new Date(ms);
  return new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime();
}

/** addLocalDays moves a local midnight by whole calendar days, which are 23 or 25 hours long across daylight-saving changes. */
export function addLocalDays(dayMs: number, days: number): number {
  const date = new Date(dayMs);
  return new Date(date.getFullYear(), date.getMonth(), date.getDate() + days).getTime();
}

const dateText = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const dateTimeText = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/**
 * describeRange says a range in words: "between Jun 3, 2025 and Jun 9, 2025" or "on Jun 3, 2025" for whole days,
 * with the times for the last 24 hours. It avoids "from" and "to", so that names built with it do not also match the
 * date inputs' labels.
 */
export function describeRange(range: UsageRange): string {
  if (range.preset === "24h") return `between ${dateTimeText.format(range.fromMs)} and ${dateTimeText.format(range.toMs)}`;
  const dates = rangeDates(range);
  const [from, to] = [parseLocalDate(dates.from) ?? range.fromMs, parseLocalDate(dates.to) ?? range.toMs];
  return from === to ? `on ${dateText.format(from)}` : `between ${dateText.format(from)} and ${dateText.format(to)}`;
}
