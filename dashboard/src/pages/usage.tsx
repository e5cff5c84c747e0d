import { useEffect, useMemo, useState } from "preact/hooks";
import { messageOf } from "../api.js";
import { ErrorNotice } from "../components/notice.js";
import { Page } from "../components/page.js";
import { type ChartLine, UsageChart } from "../components/usage-chart.js";
import { DEFAULT_PRESET, describeRange, presetRange, type UsageRange } from "../components/usage-range.js";
import { UsageRangePicker } from "../components/usage-range-picker.js";
import { loadUsageReport, type UsageReport } from "../components/usage-report.js";
import { UsageByKey, UsageByModel, UsageOnProviders } from "../components/usage-tables.js";
import { UsageTotals } from "../components/usage-totals.js";
import { formatCount } from "../format.js";

const timeOfDay = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });

/**
 * UsagePage is what the member's calls came to over a range (totals, charts, per model and per key), and who called
 * the models on the member's own providers. It asks again whenever the range changes, and on Refresh.
 */
export function UsagePage() {
  const [range, setRange] = useState<UsageRange>(() => presetRange(DEFAULT_PRESET));
  const [shown, setShown] = useState<{ readonly report: UsageReport; readonly updatedAt: number }>();
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string>();

  useEffect(() => {
    // Only the latest range's answer is shown: an earlier, slower one must not overwrite it.
    let current = true;
    setLoading(true);
    setError(undefined);
    loadUsageReport(range).then(
      (answer) => {
        if (!current) return;
        setShown({ report: answer, updatedAt: Date.now() });
        setLoading(false);
      },
      (failure: unknown) => {
        if (!current) return;
        setError(messageOf(failure));
        setLoading(false);
      },
    );
    return () => {
      current = false;
    };
  }, [range]);

  // A preset moves with the clock; dates stay, and a new object asks for them again.
  const refresh = () => setRange(range.preset === undefined ? { ...range } : presetRange(range.preset));

  return (
    <Page title="Usage" intro="Your calls through this mesh, and the calls your providers answered. Times are in your time zone.">
      <div class="usage-toolbar">
        <UsageRangePicker range={range} onChange={setRange} />
        <button type="button" class="usage-refresh" disabled={loading} onClick={refresh}>
          Refresh
        </button>
      </div>
      <p role="status" class="hint usage-status">
        {loading
          ? "Loading usage…"
          : shown
            ? `Usage ${describeRange(shown.report.range)}, updated at ${timeOfDay.format(shown.updatedAt)}.`
            : ""}
      </p>
      <ErrorNotice error={error} />
      {shown === undefined ? null : <UsageResults report={shown.report} busy={loading} />}
    </Page>
  );
}

function UsageResults({ report, busy }: { report: UsageReport; busy: boolean }) {
  const { series, totals } = report;
  const during = describeRange(report.range);
  const requestLines = useMemo<readonly ChartLine[]>(
    () => [
      { label: "Requests", values: series.requests, color: "--usage-requests" },
      { label: "Errors", values: series.errors, color: "--usage-errors" },
    ],
    [series],
  );
  const tokenLines = useMemo<readonly ChartLine[]>(
    () => [
      { label: "Tokens in", values: series.promptTokens, color: "--usage-tokens-in" },
      { label: "Tokens out", values: series.completionTokens, color: "--usage-tokens-out" },
    ],
    [series],
  );
  return (
    <div class="usage-results" aria-busy={busy}>
      <UsageTotals totals={totals} />
      {totals.requests === 0 ? (
        <p class="usage-empty">No calls in this range.</p>
      ) : (
        <>
          <div class="usage-charts">
            <UsageChart
              title="Requests over time"
              summary={`Requests over time: ${counted(totals.requests, "request")}, ${counted(totals.errors, "error")}, ${during}`}
              times={series.times}
              bucket={series.bucket}
              lines={requestLines}
            />
            <UsageChart
              title="Tokens over time"
              summary={`Tokens over time: ${counted(totals.prompt_tokens, "token")} in, ${counted(totals.completion_tokens, "token")} out, ${during}`}
              times={series.times}
              bucket={series.bucket}
              lines={tokenLines}
            />
          </div>
          <UsageByModel rows={report.byModel} />
          <UsageByKey rows={report.byKey} />
        </>
      )}
      <section aria-labelledby="usage-providers-title">
        <h2 id="usage-providers-title">Who used my providers</h2>
        <p class="hint">Calls your providers answered in this range, by anyone on the mesh: you included.</p>
        {report.onProviders.length === 0 ? (
          <p>None of your providers answered a call in this range.</p>
        ) : (
          <UsageOnProviders rows={report.onProviders} />
        )}
      </section>
    </div>
  );
}

/** counted writes "1 request", "12 requests". */
function counted(count: number, noun: string): string {
  return `${formatCount(count)} ${noun}${count === 1 ? "" : "s"}`;
}
