/** Percentiles summarises latency samples in milliseconds; null where there were none. */
export interface Percentiles {
  readonly count: number;
  readonly p50: number | null;
  readonly p90: number | null;
  readonly p99: number | null;
  readonly max: number | null;
}

/** percentiles computes nearest-rank percentiles from every recorded sample, rounded to the microsecond. */
export function percentiles(samplesMs: readonly number[]): Percentiles {
  if (samplesMs.length === 0) return { count: 0, p50: null, p90: null, p99: null, max: null };
  // A Float64Array sorts numerically; an Array would sort as strings.
  const sorted = Float64Array.from(samplesMs).sort();
  const rank = (p: number) => {
    const value = sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
    return Math.round(value * 1000) / 1000;
  };
  return { count: sorted.length, p50: rank(50), p90: rank(90), p99: rank(99), max: rank(100) };
}
