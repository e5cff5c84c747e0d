import { isPostgresUrl, openRegistryStore, shownDatabase } from "../../services/registry/store/open-registry-store.js";
import { POSTGRES_SCHEMA_VERSION } from "../../services/registry/store/postgres-schema.js";
import { SQLITE_SCHEMA_VERSION } from "../../services/registry/store/sqlite-schema.js";
import type { CommandOutput, RunnableCommand } from "./command.js";
import { type FlagSpecs, parseFlags, requireString } from "./flags.js";
import { DB_FLAG } from "./shared-flags.js";

/** MIGRATE_FLAGS are `infermesh migrate`'s flags. */
export const MIGRATE_FLAGS: FlagSpecs = { db: DB_FLAG };

/**
 * runMigrate brings a database to the schema this version reads, making it when it does not exist, and says which
 * version that is. Registries migrate on start as well; this is for doing it before replicas of a new version start.
 * Opening the store is the migration: versioned, idempotent, and serialised between processes that run it at once.
 */
export async function runMigrate(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput): Promise<void> {
  const flags = parseFlags(MIGRATE_FLAGS, argv, env);
  const db = requireString(flags, "db");
  const store = await openRegistryStore(db);
  await store.close();
  const version = isPostgresUrl(db) ? POSTGRES_SCHEMA_VERSION : SQLITE_SCHEMA_VERSION;
  output.stdout(`${shownDatabase(db)} is at schema version ${version}\n`);
}

/** MIGRATE_COMMAND is `infermesh migrate`. */
export const MIGRATE_COMMAND: RunnableCommand = {
  name: "migrate",
  summary: "bring the registry's database to this version's schema (registries also do it when they start)",
  synopsis: "migrate [--db FILE|URL]",
  flags: MIGRATE_FLAGS,
  run: runMigrate,
};
