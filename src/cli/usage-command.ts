import type { UsageGroupBy } from "../../services/registry/store/registry-store.js";
import { ConfigError } from "../../services/shared/config-error.js";
import type { CommandOutput, RunnableCommand } from "./command.js";
import { type FlagSpec, type FlagSpecs, type ParsedFlags, parseFlags, requireString, UsageError } from "./flags.js";
import { callMeshApi } from "./mesh-api-client.js";
import { MESH_API_FLAGS, type MeshApiAccess, parseMeshApiAccess } from "./mesh-api-flags.js";
import { type RegistryDatabase, registryDatabase, withRegistryDatabase } from "./registry-database.js";
import { type ReadTextFile, readTextFile } from "./secret-flag.js";
import { DB_FLAG } from "./shared-flags.js";
import { formatUsageReport, parseGroupBy, parseUsageTime, type UsageReport, usageReport } from "./usage-report.js";

/** DEFAULT_USAGE_WINDOW_MS is how far back `infermesh usage` looks unless --from says: 30 days. */
export const DEFAULT_USAGE_WINDOW_MS = 30 * 24 * 3600 * 1000;
/** DEFAULT_USAGE_GROUP_BY is how `infermesh usage` groups unless --group-by says. */
export const DEFAULT_USAGE_GROUP_BY = "day,model";
/** USAGE_SCOPES are --scope's values: the caller's own calls, or the calls their providers answered. */
export const USAGE_SCOPES = ["mine", "providers"] as const;

/** usageFlag declares one of `infermesh usage`'s own flags, whose variable is INFERMESH_USAGE_<FLAG>. */
function usageFlag(name: string, spec: Omit<FlagSpec, "env">): FlagSpec {
  return { ...spec, env: `INFERMESH_USAGE_${name.replaceAll("-", "_").toUpperCase()}` };
}

/** USAGE_FLAGS are `infermesh usage`'s flags. */
export const USAGE_FLAGS: FlagSpecs = {
  ...MESH_API_FLAGS,
  db: {
    type: "string",
    value: "FILE|URL",
    description:
      "read the registry's database (SQLite file or postgres:// URL) itself instead of calling the mesh: everyone's calls (operators)",
    env: DB_FLAG.env,
  },
  from: usageFlag("from", {
    type: "string",
    value: "TIME",
    description: "start of the window, ISO-8601 (2025-05-01, 2025-05-01T12:00:00Z) or unix seconds (default 30 days before --to)",
  }),
  to: usageFlag("to", { type: "string", value: "TIME", description: "end of the window, not included, as --from (default now)" }),
  "group-by": usageFlag("group-by", {
    type: "string",
    default: DEFAULT_USAGE_GROUP_BY,
    value: "DIM[,DIM]...",
    description: "sum per day, hour, model, key, provider and/or user (user: with --db, or --scope providers); empty: one row of totals",
  }),
  scope: usageFlag("scope", {
    type: "string",
    default: "mine",
    value: "SCOPE",
    description: "mine: the calls your keys made; providers: the calls your providers answered, whoever made them",
  }),
  json: usageFlag("json", { type: "boolean", description: "print the API's JSON answer instead of a table" }),
};

/** UsageSource is where `infermesh usage` reads: the mesh's API as a user, or the registry's database as its operator. */
export type UsageSource =
  | { readonly kind: "mesh"; readonly access: MeshApiAccess }
  | { readonly kind: "db"; readonly database: RegistryDatabase };

/** UsageConfig is `infermesh usage`'s configuration, parsed once. */
export interface UsageConfig {
  readonly source: UsageSource;
  readonly scope: (typeof USAGE_SCOPES)[number];
  readonly groupBy: readonly UsageGroupBy[];
  readonly fromMs: number;
  readonly toMs: number;
  readonly json: boolean;
}

/**
 * parseUsageConfig reads the flags. --db (or INFERMESH_DB) reads the database; --mesh (or INFERMESH_MESH, or by default
 * the local mesh) calls the API; the command line wins over the environment, and both at one level are refused.
 */
export function parseUsageConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  now: number,
  readFile: ReadTextFile = readTextFile,
): UsageConfig {
  const flags = parseFlags(USAGE_FLAGS, argv, env);
  const toMs = flags.string("to") === undefined ? now : parseUsageTime(flags.setting("to"), requireString(flags, "to"));
  const fromText = flags.string("from");
  const fromMs = fromText === undefined ? toMs - DEFAULT_USAGE_WINDOW_MS : parseUsageTime(flags.setting("from"), fromText);
  if (fromMs >= toMs) {
    throw new ConfigError(
      flags.setting("from"),
      `${flags.setting("from")} (${new Date(fromMs).toISOString()}) must be before ${flags.setting("to")} (${new Date(toMs).toISOString()})`,
    );
  }
  const scope = requireString(flags, "scope");
  if (!(USAGE_SCOPES as readonly string[]).includes(scope)) {
    throw new ConfigError(flags.setting("scope"), `${flags.setting("scope")} expects mine or providers, got '${scope}'`);
  }
  return Object.freeze({
    source: usageSource(flags, readFile),
    scope: scope as UsageConfig["scope"],
    groupBy: parseGroupBy(flags.setting("group-by"), flags.string("group-by") ?? ""),
    fromMs,
    toMs,
    json: flags.boolean("json"),
  });
}

function usageSource(flags: ParsedFlags, readFile: ReadTextFile): UsageSource {
  const db = flags.given("db");
  const mesh = flags.given("mesh");
  if (db !== undefined && db === mesh) {
    throw new UsageError(flags.setting("db"), `${flags.setting("db")} and ${flags.setting("mesh")} are both given; give one of them`);
  }
  if (db === undefined || mesh === "argv") return { kind: "mesh", access: parseMeshApiAccess(flags, readFile) };
  if (flags.given("scope") !== undefined) {
    throw new UsageError(
      flags.setting("scope"),
      `${flags.setting("scope")} is for the mesh's API; ${flags.setting("db")} sums everyone's calls (--group-by user splits them)`,
    );
  }
  return { kind: "db", database: registryDatabase(flags) };
}

/** runUsage prints usage for a window, grouped as asked, as a table or as the API's JSON. */
export async function runUsage(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput): Promise<void> {
  const config = parseUsageConfig(argv, env, Date.now());
  const { source } = config;
  const report = source.kind === "mesh" ? await askMesh(config, source.access) : await readDatabase(config, source.database);
  output.stdout(config.json ? `${JSON.stringify(report, null, 2)}\n` : formatUsageReport(report));
}

async function askMesh(config: UsageConfig, access: MeshApiAccess): Promise<UsageReport> {
  const query = new URLSearchParams({
    from: new Date(config.fromMs).toISOString(),
    to: new Date(config.toMs).toISOString(),
    group_by: config.groupBy.join(","),
    scope: config.scope,
  });
  return callMeshApi<UsageReport>(access, "GET", `/api/usage?${query}`);
}

async function readDatabase(config: UsageConfig, database: RegistryDatabase): Promise<UsageReport> {
  const query = { scope: "all", userId: "", fromMs: config.fromMs, toMs: config.toMs, groupBy: config.groupBy } as const;
  const rows = await withRegistryDatabase(database, (store) => store.queryUsage(query));
  return usageReport(rows, query);
}

/** USAGE_COMMAND is `infermesh usage`. */
export const USAGE_COMMAND: RunnableCommand = {
  name: "usage",
  summary: "requests, tokens and times of your calls (or your providers'), per day, model, key...; --db: everyone's",
  synopsis:
    "usage [--mesh URL] [--api-key-file FILE] [--from TIME] [--to TIME] [--group-by DIM,...] [--scope mine|providers] [--json] | usage --db FILE|URL [...]",
  flags: USAGE_FLAGS,
  run: runUsage,
};
