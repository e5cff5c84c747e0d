import { api } from "../api.js";
import type { ApiKey, List, Provider, UsageAnswer, UsageRow } from "../types.js";
import type { UsageRange } from "./usage-range.js";
import { queryGroupOf, type UsageSeries, usageSeries } from "./usage-series.js";

/** SESSION_KEY_PREFIX marks the key group of calls made signed in (the playground), one per session. */
const SESSION_KEY_PREFIX = "session:";
export const SESSION_KEY_LABEL = "Dashboard (signed in)";

/** UsageTotals are a range's sums over every call. */
export type UsageTotals = Pick<UsageRow, "requests" | "errors" | "prompt_tokens" | "completion_tokens" | "audio_seconds" | "images">;

/** KeyUsage is the calls made with one key: label is the key's, or its id when it has none (named is false then). */
export interface KeyUsage extends UsageTotals {
  readonly id: string;
  readonly label: string;
  readonly named: boolean;
}

/** UsageReport is everything the usage page shows for a range, with keys and providers named. */
export interface UsageReport {
  readonly range: UsageRange;
  readonly totals: UsageTotals;
  readonly series: UsageSeries;
  /** byModel is the member's calls per model, busiest first. */
  readonly byModel: readonly UsageRow[];
  /** byKey is the member's calls per key, with every signed-in session summed as one, busiest first. */
  readonly byKey: readonly KeyUsage[];
  /** onProviders is who called which model on the member's providers, by provider name, then busiest first. */
  readonly onProviders: readonly (UsageRow & { readonly providerName: string })[];
}

/** loadUsageReport asks for a range's usage, the member's keys and their providers, all at once. */
export async function loadUsageReport(range: UsageRange, nowMs = Date.now()): Promise<UsageReport> {
  const usage = (groupBy: string, scope: "mine" | "providers" = "mine") => {
    const query = new URLSearchParams({
      from: new Date(range.fromMs).toISOString(),
      to: new Date(range.toMs).toISOString(),
      group_by: groupBy,
      scope,
    });
    return api<UsageAnswer>("GET", `/api/usage?${query}`).then((answer) => answer.data);
  };
  const [timed, byModel, byKey, onProviders, keys, providers] = await Promise.all([
    usage(queryGroupOf(range)),
    usage("model"),
    usage("key"),
    usage("provider,user,model", "providers"),
    api<List<ApiKey>>("GET", "/api/keys"),
    api<List<Provider>>("GET", "/api/providers"),
  ]);
  const keyLabels = new Map(keys.data.map((key) => [key.id, key.label]));
  const providerNames = new Map(providers.data.map((provider) => [provider.id, provider.name]));
  return {
    range,
    totals: sumRows(timed),
    series: usageSeries(range, timed, nowMs),
    byModel: [...byModel].sort(busiestFirst),
    byKey: namedKeys(byKey, keyLabels),
    onProviders: onProviders
      .map((row) => ({ ...row, providerName: providerNames.get(row.provider ?? "") ?? row.provider ?? "" }))
      .sort((a, b) => a.providerName.localeCompare(b.providerName) || busiestFirst(a, b)),
  };
}

function namedKeys(rows: readonly UsageRow[], labels: ReadonlyMap<string, string>): KeyUsage[] {
  const isSession = (row: UsageRow) => row.key?.startsWith(SESSION_KEY_PREFIX) === true;
  const sessions = rows.filter(isSession);
  const keys = rows
    .filter((row) => !isSession(row))
    .map((row): KeyUsage => {
      const id = row.key ?? "";
      const label = labels.get(id) ?? "";
      return { ...sumRows([row]), id, label: label || id, named: label !== "" };
    });
  const signedIn: KeyUsage[] =
    sessions.length === 0 ? [] : [{ ...sumRows(sessions), id: SESSION_KEY_PREFIX, label: SESSION_KEY_LABEL, named: true }];
  return [...keys, ...signedIn].sort(busiestFirst);
}

function sumRows(rows: readonly UsageRow[]): UsageTotals {
  const totals = { requests: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0, audio_seconds: 0, images: 0 };
  for (const row of rows) {
    totals.requests += row.requests;
    totals.errors += row.errors;
    totals.prompt_tokens += row.prompt_tokens;
    totals.completion_tokens += row.completion_tokens;
    totals.audio_seconds += row.audio_seconds;
    totals.images += row.images;
  }
  return totals;
}

function busiestFirst(a: UsageTotals, b: UsageTotals): number {
  return b.requests - a.requests;
}
