import { expect } from "chai";
import { formatAgo, formatUnixTime } from "../../dashboard/src/format.js";

describe("formatAgo", () => {
  const nowMs = Date.UTC(2026, 2, 10, 12, 0, 0);
  const ago = (seconds: number) => formatAgo(nowMs / 1000 - seconds, nowMs);

  it("says never for a time that never was", () => {
    expect(formatAgo(null, nowMs)).to.equal("never");
  });

  it("counts whole seconds under a minute, whole minutes under an hour and whole hours under a day, never an hour as 60 min", () => {
    expect([0, 1, 59, 60, 89, 90, 119, 3540, 3599, 3600, 5399, 5400, 7199, 23 * 3600 + 1799].map(ago)).to.deep.equal([
      "0 s ago",
      "1 s ago",
      "59 s ago",
      "1 min ago",
      "1 min ago",
      "1 min ago",
      "1 min ago",
      "59 min ago",
      "59 min ago",
      "1 h ago",
      "1 h ago",
      "1 h ago",
      "1 h ago",
      "23 h ago",
    ]);
  });

  it("rounds a now that falls between whole seconds", () => {
    expect(formatAgo(nowMs / 1000 - 10, nowMs + 499)).to.equal("10 s ago");
    expect(formatAgo(nowMs / 1000 - 10, nowMs + 500)).to.equal("11 s ago");
  });

  it("says 0 s ago for a time ahead of the reader's clock", () => {
    expect(ago(-300)).to.equal("0 s ago");
  });

  it("writes the date and time from a day ago on", () => {
    for (const seconds of [86400, 86400 * 400]) {
      expect(ago(seconds), `${seconds} s`).to.equal(formatUnixTime(nowMs / 1000 - seconds));
      expect(ago(seconds)).to.not.include("ago");
    }
  });

  it("reads the clock when no now is given", () => {
    expect(formatAgo(Date.now() / 1000 - 30 * 60)).to.equal("30 min ago");
  });
});
