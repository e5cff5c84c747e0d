import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRegistryServer, type RegistryServer, type RegistryServerOptions } from "../../services/registry/registry-server.js";
import type { RegistryStore } from "../../services/registry/store/registry-store.js";
import { createSqliteStore } from "../../services/registry/store/sqlite-store.js";

/** MESH_TOKEN is the test mesh's gateway credential. */
export const MESH_TOKEN = "test-mesh-token-0123456789";

/** RegistryFixture is a real registry on a loopback port with a SQLite file in a temp dir. */
export interface RegistryFixture {
  readonly server: RegistryServer;
  readonly store: RegistryStore;
  readonly address: string;
  readonly dbPath: string;
  /** keyFor creates an API key for a user (created on first use). */
  keyFor(userName: string): Promise<string>;
  stop(): Promise<void>;
}

/** startRegistry starts a registry on 127.0.0.1:0. */
export async function startRegistry(
  options: Omit<RegistryServerOptions, "store" | "meshToken"> = {},
): Promise<RegistryFixture> {
  const dir = mkdtempSync(join(tmpdir(), "infermesh-registry-"));
  const dbPath = join(dir, "infermesh.db");
  const store = createSqliteStore({ path: dbPath });
  const server = createRegistryServer({ store, meshToken: MESH_TOKEN, ...options });
  const port = await server.listen("127.0.0.1:0");
  return {
    server,
    store,
    address: `127.0.0.1:${port}`,
    dbPath,
    keyFor: async (userName) => (await store.createApiKey(userName)).apiKey,
    async stop() {
      await server.close(1_000);
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
