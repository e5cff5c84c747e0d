import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { formatCount } from "../format.js";
import type { Bucket } from "./usage-range.js";

/** ChartLine is one line of a chart; color names the CSS custom property that holds its colour in each scheme. */
export interface ChartLine {
  readonly label: string;
  readonly values: readonly number[];
  readonly color: `--${string}`;
}

export interface UsageChartProps {
  readonly title: string;
  /** summary is the chart in words: the accessible name of the drawing. */
  readonly summary: string;
  /** times are the buckets' starts in epoch milliseconds, one per value of each line. */
  readonly times: readonly number[];
  readonly bucket: Bucket;
  readonly lines: readonly ChartLine[];
}

const CHART_HEIGHT_PX = 220;
/** LABEL_SPACE_PX is the room one time label needs on the x axis, so that labels never overlap. */
const LABEL_SPACE_PX = 72;
const AXIS_FONT = "12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

const dayLabel = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const hourLabel = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const bucketTitle = {
  hour: new Intl.DateTimeFormat(undefined, { weekday: "short", month: "short", day: "numeric", hour: "numeric", minute: "2-digit" }),
  day: new Intl.DateTimeFormat(undefined, { weekday: "short", month: "short", day: "numeric", year: "numeric" }),
};
const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

/**
 * UsageChart draws lines over time with uPlot, as wide as its container and redrawn when that changes or when the
 * system switches between light and dark. The legend under it shows each line's total, or its value in the bucket
 * under the pointer.
 */
export function UsageChart({ title, summary, times, bucket, lines }: UsageChartProps) {
  const plotRef = useRef<HTMLDivElement>(null);
  const [hovered, setHovered] = useState<number | null>(null);
  const scheme = useColorScheme();

  useEffect(() => {
    const element = plotRef.current;
    if (!element) return;
    const style = getComputedStyle(element);
    const color = (name: string) => style.getPropertyValue(name).trim();
    const data: uPlot.AlignedData = [times.map((ms) => ms / 1000), ...lines.map((line) => [...line.values])];
    const plot = new uPlot(chartOptions(element.clientWidth, times, bucket, lines, color, setHovered), data, element);
    const observer = new ResizeObserver(() => {
      if (element.clientWidth !== plot.width) plot.setSize({ width: element.clientWidth, height: CHART_HEIGHT_PX });
    });
    observer.observe(element);
    return () => {
      observer.disconnect();
      plot.destroy();
      setHovered(null);
    };
  }, [times, bucket, lines, scheme]);

  const at = hovered === null ? undefined : times[hovered];
  return (
    <figure class="usage-chart">
      <figcaption>{title}</figcaption>
      <div class="usage-chart-plot" role="img" aria-label={summary} ref={plotRef} />
      <div class="usage-legend">
        <span class="usage-legend-when">{at === undefined ? "Total" : bucketTitle[bucket].format(at)}</span>
        <ul class="usage-legend-items">
          {lines.map((line) => (
            <li key={line.label}>
              <span class="usage-swatch" style={{ background: `var(${line.color})` }} />
              {line.label} <strong>{formatCount(hovered === null ? sum(line.values) : (line.values[hovered] ?? 0))}</strong>
            </li>
          ))}
        </ul>
      </div>
    </figure>
  );
}

function chartOptions(
  width: number,
  times: readonly number[],
  bucket: Bucket,
  lines: readonly ChartLine[],
  color: (name: string) => string,
  onHover: (index: number | null) => void,
): uPlot.Options {
  const axis = { stroke: color("--muted"), font: AXIS_FONT, grid: { stroke: color("--line"), width: 1 }, ticks: { show: false } };
  return {
    width,
    height: CHART_HEIGHT_PX,
    legend: { show: false },
    cursor: { y: false, drag: { x: false, y: false, setScale: false }, points: { size: 7 } },
    scales: {
      x: { time: true },
      // Counts start at zero and have room above their peak; an idle range still has a scale to draw.
      y: { range: (_plot, _min, max) => [0, uPlot.rangeNum(0, Math.max(1, max), 0.1, true)[1]] },
    },
    axes: [
      {
        ...axis,
        size: 32,
        space: LABEL_SPACE_PX,
        splits: (plot) => timeSplits(plot, times, bucket),
        values: (_plot, splits) => splits.map((seconds) => timeLabel(seconds * 1000, bucket)),
      },
      {
        ...axis,
        size: 56,
        incrs: COUNT_INCREMENTS,
        values: (_plot, splits) => splits.map((value) => compact.format(value)),
      },
    ],
    series: [
      {},
      ...lines.map((line) => ({
        label: line.label,
        stroke: color(line.color),
        width: 2,
        points: { size: 5, fill: color(line.color) },
      })),
    ],
    hooks: { setLegend: [(plot: uPlot) => onHover(plot.cursor.idx ?? null)] },
  };
}

/** COUNT_INCREMENTS are whole steps for the value axis: a count of 3 has no ticks at 0.5. */
const COUNT_INCREMENTS = Array.from({ length: 13 }, (_, power) => [1, 2, 5].map((step) => step * 10 ** power)).flat();

/**
 * timeSplits puts labels on bucket starts only, as many as fit: every k-th day, or every k hours on the local
 * clock (so 00:00, 06:00, 12:00 rather than 01:00, 07:00).
 */
function timeSplits(plot: uPlot, times: readonly number[], bucket: Bucket): number[] {
  const widthPx = plot.bbox.width / uPlot.pxRatio;
  const fit = Math.max(1, Math.floor(widthPx / LABEL_SPACE_PX));
  const steps = bucket === "hour" ? [1, 2, 3, 4, 6, 12, 24] : [1, 2, 3, 7, 14, 28];
  const step = steps.find((candidate) => times.length / candidate <= fit) ?? Math.ceil(times.length / fit);
  const picked = times.filter((ms, index) => (bucket === "hour" ? new Date(ms).getHours() % step === 0 : index % step === 0));
  return (picked.length > 0 ? picked : times.slice(0, 1)).map((ms) => ms / 1000);
}

/** timeLabel writes an hour as a time of day, and midnight (or a day bucket) as the date. */
function timeLabel(ms: number, bucket: Bucket): string {
  const date = new Date(ms);
  const midnight = date.getHours() === 0 && date.getMinutes() === 0;
  return bucket === "day" || midnight ? dayLabel.format(date) : hourLabel.format(date);
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

const DARK = "(prefers-color-scheme: dark)";

/** useColorScheme follows the system's light or dark mode, which a canvas does not pick up from CSS by itself. */
function useColorScheme(): "light" | "dark" {
  const [dark, setDark] = useState(() => matchMedia(DARK).matches);
  useEffect(() => {
    const query = matchMedia(DARK);
    const changed = () => setDark(query.matches);
    query.addEventListener("change", changed);
    return () => query.removeEventListener("change", changed);
  }, []);
  return dark ? "dark" : "light";
}
