import type { UsageGroupBy, UsageQuery, UsageRowData } from "./registry-store.js";

/** UsageDimension is how one groupBy dimension is computed in SQL and shown in a row's group. */
interface UsageDimension {
  /** sql is a fixed expression over usage r (and users u when joinsUsers); client input never reaches it. */
  readonly sql: string;
  /** time marks a dimension whose values are epoch milliseconds, shown as ISO-8601 UTC. */
  readonly time: boolean;
  /** joinsUsers marks a dimension that needs the users table joined as u. */
  readonly joinsUsers: boolean;
}

/**
 * USAGE_DIMENSIONS maps each groupBy dimension to its SQL. Day and hour truncate by integer division of the
 * millisecond timestamp, which SQLite and PostgreSQL compute alike, so that the group is the UTC period's start.
 */
export const USAGE_DIMENSIONS: Readonly<Record<UsageGroupBy, UsageDimension>> = {
  day: { sql: "(r.time_ms / 86400000) * 86400000", time: true, joinsUsers: false },
  hour: { sql: "(r.time_ms / 3600000) * 3600000", time: true, joinsUsers: false },
  model: { sql: "r.model", time: false, joinsUsers: false },
  key: { sql: "r.key_id", time: false, joinsUsers: false },
  provider: { sql: "r.provider_id", time: false, joinsUsers: false },
  // A record whose user is gone still counts, under its id.
  user: { sql: "COALESCE(u.name, r.user_id)", time: false, joinsUsers: true },
};

/** USAGE_SCOPES maps each scope to its condition; a "?" in it takes the query's userId. */
const USAGE_SCOPES: Readonly<Record<UsageQuery["scope"], string>> = {
  caller: "r.user_id = ?",
  provider_owner: "r.provider_owner_id = ?",
  all: "",
};

/** SUMS are the aggregate columns; ttfb averages only answers that sent a first byte (ttfb_ms > 0). */
const SUMS = [
  "COUNT(*) AS requests",
  "COALESCE(SUM(CASE WHEN r.status >= 400 THEN 1 ELSE 0 END), 0) AS errors",
  "COALESCE(SUM(r.prompt_tokens), 0) AS prompt_tokens",
  "COALESCE(SUM(r.completion_tokens), 0) AS completion_tokens",
  "COALESCE(SUM(r.audio_seconds), 0) AS audio_seconds",
  "COALESCE(SUM(r.images), 0) AS images",
  "COALESCE(AVG(CASE WHEN r.ttfb_ms > 0 THEN r.ttfb_ms END), 0) AS ttfb_ms_avg",
  "COALESCE(AVG(r.duration_ms), 0) AS duration_ms_avg",
];

/** UsageStatement is a usage query as SQL with "?" placeholders and the values to bind to them, in order. */
export interface UsageStatement {
  readonly sql: string;
  readonly params: readonly (string | number)[];
}

/** UsageSumsRow is a row of a UsageStatement's result: group columns g0, g1, … and the sums. */
export type UsageSumsRow = Record<string, unknown>;

/**
 * usageStatement builds the SQL for query from USAGE_DIMENSIONS and USAGE_SCOPES; only the times and the user id
 * are parameters. It throws RangeError for a dimension or scope it does not know, a repeated dimension and a time that
 * is not finite.
 */
export function usageStatement(query: UsageQuery): UsageStatement {
  if (!Number.isFinite(query.fromMs) || !Number.isFinite(query.toMs)) {
    throw new RangeError(`usage query times must be finite milliseconds, not ${query.fromMs} and ${query.toMs}`);
  }
  if (new Set(query.groupBy).size !== query.groupBy.length) {
    throw new RangeError(`usage dimensions must not repeat: ${query.groupBy.join(", ").slice(0, 200)}`);
  }
  const dimensions = query.groupBy.map(dimensionOf);
  const scope = Object.hasOwn(USAGE_SCOPES, query.scope) ? USAGE_SCOPES[query.scope] : undefined;
  if (scope === undefined) {
    throw new RangeError(`unknown usage scope ${JSON.stringify(String(query.scope).slice(0, 40))}`);
  }
  const groups = dimensions.map((dimension, index) => `${dimension.sql} AS g${index}`);
  const conditions = ["r.time_ms >= ?", "r.time_ms < ?", ...(scope === "" ? [] : [scope])];
  const params = [query.fromMs, query.toMs, ...(scope === "" ? [] : [query.userId])];
  const grouped = dimensions.map((dimension) => dimension.sql).join(", ");
  const sql = [
    `SELECT ${[...groups, ...SUMS].join(", ")}`,
    "FROM usage r",
    dimensions.some((dimension) => dimension.joinsUsers) ? "LEFT JOIN users u ON u.id = r.user_id" : "",
    `WHERE ${conditions.join(" AND ")}`,
    grouped === "" ? "" : `GROUP BY ${grouped} ORDER BY ${grouped}`,
  ]
    .filter((line) => line !== "")
    .join("\n");
  return { sql, params };
}

/**
 * toUsageRows maps a UsageStatement's result to the store's rows. Without groupBy the one row of totals is dropped
 * when it counts no request, so that every row returned is a group that had usage.
 */
export function toUsageRows(query: UsageQuery, rows: readonly UsageSumsRow[]): UsageRowData[] {
  const dimensions = query.groupBy.map(dimensionOf);
  return rows
    .filter((row) => Number(row["requests"]) > 0)
    .map((row) => ({
      group: dimensions.map((dimension, index) => {
        const value = row[`g${index}`];
        return dimension.time ? new Date(Number(value)).toISOString() : String(value);
      }),
      requests: Number(row["requests"]),
      errors: Number(row["errors"]),
      promptTokens: Number(row["prompt_tokens"]),
      completionTokens: Number(row["completion_tokens"]),
      audioSeconds: Number(row["audio_seconds"]),
      images: Number(row["images"]),
      ttfbMsAvg: Number(row["ttfb_ms_avg"]),
      durationMsAvg: Number(row["duration_ms_avg"]),
    }));
}

/** dimensionOf looks a dimension up by own property only, so that names like "constructor" are refused too. */
function dimensionOf(groupBy: UsageGroupBy): UsageDimension {
  if (!Object.hasOwn(USAGE_DIMENSIONS, groupBy)) {
    throw new RangeError(`unknown usage dimension ${JSON.stringify(String(groupBy).slice(0, 40))}`);
  }
  return USAGE_DIMENSIONS[groupBy];
}
