/**
 * Helpers for tests whose answers depend on the reader's time zone. They are written to hold in any zone; the cases
 * registered with describeInZone also pin exact instants, and run only where TZ names their zone (time-zones.test.ts
 * starts the suites under each).
 */

/** ZONES are the zones the time-zone-sensitive suites are also run in: one with daylight saving, a half-hour one, UTC. */
export const ZONES = ["America/New_York", "Asia/Kolkata", "UTC"] as const;

export type Zone = (typeof ZONES)[number];

/** describeInZone registers a suite only in a process started with TZ set to the zone. */
export function describeInZone(zone: Zone, fn: () => void): void {
  if (process.env["TZ"] === zone) describe(`in ${zone}`, fn);
}

/** at is an ISO-8601 instant as epoch milliseconds; it fails loudly on a typo rather than giving NaN. */
export function at(iso: string): number {
  const ms = Date.parse(iso);
  if (!Number.isFinite(ms)) throw new Error(`not an instant: ${iso}`);
  return ms;
}

/** iso writes epoch milliseconds as ISO-8601 UTC, so that a failed comparison shows readable instants. */
export function iso(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString();
}
