import { parseSharingPolicy, SHARING_FORMS } from "../../services/shared/sharing-policy.js";
import type { CommandGroup, CommandOutput, RunnableCommand } from "./command.js";
import { type FlagSpecs, type ParsedFlags, parseFlags, requirePositionals, UsageError } from "./flags.js";
import { callMeshApi } from "./mesh-api-client.js";
import { MESH_API_FLAGS, parseMeshApiAccess } from "./mesh-api-flags.js";
import { readTextFile } from "./secret-flag.js";
import { formatTable } from "./text-table.js";

/** ApiSharing is who besides its owner may use a provider, as the mesh's API writes it. */
export interface ApiSharing {
  readonly visibility: "private" | "users" | "public";
  readonly users: readonly string[];
}

/** ApiProvider is one of the caller's providers, as GET /api/providers lists it. */
export interface ApiProvider {
  readonly id: string;
  readonly name: string;
  readonly status: "online" | "offline" | "paused" | "draining";
  readonly online: boolean;
  readonly paused: boolean;
  /** last_seen is the last heartbeat's time in unix seconds; null when the mesh never heard from it. */
  readonly last_seen: number | null;
  readonly sharing: ApiSharing;
  readonly models: readonly { readonly id: string; readonly service_type: string }[];
  readonly load: { readonly in_flight: number; readonly max_concurrency: number; readonly queued: number };
  readonly version: string;
}

/** PROVIDERS_FLAGS are the flags of every `infermesh providers` command but list. */
export const PROVIDERS_FLAGS: FlagSpecs = MESH_API_FLAGS;

/** PROVIDERS_LIST_FLAGS are `infermesh providers list`'s flags. */
export const PROVIDERS_LIST_FLAGS: FlagSpecs = {
  ...MESH_API_FLAGS,
  json: { type: "boolean", description: "print the API's JSON answer instead of a table", env: "INFERMESH_PROVIDERS_JSON" },
};

/** PROVIDER_LIST_HINT says where provider ids are found. */
const PROVIDER_LIST_HINT = "`infermesh providers list` shows yours";

/** parseSharing reads a sharing policy as the command line writes it (parseSharingPolicy), as the mesh's API takes it. */
export function parseSharing(text: string): ApiSharing {
  const policy = parseSharingPolicy(text);
  if ("refusal" in policy) throw new UsageError(text, policy.refusal);
  return { visibility: policy.visibility, users: policy.allowedUsers };
}

/** formatSharing writes a sharing policy back as parseSharing reads it. */
export function formatSharing(sharing: ApiSharing | undefined): string {
  if (sharing === undefined) return "-";
  return sharing.visibility === "users" ? `users:${sharing.users.join(",")}` : sharing.visibility;
}

/** formatProviders is the table `providers list` prints: one provider a line, its models and load at a glance. */
export function formatProviders(providers: readonly ApiProvider[]): string {
  return formatTable(
    ["ID", "NAME", "STATUS", "SHARING", "LOAD", "LAST_SEEN", "VERSION", "MODELS"],
    providers.map((provider) => [
      provider.id,
      provider.name,
      provider.status,
      formatSharing(provider.sharing),
      provider.load === undefined ? "-" : `${provider.load.in_flight}/${provider.load.max_concurrency}+${provider.load.queued}`,
      provider.last_seen === null || provider.last_seen === undefined ? "-" : new Date(provider.last_seen * 1000).toISOString(),
      provider.version || "-",
      (provider.models ?? []).map((model) => model.id).join(",") || "-",
    ]),
  );
}

/** runProvidersList prints the caller's providers as a table, or the API's JSON. */
export async function runProvidersList(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput): Promise<void> {
  const flags = parseFlags(PROVIDERS_LIST_FLAGS, argv, env);
  const list = await callWithFlags<{ data: ApiProvider[] }>(flags, "GET", "/api/providers");
  output.stdout(flags.boolean("json") ? `${JSON.stringify(list, null, 2)}\n` : formatProviders(list.data));
}

/** runProvidersPause stops routing new calls to a provider of the caller's; calls in flight finish. */
export async function runProvidersPause(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput): Promise<void> {
  await changeProvider(argv, env, output, "pause");
}

/** runProvidersResume routes calls to a paused provider again. */
export async function runProvidersResume(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput): Promise<void> {
  await changeProvider(argv, env, output, "resume");
}

async function changeProvider(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput, action: "pause" | "resume") {
  const flags = parseFlags(PROVIDERS_FLAGS, argv, env, true);
  const [id] = requirePositionals(flags, ["ID"], PROVIDER_LIST_HINT) as [string];
  const provider = await callWithFlags<ApiProvider>(flags, "POST", `/api/providers/${encodeURIComponent(id)}/${action}`);
  output.stdout(`${action === "pause" ? "paused" : "resumed"} ${describe(provider)}: ${provider.status}\n`);
}

/** runProvidersShare sets who besides the caller may use one of the caller's providers. */
export async function runProvidersShare(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput): Promise<void> {
  const flags = parseFlags(PROVIDERS_FLAGS, argv, env, true);
  const [id, policy] = requirePositionals(flags, ["ID", "POLICY"], `${PROVIDER_LIST_HINT}; POLICY is ${SHARING_FORMS}`) as [string, string];
  const sharing = parseSharing(policy);
  const provider = await callWithFlags<ApiProvider>(flags, "PUT", `/api/providers/${encodeURIComponent(id)}/sharing`, sharing);
  output.stdout(`${describe(provider)} is shared: ${formatSharing(provider.sharing)}\n`);
}

function describe(provider: ApiProvider): string {
  return provider.name && provider.name !== provider.id ? `${provider.id} (${provider.name})` : provider.id;
}

/** callWithFlags makes one call to the mesh the flags name, with the caller's key. */
function callWithFlags<T>(flags: ParsedFlags, method: "GET" | "POST" | "PUT", path: string, body?: unknown): Promise<T> {
  return callMeshApi<T>(parseMeshApiAccess(flags, readTextFile), method, path, body);
}

const PROVIDERS_SUBCOMMANDS: readonly RunnableCommand[] = [
  {
    name: "list",
    summary: "list your providers: status, sharing, load (in flight/max + queued), models",
    synopsis: "providers list [--mesh URL] [--api-key-file FILE] [--json]",
    flags: PROVIDERS_LIST_FLAGS,
    run: runProvidersList,
  },
  {
    name: "pause",
    summary: "stop routing new calls to one of your providers (calls in flight finish); it stays paused across restarts",
    synopsis: "providers pause ID [--mesh URL] [--api-key-file FILE]",
    flags: PROVIDERS_FLAGS,
    run: runProvidersPause,
  },
  {
    name: "resume",
    summary: "route calls to a paused provider again",
    synopsis: "providers resume ID [--mesh URL] [--api-key-file FILE]",
    flags: PROVIDERS_FLAGS,
    run: runProvidersResume,
  },
  {
    name: "share",
    summary: "set who may use one of your providers: private (you), public (everyone), users:alice,bob (you and them)",
    synopsis: "providers share ID private|public|users:NAME[,NAME...] [--mesh URL] [--api-key-file FILE]",
    flags: PROVIDERS_FLAGS,
    run: runProvidersShare,
  },
];

/** PROVIDERS_COMMAND is `infermesh providers`: your providers, through the mesh's HTTP API. */
export const PROVIDERS_COMMAND: CommandGroup = {
  name: "providers",
  summary: "list your providers, pause and resume them, and choose who may use them (through the mesh's API)",
  subcommands: PROVIDERS_SUBCOMMANDS,
};
