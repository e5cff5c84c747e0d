import type { UsageRow } from "../types.js";
import { addLocalDays, type Bucket, bucketOf, DAY_MS, HOUR_MS, parseLocalDate, startOfLocalDay, type UsageRange } from "./usage-range.js";

/**
 * HOURS_QUERY_MAX_MS is the longest range asked for by the hour. /api/usage's days are UTC days; hours folded into
 * the reader's local days put each call on the day the reader lived it. Longer ranges ask for UTC days, to keep the
 * answer small, and take each as the local day of the same date.
 */
const HOURS_QUERY_MAX_MS = 93 * DAY_MS;

/** queryGroupOf is the time group to ask /api/usage for, to chart a range. */
export function queryGroupOf(range: UsageRange): "hour" | "day" {
  return range.toMs - range.fromMs <= HOURS_QUERY_MAX_MS ? "hour" : "day";
}

/** UsageSeries is a range's usage per bucket, every bucket present (zero when it had no calls). */
export interface UsageSeries {
  readonly bucket: Bucket;
  /** times are the buckets' starts, in epoch milliseconds. */
  readonly times: readonly number[];
  readonly requests: readonly number[];
  readonly errors: readonly number[];
  readonly promptTokens: readonly number[];
  readonly completionTokens: readonly number[];
}

/**
 * usageSeries puts time-grouped rows into the range's buckets, from its start to now (or to its end, when that is
 * earlier): the future has no calls to chart.
 */
export function usageSeries(range: UsageRange, rows: readonly UsageRow[], nowMs = Date.now()): UsageSeries {
  const bucket = bucketOf(range);
  const timed = rows.map((row) => ({ row, ms: rowTime(row) })).filter((entry) => entry.ms !== undefined);
  // A gateway's clock may run ahead of the reader's: its latest calls still get their bucket.
  const latestMs = Math.max(nowMs, ...timed.map((entry) => (entry.ms ?? 0) + 1));
  const times = bucketStarts(range, bucket, Math.min(range.toMs, latestMs));
  const index = new Map(times.map((start, at) => [start, at]));
  const zeros = () => times.map(() => 0);
  const series = { requests: zeros(), errors: zeros(), promptTokens: zeros(), completionTokens: zeros() };
  for (const { row, ms } of timed) {
    // The answer holds only calls made within the range, but a UTC hour or day at its edge can begin before the range
    // starts (east of UTC, or half an hour off it) or be dated after its last local day (west of UTC): its calls belong
    // to the range's first or last bucket, and the totals count them too.
    const at = index.get(bucketStart(Math.min(Math.max(ms ?? 0, range.fromMs), range.toMs - 1), bucket));
    if (at === undefined) continue;
    series.requests[at] = (series.requests[at] ?? 0) + row.requests;
    series.errors[at] = (series.errors[at] ?? 0) + row.errors;
    series.promptTokens[at] = (series.promptTokens[at] ?? 0) + row.prompt_tokens;
    series.completionTokens[at] = (series.completionTokens[at] ?? 0) + row.completion_tokens;
  }
  return { bucket, times, ...series };
}

/** bucketStarts lists the buckets that start before endMs: UTC hours, as /api/usage groups them, or local days. */
function bucketStarts(range: UsageRange, bucket: Bucket, endMs: number): number[] {
  const starts: number[] = [];
  if (bucket === "hour") {
    for (let start = bucketStart(range.fromMs, "hour"); start < endMs; start += HOUR_MS) starts.push(start);
  } else {
    for (let start = startOfLocalDay(range.fromMs); start < endMs; start = addLocalDays(start, 1)) starts.push(start);
  }
  return starts;
}

function bucketStart(ms: number, bucket: Bucket): number {
  return bucket === "hour" ? Math.floor(ms / HOUR_MS) * HOUR_MS : startOfLocalDay(ms);
}

/** rowTime is when a row's period starts; a UTC day counts from the local midnight of the same date. */
function rowTime(row: UsageRow): number | undefined {
  if (row.hour !== undefined) {
    const ms = Date.parse(row.hour);
    return Number.isFinite(ms) ? ms : undefined;
  }
  return row.day === undefined ? undefined : parseLocalDate(row.day.slice(0, 10));
}
