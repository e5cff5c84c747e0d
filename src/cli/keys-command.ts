import type { ApiKeyRecord } from "../../services/registry/store/registry-store.js";
import type { CommandGroup, CommandOutput, RunnableCommand } from "./command.js";
import { type FlagSpec, type FlagSpecs, parseFlags, requirePositionals, requireString } from "./flags.js";
import { registryDatabase, withRegistryDatabase } from "./registry-database.js";
import { DB_FLAG } from "./shared-flags.js";
import { formatTable, isoTime } from "./text-table.js";

const USER_FLAG: FlagSpec = { type: "string", value: "NAME", description: "the key's owner", env: "INFERMESH_KEYS_USER" };

/** KEYS_CREATE_FLAGS are `infermesh keys create`'s flags. */
export const KEYS_CREATE_FLAGS: FlagSpecs = {
  user: USER_FLAG,
  label: { type: "string", default: "", value: "TEXT", description: "a note stored with the new key", env: "INFERMESH_KEYS_LABEL" },
  db: DB_FLAG,
};

/** KEYS_LIST_FLAGS are `infermesh keys list`'s flags. */
export const KEYS_LIST_FLAGS: FlagSpecs = {
  user: { ...USER_FLAG, description: "list only this user's keys" },
  all: { type: "boolean", description: "list revoked keys too", env: "INFERMESH_KEYS_ALL" },
  db: DB_FLAG,
};

/** KEYS_REVOKE_FLAGS are `infermesh keys revoke`'s flags. */
export const KEYS_REVOKE_FLAGS: FlagSpecs = { db: DB_FLAG };

/** runKeysCreate creates a key and prints it alone on stdout, so that scripts can capture it. */
export async function runKeysCreate(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput): Promise<void> {
  const flags = parseFlags(KEYS_CREATE_FLAGS, argv, env);
  const user = requireString(flags, "user");
  await withRegistryDatabase(registryDatabase(flags), async (store) => {
    const created = await store.createApiKey(user, flags.string("label") ?? "");
    output.stdout(`${created.apiKey}\n`);
  });
}

/** runKeysList prints a table of key ids, owners and dates; never a key. */
export async function runKeysList(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput): Promise<void> {
  const flags = parseFlags(KEYS_LIST_FLAGS, argv, env);
  const user = flags.string("user");
  await withRegistryDatabase(registryDatabase(flags), async (store) => {
    const keys = await store.listApiKeys({ includeRevoked: flags.boolean("all"), ...(user ? { userName: user } : {}) });
    output.stdout(formatKeys(keys));
  });
}

/** runKeysRevoke revokes one key by its id. */
export async function runKeysRevoke(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput): Promise<void> {
  const flags = parseFlags(KEYS_REVOKE_FLAGS, argv, env, true);
  const [keyId] = requirePositionals(flags, ["KEY_ID"], "`infermesh keys list` shows them") as [string];
  await withRegistryDatabase(registryDatabase(flags), async (store) => {
    const record = await store.revokeApiKey(keyId);
    if (!record) throw new Error(`no API key with id '${keyId}'`);
    output.stdout(`revoked ${record.id} (${record.userName})\n`);
  });
}

function formatKeys(keys: readonly ApiKeyRecord[]): string {
  return formatTable(
    ["KEY_ID", "USER", "CREATED", "REVOKED", "LABEL"],
    keys.map((key) => [key.id, key.userName, isoTime(key.createdAtMs), isoTime(key.revokedAtMs), key.label]),
  );
}

const KEYS_CREATE_COMMAND: RunnableCommand = {
  name: "create",
  summary: "create an API key for a user and print it, alone, on stdout (shown this once)",
  synopsis: "keys create --user NAME [--label TEXT] [--db FILE|URL]",
  flags: KEYS_CREATE_FLAGS,
  run: runKeysCreate,
};

const KEYS_LIST_COMMAND: RunnableCommand = {
  name: "list",
  summary: "list key ids, owners and dates, never the keys",
  synopsis: "keys list [--user NAME] [--all] [--db FILE|URL]",
  flags: KEYS_LIST_FLAGS,
  run: runKeysList,
};

const KEYS_REVOKE_COMMAND: RunnableCommand = {
  name: "revoke",
  summary: "revoke a key by its id",
  synopsis: "keys revoke KEY_ID [--db FILE|URL]",
  flags: KEYS_REVOKE_FLAGS,
  run: runKeysRevoke,
};

/** KEYS_COMMAND is `infermesh keys`: API keys, straight in the registry's database. */
export const KEYS_COMMAND: CommandGroup = {
  name: "keys",
  summary: "create, list and revoke API keys in the registry's database",
  subcommands: [KEYS_CREATE_COMMAND, KEYS_LIST_COMMAND, KEYS_REVOKE_COMMAND],
};
