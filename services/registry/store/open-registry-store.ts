import { createPostgresStore, redactedUrl } from "./postgres-store.js";
import type { RegistryStore } from "./registry-store.js";
import { createSqliteStore } from "./sqlite-store.js";

/** POSTGRES_URL is what a database setting starts with when it names a PostgreSQL database rather than a SQLite file. */
const POSTGRES_URL = /^postgres(ql)?:\/\//i;

/** isPostgresUrl tells whether a database setting (--db) is a postgres:// or postgresql:// URL. */
export function isPostgresUrl(db: string): boolean {
  return POSTGRES_URL.test(db);
}

/**
 * openRegistryStore opens the store a database setting names: the PostgreSQL database of a postgres:// URL, migrated
 * on open, or else the SQLite file at that path.
 */
export async function openRegistryStore(db: string): Promise<RegistryStore> {
  return isPostgresUrl(db) ? createPostgresStore({ url: db }) : createSqliteStore({ path: db });
}

/** shownDatabase is a database setting fit for logs and messages: a URL's password replaced, a path as it is. */
export function shownDatabase(db: string): string {
  return isPostgresUrl(db) ? redactedUrl(db) : db;
}
