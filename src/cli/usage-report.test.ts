import { expect } from "chai";
import { refusalMessage as message } from "../../test/support/config-errors.js";
import { formatUsageReport, parseGroupBy, parseUsageTime } from "./usage-report.js";

describe("infermesh usage's report", () => {
  it("reads a time as ISO-8601, UTC unless it says otherwise, or as unix seconds", () => {
    expect(parseUsageTime("--from", "2025-05-01")).to.equal(Date.parse("2025-05-01T00:00:00Z"));
    expect(parseUsageTime("--from", "2025-05-01T12:00:00+02:00")).to.equal(Date.parse("2025-05-01T10:00:00Z"));
    expect(parseUsageTime("--from", "1746057600")).to.equal(Date.parse("2025-05-01T00:00:00Z"));
    for (const text of ["now", "-1", "1.5", "May 1 2025", "2025-13-01"]) {
      expect(
        message(() => parseUsageTime("--to", text)),
        text,
      ).to.equal(`--to expects an ISO-8601 time (2025-05-01, 2025-05-01T12:00:00Z) or unix seconds, got '${text}'`);
    }
  });

  it("groups by the dimensions named, each once, and by none when empty", () => {
    expect(parseGroupBy("--group-by", "day, model")).to.deep.equal(["day", "model"]);
    expect(parseGroupBy("--group-by", "")).to.deep.equal([]);
    expect(message(() => parseGroupBy("--group-by", "day,"))).to.match(/^--group-by expects a comma-separated list of /);
  });

  it("writes days and hours of either form the API may give, and the window's ends given in unix seconds", () => {
    const row = { requests: 1, errors: 0, prompt_tokens: 1, completion_tokens: 1, total_tokens: 2, audio_seconds: 0, images: 2 };
    const sums = { ...row, ttfb_ms_avg: 12.4, duration_ms_avg: 99.5 };
    const report = {
      object: "list" as const,
      scope: "mine",
      group_by: ["day", "hour"],
      from: 1746057600,
      to: "2025-05-02T00:00:00.000Z",
      data: [{ day: "2025-05-01T00:00:00.000Z", hour: 1746061200, ...sums }],
    };
    expect(formatUsageReport(report).split("\n")).to.deep.equal([
      "usage (mine) from 2025-05-01T00:00:00.000Z to 2025-05-02T00:00:00.000Z",
      "DAY         HOUR              REQUESTS  ERRORS  PROMPT_TOKENS  COMPLETION_TOKENS  TOTAL_TOKENS  IMAGES  TTFB_MS  DURATION_MS",
      "2025-05-01  2025-05-01 01:00         1       0              1                  1             2       2       12          100",
      "",
    ]);
  });
});
