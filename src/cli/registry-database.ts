import { existsSync } from "node:fs";
import { isPostgresUrl, openRegistryStore } from "../../services/registry/store/open-registry-store.js";
import type { RegistryStore } from "../../services/registry/store/registry-store.js";
import { ConfigError } from "../../services/shared/config-error.js";
import { type ParsedFlags, requireString } from "./flags.js";

/**
 * RegistryDatabase is the registry's database as a command was given it: a SQLite file's path or a PostgreSQL URL,
 * and the setting that named it.
 */
export interface RegistryDatabase {
  readonly path: string;
  readonly setting: string;
}

/** registryDatabase reads the flag that names the database (--db, or its variable). */
export function registryDatabase(flags: ParsedFlags, name = "db"): RegistryDatabase {
  return { path: requireString(flags, name), setting: flags.setting(name) };
}

/**
 * withRegistryDatabase runs action on the registry's database, then closes it. That works while a registry runs on
 * the same database, which sees the change on its next call. A path with no file stops the command with a ConfigError
 * saying how a database is made: opening it would create an empty one, where `keys create` would print a key no
 * registry knows and `users list` would find nobody.
 */
export async function withRegistryDatabase<T>(database: RegistryDatabase, action: (store: RegistryStore) => Promise<T>): Promise<T> {
  const { path, setting } = database;
  if (!isPostgresUrl(path) && !existsSync(path)) {
    throw new ConfigError(
      setting,
      `${setting} names '${path}', which does not exist; \`infermesh registry --db ${path}\` makes the database when it starts (\`infermesh dev\` makes one in its --data folder)`,
    );
  }
  const store = await openRegistryStore(path);
  try {
    return await action(store);
  } finally {
    await store.close();
  }
}
