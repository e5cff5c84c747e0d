import { expect } from "chai";
import type { UsageGroupBy, UsageQuery } from "./registry-store.js";
import { toUsageRows, USAGE_DIMENSIONS, usageStatement } from "./usage-sql.js";

/** query is a usage query over the first day of 2024 with the given changes. */
function query(changes: Partial<UsageQuery> = {}): UsageQuery {
  return { scope: "caller", userId: "user-1", fromMs: Date.UTC(2024, 0, 1), toMs: Date.UTC(2024, 0, 2), groupBy: [], ...changes };
}

describe("usage-sql", () => {
  it("binds the times and the user id and takes every other piece of SQL from its tables", () => {
    const hostile = "x' OR 1=1; DROP TABLE usage; --";
    const { sql, params } = usageStatement(query({ userId: hostile, groupBy: ["day", "user"] }));
    expect(params).to.deep.equal([Date.UTC(2024, 0, 1), Date.UTC(2024, 0, 2), hostile]);
    expect(sql).to.not.include(hostile);
    expect(sql).to.include(`${USAGE_DIMENSIONS.day.sql} AS g0`);
    expect(sql).to.include(`${USAGE_DIMENSIONS.user.sql} AS g1`);
    expect(sql).to.include("LEFT JOIN users u ON u.id = r.user_id");
    expect(sql).to.include("WHERE r.time_ms >= ? AND r.time_ms < ? AND r.user_id = ?");
  });

  it("filters each scope on its own column, and the whole mesh on none", () => {
    expect(usageStatement(query({ scope: "caller" })).sql).to.include("AND r.user_id = ?");
    expect(usageStatement(query({ scope: "provider_owner" })).sql).to.include("AND r.provider_owner_id = ?");
    const all = usageStatement(query({ scope: "all" }));
    expect(all.params).to.deep.equal([Date.UTC(2024, 0, 1), Date.UTC(2024, 0, 2)]);
    expect(all.sql).to.not.include("user_id = ?");
    expect(all.sql).to.not.include("provider_owner_id");
  });

  it("joins users only for the user dimension and groups only when asked", () => {
    const plain = usageStatement(query({ groupBy: ["model"] })).sql;
    expect(plain).to.not.include("JOIN");
    expect(plain).to.include("GROUP BY r.model ORDER BY r.model");
    expect(usageStatement(query()).sql).to.not.include("GROUP BY");
  });

  it("refuses unknown and repeated dimensions, unknown scopes and times that are not finite", () => {
    const unknown = ["constructor", "__proto__", "toString", "model; DROP TABLE usage", "Model", ""];
    for (const name of unknown) {
      expect(() => usageStatement(query({ groupBy: [name as UsageGroupBy] })), name).to.throw(RangeError, "unknown usage dimension");
    }
    expect(() => usageStatement(query({ groupBy: ["model", "day", "model"] }))).to.throw(RangeError, "must not repeat");
    for (const scope of ["constructor", "everyone", ""]) {
      expect(() => usageStatement(query({ scope: scope as UsageQuery["scope"] })), scope).to.throw(RangeError, "unknown usage scope");
    }
    for (const [fromMs, toMs] of [
      [Number.NaN, 0],
      [0, Number.POSITIVE_INFINITY],
    ] as const) {
      expect(() => usageStatement(query({ fromMs, toMs }))).to.throw(RangeError, "finite");
    }
  });

  it("shows day and hour groups as ISO-8601 UTC starts and the rest as text", () => {
    const rows = toUsageRows(query({ groupBy: ["day", "hour", "model", "key"] }), [
      {
        g0: Date.UTC(2024, 0, 1),
        g1: Date.UTC(2024, 0, 1, 13),
        g2: "llama",
        g3: "0123456789abcdef",
        requests: 3,
        errors: 1,
        prompt_tokens: 30,
        completion_tokens: 40,
        audio_seconds: 1.5,
        images: 2,
        ttfb_ms_avg: 12.5,
        duration_ms_avg: 100,
      },
    ]);
    expect(rows).to.deep.equal([
      {
        group: ["2024-01-01T00:00:00.000Z", "2024-01-01T13:00:00.000Z", "llama", "0123456789abcdef"],
        requests: 3,
        errors: 1,
        promptTokens: 30,
        completionTokens: 40,
        audioSeconds: 1.5,
        images: 2,
        ttfbMsAvg: 12.5,
        durationMsAvg: 100,
      },
    ]);
  });

  it("drops the totals row of a range without requests", () => {
    const empty = {
      requests: 0,
      errors: 0,
      prompt_tokens: 0,
      completion_tokens: 0,
      audio_seconds: 0,
      images: 0,
      ttfb_ms_avg: 0,
      duration_ms_avg: 0,
    };
    expect(toUsageRows(query(), [empty])).to.deep.equal([]);
  });
});
