import { expect } from "chai";
import {
  addLocalDays,
  type Bucket,
  bucketOf,
  DAY_MS,
  DEFAULT_PRESET,
  datesRange,
  HOUR_MS,
  localDate,
  PRESETS,
  parseLocalDate,
  presetRange,
  rangeDates,
  startOfLocalDay,
} from "../../dashboard/src/components/usage-range.js";
import { at, describeInZone, iso, type Zone } from "./time-zone.js";

// The cases outside describeInZone hold in any zone: they build their expectations from the local calendar with
// Date's own constructor. time-zones.test.ts runs this file again under each of ZONES, where the exact instants run too.

/** local is a wall-clock time in the process's zone, as epoch milliseconds (month 1-12). */
function local(year: number, month: number, day: number, hour = 0, minute = 0): number {
  return new Date(year, month - 1, day, hour, minute).getTime();
}

/** datesOf2026 are the 365 dates of 2026 as "YYYY-MM-DD", and 2027-01-01, computed without any local time. */
const datesOf2026 = Array.from({ length: 366 }, (_, day) => new Date(Date.UTC(2026, 0, 1 + day)).toISOString().slice(0, 10));

describe("usage-range", () => {
  describe("presets", () => {
    it("offers the last 24 hours, 7 days and 30 days, and starts on 7 days", () => {
      expect(PRESETS).to.deep.equal([
        ["24h", "Last 24 hours"],
        ["7d", "Last 7 days"],
        ["30d", "Last 30 days"],
      ]);
      expect(DEFAULT_PRESET).to.equal("7d");
    });

    it("takes the last 24 hours to the millisecond before now, charted by the hour", () => {
      const now = local(2026, 3, 10, 12, 34) + 567;
      const range = presetRange("24h", now);
      expect(range).to.deep.equal({ fromMs: now - DAY_MS, toMs: now, preset: "24h" });
      expect(bucketOf(range)).to.equal("hour");
    });

    it("takes the last 7 local days including today, from midnight to midnight, charted by the day", () => {
      const range = presetRange("7d", local(2026, 3, 10, 12, 0));
      expect(range).to.deep.equal({ fromMs: local(2026, 3, 4), toMs: local(2026, 3, 11), preset: "7d" });
      expect(rangeDates(range)).to.deep.equal({ from: "2026-03-04", to: "2026-03-10" });
      expect(bucketOf(range)).to.equal("day");
    });

    it("takes the last 30 local days including today, across a month's end", () => {
      const range = presetRange("30d", local(2026, 3, 10, 12, 0));
      expect(range).to.deep.equal({ fromMs: local(2026, 2, 9), toMs: local(2026, 3, 11), preset: "30d" });
      expect(rangeDates(range)).to.deep.equal({ from: "2026-02-09", to: "2026-03-10" });
      expect(bucketOf(range)).to.equal("day");
    });

    it("counts today from its first millisecond to its last, and not a millisecond more", () => {
      expect(rangeDates(presetRange("7d", local(2026, 3, 10)))).to.deep.equal({ from: "2026-03-04", to: "2026-03-10" });
      expect(rangeDates(presetRange("7d", local(2026, 3, 11) - 1))).to.deep.equal({ from: "2026-03-04", to: "2026-03-10" });
      expect(rangeDates(presetRange("7d", local(2026, 3, 11)))).to.deep.equal({ from: "2026-03-05", to: "2026-03-11" });
    });

    it("ends a preset on the last day of a year, and starts the next year's first", () => {
      expect(rangeDates(presetRange("7d", local(2026, 12, 31, 23, 59)))).to.deep.equal({ from: "2026-12-25", to: "2026-12-31" });
      expect(rangeDates(presetRange("7d", local(2027, 1, 1, 0, 1)))).to.deep.equal({ from: "2026-12-26", to: "2027-01-01" });
    });
  });

  describe("dates", () => {
    it("reads a date range as whole local days, both ends included, with no preset", () => {
      const range = datesRange("2026-03-08", "2026-03-09");
      expect(range).to.deep.equal({ fromMs: local(2026, 3, 8), toMs: local(2026, 3, 10) });
      expect(range && rangeDates(range)).to.deep.equal({ from: "2026-03-08", to: "2026-03-09" });
    });

    it("reads one date as that one local day, charted by the hour", () => {
      const range = datesRange("2026-11-01", "2026-11-01");
      expect(range).to.deep.equal({ fromMs: local(2026, 11, 1), toMs: local(2026, 11, 2) });
      expect(range && rangeDates(range)).to.deep.equal({ from: "2026-11-01", to: "2026-11-01" });
      expect(range && bucketOf(range)).to.equal("hour");
    });

    it("refuses anything that is not a date that exists", () => {
      for (const text of [
        "",
        "2026-02-29",
        "2026-02-30",
        "2026-13-01",
        "2026-00-10",
        "2026-04-31",
        "2026-3-8",
        "2026-03-08T00:00",
        " 2026-03-08",
        "tomorrow",
      ]) {
        expect(parseLocalDate(text), text).to.equal(undefined);
        expect(datesRange(text, "2026-03-08"), `from ${text}`).to.equal(undefined);
        expect(datesRange("2026-03-08", text), `to ${text}`).to.equal(undefined);
      }
    });

    it("reads a leap day in a leap year", () => {
      expect(parseLocalDate("2028-02-29")).to.equal(local(2028, 2, 29));
    });

    it("reads every date of 2026 as its local midnight, writes it back, and steps one calendar day to the next", () => {
      const lengths = new Set<number>();
      for (const [index, date] of datesOf2026.slice(0, -1).entries()) {
        const next = datesOf2026[index + 1] ?? "";
        const start = parseLocalDate(date);
        expect(start, date).to.equal(local(Number(date.slice(0, 4)), Number(date.slice(5, 7)), Number(date.slice(8, 10))));
        if (start === undefined) continue;
        expect(localDate(start), date).to.equal(date);
        expect(startOfLocalDay(start), date).to.equal(start);
        const end = addLocalDays(start, 1);
        expect(end, `${date} + 1 day`).to.equal(parseLocalDate(next));
        expect(localDate(end - 1), `the last millisecond of ${date}`).to.equal(date);
        expect(startOfLocalDay(end - 1), `the last millisecond of ${date}`).to.equal(start);
        lengths.add((end - start) / HOUR_MS);
      }
      // A day is 24 hours, or up to an hour shorter or longer on the days daylight saving starts and ends.
      expect(
        [...lengths].filter((hours) => hours < 23 || hours > 25),
        "days shorter than 23 or longer than 25 hours",
      ).to.deep.equal([]);
    });

    it("moves by whole calendar days backwards and forwards, across months and years", () => {
      const start = local(2026, 3, 8);
      expect(addLocalDays(start, 0)).to.equal(start);
      expect(addLocalDays(start, -8)).to.equal(local(2026, 2, 28));
      expect(addLocalDays(start, 300)).to.equal(local(2027, 1, 2));
      expect(addLocalDays(local(2026, 1, 1), -1)).to.equal(local(2025, 12, 31));
    });
  });

  describe("bucketOf", () => {
    it("charts up to two days and an hour by the hour, and anything longer by the day", () => {
      const length = (ms: number): Bucket => bucketOf({ fromMs: 1_000_000, toMs: 1_000_000 + ms });
      expect(length(0)).to.equal("hour");
      expect(length(2 * DAY_MS)).to.equal("hour");
      expect(length(2 * DAY_MS + HOUR_MS)).to.equal("hour");
      expect(length(2 * DAY_MS + HOUR_MS + 1)).to.equal("day");
      expect(length(7 * DAY_MS)).to.equal("day");
    });
  });

  /** ZoneFacts are what usage-range must compute in one zone, as ISO-8601 instants. */
  interface ZoneFacts {
    /** midnights are the local days around New York's 2026 daylight-saving changes, and when each begins. */
    readonly midnights: Readonly<Record<string, string>>;
    /** dates are the local dates of instants around 2026-03-09T04:00Z, New York's midnight that night. */
    readonly dates: Readonly<Record<string, string>>;
    /** dayStarts are when the local day of an instant began (05:30Z and 06:30Z are both 01:30 in New York). */
    readonly dayStarts: Readonly<Record<string, string>>;
    /** ranges are date ranges from the picker, with their length in hours and the bucket they are charted by. */
    readonly ranges: Readonly<Record<string, readonly [number, Bucket]>>;
    /** sevenDays is the 7-day preset as of 2026-03-10T03:30Z, still 9 March in New York. */
    readonly sevenDays: { readonly fromMs: string; readonly toMs: string; readonly from: string; readonly to: string };
  }

  const INSTANTS = ["2026-03-09T03:59:59.999Z", "2026-03-09T04:00:00.000Z", "2026-11-01T05:30:00.000Z", "2026-11-01T06:30:00.000Z"];
  const MIDNIGHTS = ["2026-03-07", "2026-03-08", "2026-03-09", "2026-10-31", "2026-11-01", "2026-11-02"];
  const RANGES = [
    ["2026-03-08", "2026-03-08"],
    ["2026-11-01", "2026-11-01"],
    ["2026-03-08", "2026-03-09"],
    ["2026-10-31", "2026-11-01"],
    ["2026-11-01", "2026-11-02"],
    ["2026-03-07", "2026-03-09"],
    ["2026-10-31", "2026-11-02"],
  ] as const;

  const FACTS: Readonly<Record<Zone, ZoneFacts>> = {
    "America/New_York": {
      midnights: {
        "2026-03-07": "2026-03-07T05:00:00.000Z",
        "2026-03-08": "2026-03-08T05:00:00.000Z",
        "2026-03-09": "2026-03-09T04:00:00.000Z",
        "2026-10-31": "2026-10-31T04:00:00.000Z",
        "2026-11-01": "2026-11-01T04:00:00.000Z",
        "2026-11-02": "2026-11-02T05:00:00.000Z",
      },
      dates: {
        "2026-03-09T03:59:59.999Z": "2026-03-08",
        "2026-03-09T04:00:00.000Z": "2026-03-09",
        "2026-11-01T05:30:00.000Z": "2026-11-01",
        "2026-11-01T06:30:00.000Z": "2026-11-01",
      },
      dayStarts: {
        "2026-03-09T03:59:59.999Z": "2026-03-08T05:00:00.000Z",
        "2026-03-09T04:00:00.000Z": "2026-03-09T04:00:00.000Z",
        "2026-11-01T05:30:00.000Z": "2026-11-01T04:00:00.000Z",
        "2026-11-01T06:30:00.000Z": "2026-11-01T04:00:00.000Z",
      },
      ranges: {
        "2026-03-08..2026-03-08": [23, "hour"],
        "2026-11-01..2026-11-01": [25, "hour"],
        "2026-03-08..2026-03-09": [47, "hour"],
        // Two days with the hour that falling back adds: still charted by the hour.
        "2026-10-31..2026-11-01": [49, "hour"],
        "2026-11-01..2026-11-02": [49, "hour"],
        "2026-03-07..2026-03-09": [71, "day"],
        "2026-10-31..2026-11-02": [73, "day"],
      },
      sevenDays: { fromMs: "2026-03-03T05:00:00.000Z", toMs: "2026-03-10T04:00:00.000Z", from: "2026-03-03", to: "2026-03-09" },
    },
    "Asia/Kolkata": {
      midnights: {
        "2026-03-07": "2026-03-06T18:30:00.000Z",
        "2026-03-08": "2026-03-07T18:30:00.000Z",
        "2026-03-09": "2026-03-08T18:30:00.000Z",
        "2026-10-31": "2026-10-30T18:30:00.000Z",
        "2026-11-01": "2026-10-31T18:30:00.000Z",
        "2026-11-02": "2026-11-01T18:30:00.000Z",
      },
      dates: {
        "2026-03-09T03:59:59.999Z": "2026-03-09",
        "2026-03-09T04:00:00.000Z": "2026-03-09",
        "2026-11-01T05:30:00.000Z": "2026-11-01",
        "2026-11-01T06:30:00.000Z": "2026-11-01",
      },
      dayStarts: {
        "2026-03-09T03:59:59.999Z": "2026-03-08T18:30:00.000Z",
        "2026-03-09T04:00:00.000Z": "2026-03-08T18:30:00.000Z",
        "2026-11-01T05:30:00.000Z": "2026-10-31T18:30:00.000Z",
        "2026-11-01T06:30:00.000Z": "2026-10-31T18:30:00.000Z",
      },
      ranges: {
        "2026-03-08..2026-03-08": [24, "hour"],
        "2026-11-01..2026-11-01": [24, "hour"],
        "2026-03-08..2026-03-09": [48, "hour"],
        "2026-10-31..2026-11-01": [48, "hour"],
        "2026-11-01..2026-11-02": [48, "hour"],
        "2026-03-07..2026-03-09": [72, "day"],
        "2026-10-31..2026-11-02": [72, "day"],
      },
      sevenDays: { fromMs: "2026-03-03T18:30:00.000Z", toMs: "2026-03-10T18:30:00.000Z", from: "2026-03-04", to: "2026-03-10" },
    },
    UTC: {
      midnights: {
        "2026-03-07": "2026-03-07T00:00:00.000Z",
        "2026-03-08": "2026-03-08T00:00:00.000Z",
        "2026-03-09": "2026-03-09T00:00:00.000Z",
        "2026-10-31": "2026-10-31T00:00:00.000Z",
        "2026-11-01": "2026-11-01T00:00:00.000Z",
        "2026-11-02": "2026-11-02T00:00:00.000Z",
      },
      dates: {
        "2026-03-09T03:59:59.999Z": "2026-03-09",
        "2026-03-09T04:00:00.000Z": "2026-03-09",
        "2026-11-01T05:30:00.000Z": "2026-11-01",
        "2026-11-01T06:30:00.000Z": "2026-11-01",
      },
      dayStarts: {
        "2026-03-09T03:59:59.999Z": "2026-03-09T00:00:00.000Z",
        "2026-03-09T04:00:00.000Z": "2026-03-09T00:00:00.000Z",
        "2026-11-01T05:30:00.000Z": "2026-11-01T00:00:00.000Z",
        "2026-11-01T06:30:00.000Z": "2026-11-01T00:00:00.000Z",
      },
      ranges: {
        "2026-03-08..2026-03-08": [24, "hour"],
        "2026-11-01..2026-11-01": [24, "hour"],
        "2026-03-08..2026-03-09": [48, "hour"],
        "2026-10-31..2026-11-01": [48, "hour"],
        "2026-11-01..2026-11-02": [48, "hour"],
        "2026-03-07..2026-03-09": [72, "day"],
        "2026-10-31..2026-11-02": [72, "day"],
      },
      sevenDays: { fromMs: "2026-03-04T00:00:00.000Z", toMs: "2026-03-11T00:00:00.000Z", from: "2026-03-04", to: "2026-03-10" },
    },
  };

  for (const [zone, facts] of Object.entries(FACTS) as [Zone, ZoneFacts][]) {
    describeInZone(zone, () => {
      it("starts each local day at its zone's midnight, across New York's daylight-saving changes", () => {
        expect(Object.fromEntries(MIDNIGHTS.map((date) => [date, iso(parseLocalDate(date))]))).to.deep.equal(facts.midnights);
      });

      it("writes instants as their local dates, and finds the start of their local day", () => {
        expect(Object.fromEntries(INSTANTS.map((instant) => [instant, localDate(at(instant))]))).to.deep.equal(facts.dates);
        expect(Object.fromEntries(INSTANTS.map((instant) => [instant, iso(startOfLocalDay(at(instant)))]))).to.deep.equal(facts.dayStarts);
      });

      it("measures picked date ranges in real hours, and charts two days (and the hour falling back adds) by the hour", () => {
        const measured = Object.fromEntries(
          RANGES.map(([from, to]) => {
            const range = datesRange(from, to);
            return [`${from}..${to}`, range && [(range.toMs - range.fromMs) / HOUR_MS, bucketOf(range)]];
          }),
        );
        expect(measured).to.deep.equal(facts.ranges);
      });

      it("takes the last 7 days as of an instant as the zone's local days", () => {
        const range = presetRange("7d", at("2026-03-10T03:30:00Z"));
        expect({ fromMs: iso(range.fromMs), toMs: iso(range.toMs), ...rangeDates(range) }).to.deep.equal(facts.sevenDays);
      });
    });
  }
});
