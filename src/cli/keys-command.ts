import { createSqliteStore } from "../../services/registry/store/sqlite-store.js";
import type { ApiKeyRecord } from "../../services/registry/store/registry-store.js";
import { parseFlags, requireString, usageText, UsageError, type FlagSpecs } from "./flags.js";
import { DEFAULT_DB_PATH } from "./registry-command.js";

/** KEYS_FLAGS are the flags of `infermesh keys create|list|revoke`. */
export const KEYS_FLAGS: FlagSpecs = {
  db: { type: "string", default: DEFAULT_DB_PATH, description: "SQLite file with users and API keys" },
  user: { type: "string", description: "the key's owner (create), or a filter (list)" },
  label: { type: "string", default: "", description: "a note stored with a new key" },
  all: { type: "boolean", description: "list revoked keys too" },
  help: { type: "boolean", description: "print this help" },
};

const SYNOPSIS = "infermesh keys create --user NAME | keys list [--user NAME] [--all] | keys revoke KEY_ID";

/**
 * runKeys manages API keys straight in the registry's SQLite file; it works while a registry runs on the same file,
 * which sees the change on its next call. `create` prints the key alone on stdout, so scripts can capture it.
 */
export async function runKeys(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  const [action, ...rest] = argv;
  const flags = parseFlags(KEYS_FLAGS, rest, env, true);
  if (flags.boolean("help") || action === undefined || action === "help") {
    process.stdout.write(usageText(SYNOPSIS, KEYS_FLAGS));
    return;
  }
  const store = createSqliteStore({ path: requireString(flags, "db") });
  try {
    switch (action) {
      case "create": {
        const created = await store.createApiKey(requireString(flags, "user"), flags.string("label") ?? "");
        process.stdout.write(`${created.apiKey}\n`);
        return;
      }
      case "list": {
        const user = flags.string("user");
        const keys = await store.listApiKeys({ includeRevoked: flags.boolean("all"), ...(user ? { userName: user } : {}) });
        process.stdout.write(formatKeys(keys));
        return;
      }
      case "revoke": {
        const [keyId] = flags.positionals;
        if (!keyId) throw new UsageError("keys revoke expects a KEY_ID (see `infermesh keys list`)");
        const record = await store.revokeApiKey(keyId);
        if (!record) throw new Error(`no API key with id '${keyId}'`);
        process.stdout.write(`revoked ${record.id} (${record.userName})\n`);
        return;
      }
      default:
        throw new UsageError(`unknown keys action '${action}'; expected create, list or revoke`);
    }
  } finally {
    await store.close();
  }
}

function formatKeys(keys: readonly ApiKeyRecord[]): string {
  const rows = [["KEY_ID", "USER", "CREATED", "REVOKED", "LABEL"]];
  for (const key of keys) {
    rows.push([
      key.id,
      key.userName,
      new Date(key.createdAtMs).toISOString(),
      key.revokedAtMs === undefined ? "-" : new Date(key.revokedAtMs).toISOString(),
      key.label,
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}
