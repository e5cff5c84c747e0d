import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { type AccountService, UsageGroup, type UsageRow, UsageScope } from "../../gen/infermesh/v1/accounts_pb.js";
import type { Clock } from "../shared/clock.js";
import { CONTROL_PLANE_TIMEOUT_MS } from "./account-routes.js";
import { USAGE_GROUPS, USAGE_SCHEMA } from "./api-schemas.js";
import { echoed, invalidRequest } from "./gateway-errors.js";
import { controlPlaneRoute } from "./registry-errors.js";

/** DEFAULT_USAGE_RANGE_MS is the range /api/usage sums when the caller names no start: 30 days. */
export const DEFAULT_USAGE_RANGE_MS = 30 * 24 * 60 * 60 * 1000;

type UsageGroupName = (typeof USAGE_GROUPS)[number];

const GROUPS: Readonly<Record<UsageGroupName, UsageGroup>> = {
  day: UsageGroup.DAY,
  hour: UsageGroup.HOUR,
  model: UsageGroup.MODEL,
  key: UsageGroup.KEY,
  provider: UsageGroup.PROVIDER,
  user: UsageGroup.USER,
};

/** UsageQueryString is /api/usage's query, as its schema admits it. */
interface UsageQueryString {
  readonly from?: string;
  readonly to?: string;
  readonly group_by?: string;
  readonly scope?: "mine" | "providers";
}

/** UsageRoutesOptions are what /api/usage works with. */
export interface UsageRoutesOptions {
  readonly accounts: Client<typeof AccountService>;
  readonly meshHeaders: Readonly<Record<string, string>>;
  readonly clock: Clock;
}

/**
 * usageRoutes serve GET /api/usage: a member's own calls (scope=mine), or, as a provider owner, the calls their
 * providers answered, by anyone (scope=providers: "who used my GPU"), summed over [from, to) and grouped.
 */
export async function usageRoutes(app: FastifyInstance, options: UsageRoutesOptions): Promise<void> {
  const call = { headers: options.meshHeaders, timeoutMs: CONTROL_PLANE_TIMEOUT_MS };
  app.get(
    "/api/usage",
    { schema: USAGE_SCHEMA },
    controlPlaneRoute(async (request: FastifyRequest<{ Querystring: UsageQueryString }>) => {
      const query = request.query;
      const toMs = query.to === undefined ? options.clock.now() : parseTime(query.to, "to");
      const fromMs = query.from === undefined ? toMs - DEFAULT_USAGE_RANGE_MS : parseTime(query.from, "from");
      if (fromMs > toMs) throw invalidRequest("'from' must not be later than 'to'.", { param: "from" });
      const groupBy = parseGroups(query.group_by);
      const scope = query.scope ?? "mine";
      const { rows } = await options.accounts.queryUsage(
        {
          userId: request.principal.userId,
          scope: scope === "providers" ? UsageScope.PROVIDER_OWNER : UsageScope.CALLER,
          startTime: timestampFromMs(fromMs),
          endTime: timestampFromMs(toMs),
          groupBy: groupBy.map((name) => GROUPS[name]),
        },
        call,
      );
      return {
        object: "list",
        scope,
        group_by: groupBy,
        from: new Date(fromMs).toISOString(),
        to: new Date(toMs).toISOString(),
        data: rows.map((row) => usageEntry(row, groupBy)),
      };
    }),
  );
}

/** parseTime reads an ISO-8601 time or Unix seconds. */
function parseTime(value: string, param: string): number {
  const ms = /^\d{1,12}(\.\d+)?$/.test(value) ? Number(value) * 1000 : Date.parse(value);
  if (!Number.isFinite(ms)) {
    throw invalidRequest(`'${param}' must be an ISO-8601 time or Unix seconds, got '${echoed(value)}'.`, { param });
  }
  return ms;
}

function parseGroups(value: string | undefined): UsageGroupName[] {
  if (value === undefined || value === "") return [];
  const groups: UsageGroupName[] = [];
  for (const name of value.split(",").map((part) => part.trim())) {
    if (!(USAGE_GROUPS as readonly string[]).includes(name)) {
      throw invalidRequest(`'group_by' takes ${USAGE_GROUPS.join(", ")}, comma-separated; got '${echoed(name)}'.`, { param: "group_by" });
    }
    if (!groups.includes(name as UsageGroupName)) groups.push(name as UsageGroupName);
  }
  return groups;
}

function usageEntry(row: UsageRow, groupBy: readonly UsageGroupName[]) {
  const entry: Record<string, string | number> = {};
  groupBy.forEach((name, index) => {
    entry[name] = row.group[index] ?? "";
  });
  const prompt = Number(row.promptTokens);
  const completion = Number(row.completionTokens);
  return {
    ...entry,
    requests: Number(row.requests),
    errors: Number(row.errors),
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    audio_seconds: row.audioSeconds,
    images: Number(row.images),
    ttfb_ms_avg: row.ttfbMsAvg,
    duration_ms_avg: row.durationMsAvg,
  };
}
