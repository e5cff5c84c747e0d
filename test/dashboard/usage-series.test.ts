import { expect } from "chai";
import { DAY_MS, datesRange, HOUR_MS, parseLocalDate, presetRange, type UsageRange } from "../../dashboard/src/components/usage-range.js";
import { queryGroupOf, type UsageSeries, usageSeries } from "../../dashboard/src/components/usage-series.js";
import type { UsageRow } from "../../dashboard/src/types.js";
import { at, describeInZone, iso, type Zone } from "./time-zone.js";

// As in usage-range.test.ts, the cases outside describeInZone hold in any zone, and time-zones.test.ts runs this file
// again under each of ZONES with their exact expectations.

/** row is a time-grouped row of /api/usage as the gateway answers it: its UTC hour or day in ISO-8601, and its sums. */
function row(
  time: { readonly hour: string } | { readonly day: string } | Record<string, never>,
  requests: number,
  errors = 0,
  promptTokens = 0,
  completionTokens = 0,
): UsageRow {
  return {
    ...time,
    requests,
    errors,
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    audio_seconds: 0,
    images: 0,
    ttfb_ms_avg: 0,
    duration_ms_avg: 0,
  };
}

/** local is a wall-clock time in the process's zone, as epoch milliseconds (month 1-12). */
function local(year: number, month: number, day: number, hour = 0): number {
  return new Date(year, month - 1, day, hour).getTime();
}

/** utcHour is the UTC hour an instant falls in, as the gateway names an hourly row. */
function utcHour(ms: number): string {
  return new Date(Math.floor(ms / HOUR_MS) * HOUR_MS).toISOString();
}

/** localMidnights are the starts of the local days from one date to another, both included. */
function localMidnights(from: string, to: string): number[] {
  const dates: number[] = [];
  for (let day = Date.parse(`${from}T00:00:00Z`); day <= Date.parse(`${to}T00:00:00Z`); day += DAY_MS) {
    dates.push(parseLocalDate(new Date(day).toISOString().slice(0, 10)) ?? Number.NaN);
  }
  return dates;
}

/** counts puts numbers at the given bucket starts, and zero elsewhere. */
function counts(times: readonly number[], values: ReadonlyMap<number, number>): number[] {
  return times.map((time) => values.get(time) ?? 0);
}

function zeros(length: number): number[] {
  return Array.from({ length }, () => 0);
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

function range(from: string, to: string): UsageRange {
  const picked = datesRange(from, to);
  if (picked === undefined) throw new Error(`not a date range: ${from}..${to}`);
  return picked;
}

describe("usage-series", () => {
  describe("queryGroupOf", () => {
    it("asks by the hour for up to 93 days, and by the UTC day for longer", () => {
      expect(queryGroupOf({ fromMs: 0, toMs: 93 * DAY_MS })).to.equal("hour");
      expect(queryGroupOf({ fromMs: 0, toMs: 93 * DAY_MS + 1 })).to.equal("day");
      expect(queryGroupOf(presetRange("30d", local(2026, 3, 10, 12)))).to.equal("hour");
      expect(queryGroupOf(range("2026-01-01", "2026-04-30"))).to.equal("day");
    });
  });

  describe("by the hour", () => {
    const nowMs = at("2026-03-10T12:34:00Z");
    const last24 = presetRange("24h", nowMs);
    const hours = Array.from({ length: 25 }, (_, hour) => at("2026-03-09T12:00:00Z") + hour * HOUR_MS);

    it("charts the last 24 hours as the 25 UTC hours they touch, zero where there were no calls", () => {
      const series = usageSeries(
        last24,
        [row({ hour: "2026-03-09T13:00:00.000Z" }, 2, 1, 10, 20), row({ hour: "2026-03-10T12:00:00.000Z" }, 1, 0, 5, 7)],
        nowMs,
      );
      expect(series).to.deep.equal({
        bucket: "hour",
        times: hours,
        requests: counts(
          hours,
          new Map([
            [hours[1] ?? 0, 2],
            [hours[24] ?? 0, 1],
          ]),
        ),
        errors: counts(hours, new Map([[hours[1] ?? 0, 1]])),
        promptTokens: counts(
          hours,
          new Map([
            [hours[1] ?? 0, 10],
            [hours[24] ?? 0, 5],
          ]),
        ),
        completionTokens: counts(
          hours,
          new Map([
            [hours[1] ?? 0, 20],
            [hours[24] ?? 0, 7],
          ]),
        ),
      } satisfies UsageSeries);
    });

    it("sums the rows of one hour (one per model or key)", () => {
      const hour = "2026-03-10T03:00:00.000Z";
      const series = usageSeries(last24, [row({ hour }, 3, 1, 100, 10), row({ hour }, 4, 0, 50, 5), row({ hour }, 5, 2, 1, 1)], nowMs);
      const index = hours.indexOf(at(hour));
      expect([series.requests[index], series.errors[index], series.promptTokens[index], series.completionTokens[index]]).to.deep.equal([
        12, 3, 151, 16,
      ]);
      expect([sum(series.requests), sum(series.errors), sum(series.promptTokens), sum(series.completionTokens)]).to.deep.equal([
        12, 3, 151, 16,
      ]);
    });

    it("has every bucket with no rows, and skips rows with no time or one that is not a time", () => {
      const untimed = [row({ hour: "not a time" }, 9), row({}, 9), row({ day: "someday" }, 9)];
      expect(usageSeries(last24, untimed, nowMs)).to.deep.equal({
        bucket: "hour",
        times: hours,
        requests: zeros(25),
        errors: zeros(25),
        promptTokens: zeros(25),
        completionTokens: zeros(25),
      });
    });

    it("has no buckets after the hour now falls in, for a day that is not over", () => {
      const today = range("2026-03-10", "2026-03-10");
      const now = local(2026, 3, 10, 5) + 10 * 60_000;
      const { times, requests } = usageSeries(today, [row({ hour: utcHour(now) }, 1)], now);
      expect(times.at(-1), "the last bucket holds now").to.be.within(now - HOUR_MS + 1, now);
      expect(times[0], "the first bucket holds the day's start").to.be.within(today.fromMs - HOUR_MS + 1, today.fromMs);
      expect(
        times.slice(1).map((time, index) => time - (times[index] ?? 0)),
        "one hour apart",
      ).to.deep.equal(zeros(times.length - 1).map(() => HOUR_MS));
      expect(requests.at(-1)).to.equal(1);
    });
  });

  describe("by the local day", () => {
    it("folds hourly rows into the local days they fall in", () => {
      const march = range("2026-03-01", "2026-03-31");
      const days = localMidnights("2026-03-01", "2026-03-31");
      const rows = [
        row({ hour: utcHour(local(2026, 3, 8, 12)) }, 1, 1, 10, 1),
        row({ hour: utcHour(local(2026, 3, 8, 13)) }, 2, 0, 20, 2),
        row({ hour: utcHour(local(2026, 3, 9, 12)) }, 4, 0, 40, 4),
      ];
      const series = usageSeries(march, rows, local(2026, 4, 15));
      const mar8 = parseLocalDate("2026-03-08") ?? 0;
      const mar9 = parseLocalDate("2026-03-09") ?? 0;
      expect(series).to.deep.equal({
        bucket: "day",
        times: days,
        requests: counts(
          days,
          new Map([
            [mar8, 3],
            [mar9, 4],
          ]),
        ),
        errors: counts(days, new Map([[mar8, 1]])),
        promptTokens: counts(
          days,
          new Map([
            [mar8, 30],
            [mar9, 40],
          ]),
        ),
        completionTokens: counts(
          days,
          new Map([
            [mar8, 3],
            [mar9, 4],
          ]),
        ),
      });
    });

    it("ends with today: the days still to come have no bucket", () => {
      const series = usageSeries(range("2026-03-01", "2026-03-31"), [], local(2026, 3, 10, 12));
      expect(series.times).to.deep.equal(localMidnights("2026-03-01", "2026-03-10"));
      expect(series.requests).to.deep.equal(zeros(10));
    });

    it("still charts a call the gateway's clock, running ahead, puts after the reader's now", () => {
      const series = usageSeries(
        range("2026-03-01", "2026-03-31"),
        [row({ hour: utcHour(local(2026, 3, 11, 1)) }, 5)],
        local(2026, 3, 10, 12),
      );
      expect(series.times).to.deep.equal(localMidnights("2026-03-01", "2026-03-11"));
      expect(series.requests.at(-1)).to.equal(5);
    });

    it("takes each UTC day of a long range as the local day of the same date", () => {
      const long = range("2026-01-01", "2026-04-30");
      const series = usageSeries(
        long,
        [row({ day: "2026-03-08T00:00:00.000Z" }, 4), row({ day: "2026-02-01T00:00:00.000Z" }, 2)],
        at("2026-06-01T00:00:00Z"),
      );
      const days = localMidnights("2026-01-01", "2026-04-30");
      expect(series.times).to.deep.equal(days);
      expect(series.requests).to.deep.equal(
        counts(
          days,
          new Map([
            [parseLocalDate("2026-03-08") ?? 0, 4],
            [parseLocalDate("2026-02-01") ?? 0, 2],
          ]),
        ),
      );
    });

    // Regression: the UTC days at a long range's edges were dropped from the chart while the totals counted them. East
    // of UTC the first local day begins on the UTC date before it; west of UTC the last one ends on the UTC date after.
    it("counts the UTC days that straddle a long range's edges on its first and last days", () => {
      const long = range("2026-01-01", "2026-04-30");
      const rows = [
        row({ day: "2025-12-31T00:00:00.000Z" }, 1),
        row({ day: "2026-01-01T00:00:00.000Z" }, 2),
        row({ day: "2026-04-30T00:00:00.000Z" }, 8),
        row({ day: "2026-05-01T00:00:00.000Z" }, 16),
      ];
      const { requests } = usageSeries(long, rows, at("2026-06-01T00:00:00Z"));
      expect([requests[0], requests.at(-1), sum(requests)]).to.deep.equal([3, 24, 27]);
    });
  });

  /** ZoneFacts are what usageSeries must compute in one zone; times are ISO-8601 instants. */
  interface ZoneFacts {
    /** sevenDays is the 7-day preset as of 2026-03-10T03:30Z, with SEVEN_DAY_ROWS, a call or more each. */
    readonly sevenDays: { readonly times: readonly string[]; readonly requests: readonly number[] };
    /** oneDay is a picked day charted by the hour: how many UTC hours it touches, and the first and last of them. */
    readonly oneDay: Readonly<Record<string, readonly [number, string | undefined, string | undefined]>>;
  }

  const SEVEN_DAYS_NOW = "2026-03-10T03:30:00Z";
  const SEVEN_DAY_ROWS = [
    // In Kolkata, the UTC hour that holds the range's first half hour: it begins at 23:30 the day before.
    row({ hour: "2026-03-03T18:00:00.000Z" }, 1),
    // 23:00 and midnight in New York, either side of its spring-forward day, and the last hour before now.
    row({ hour: "2026-03-08T04:00:00.000Z" }, 2),
    row({ hour: "2026-03-08T05:00:00.000Z" }, 4),
    row({ hour: "2026-03-09T03:00:00.000Z" }, 8),
    row({ hour: "2026-03-09T04:00:00.000Z" }, 16),
    row({ hour: "2026-03-10T03:00:00.000Z" }, 32),
  ];

  const FACTS: Readonly<Record<Zone, ZoneFacts>> = {
    "America/New_York": {
      sevenDays: {
        times: [
          "2026-03-03T05:00:00.000Z",
          "2026-03-04T05:00:00.000Z",
          "2026-03-05T05:00:00.000Z",
          "2026-03-06T05:00:00.000Z",
          "2026-03-07T05:00:00.000Z",
          "2026-03-08T05:00:00.000Z",
          "2026-03-09T04:00:00.000Z",
        ],
        requests: [1, 0, 0, 0, 2, 4 + 8, 16 + 32],
      },
      oneDay: {
        "2026-03-08": [23, "2026-03-08T05:00:00.000Z", "2026-03-09T03:00:00.000Z"],
        "2026-11-01": [25, "2026-11-01T04:00:00.000Z", "2026-11-02T04:00:00.000Z"],
      },
    },
    "Asia/Kolkata": {
      sevenDays: {
        times: [
          "2026-03-03T18:30:00.000Z",
          "2026-03-04T18:30:00.000Z",
          "2026-03-05T18:30:00.000Z",
          "2026-03-06T18:30:00.000Z",
          "2026-03-07T18:30:00.000Z",
          "2026-03-08T18:30:00.000Z",
          "2026-03-09T18:30:00.000Z",
        ],
        requests: [1, 0, 0, 0, 2 + 4, 8 + 16, 32],
      },
      // The hours are UTC hours, as the gateway counts them: half an hour of the day before and after is in the chart.
      oneDay: {
        "2026-03-08": [25, "2026-03-07T18:00:00.000Z", "2026-03-08T18:00:00.000Z"],
        "2026-11-01": [25, "2026-10-31T18:00:00.000Z", "2026-11-01T18:00:00.000Z"],
      },
    },
    UTC: {
      sevenDays: {
        times: [
          "2026-03-04T00:00:00.000Z",
          "2026-03-05T00:00:00.000Z",
          "2026-03-06T00:00:00.000Z",
          "2026-03-07T00:00:00.000Z",
          "2026-03-08T00:00:00.000Z",
          "2026-03-09T00:00:00.000Z",
          "2026-03-10T00:00:00.000Z",
        ],
        requests: [1, 0, 0, 0, 2 + 4, 8 + 16, 32],
      },
      oneDay: {
        "2026-03-08": [24, "2026-03-08T00:00:00.000Z", "2026-03-08T23:00:00.000Z"],
        "2026-11-01": [24, "2026-11-01T00:00:00.000Z", "2026-11-01T23:00:00.000Z"],
      },
    },
  };

  for (const [zone, facts] of Object.entries(FACTS) as [Zone, ZoneFacts][]) {
    describeInZone(zone, () => {
      it("folds the hours of the last 7 days into the zone's local days, every call in the chart", () => {
        const series = usageSeries(presetRange("7d", at(SEVEN_DAYS_NOW)), SEVEN_DAY_ROWS, at(SEVEN_DAYS_NOW));
        expect({ times: series.times.map(iso), requests: series.requests }).to.deep.equal(facts.sevenDays);
        expect(sum(series.requests)).to.equal(sum(SEVEN_DAY_ROWS.map((each) => each.requests)));
      });

      it("charts a picked day on New York's daylight-saving changes hour by hour, every hour once", () => {
        const charted = Object.fromEntries(
          Object.keys(facts.oneDay).map((date) => {
            const { bucket, times } = usageSeries(range(date, date), [], at("2026-12-01T00:00:00Z"));
            expect(bucket, date).to.equal("hour");
            return [date, [times.length, iso(times[0]), iso(times.at(-1))]];
          }),
        );
        expect(charted).to.deep.equal(facts.oneDay);
      });
    });
  }
});
