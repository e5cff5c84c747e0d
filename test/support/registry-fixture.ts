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
  /** outage stops the registry's server (the store stays); restart brings a new one up on the same address. */
  outage(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** startRegistry starts a registry on 127.0.0.1:0. */
export async function startRegistry(
  options: Omit<RegistryServerOptions, "store" | "meshToken"> = {},
): Promise<RegistryFixture> {
  const dir = mkdtempSync(join(tmpdir(), "infermesh-registry-"));
  const dbPath = join(dir, "infermesh.db");
  const store = createSqliteStore({ path: dbPath });
  let server = createRegistryServer({ store, meshToken: MESH_TOKEN, ...options });
  const port = await server.listen("127.0.0.1:0");
  const address = `127.0.0.1:${port}`;
  let running = true;
  return {
    get server() {
      return server;
    },
    store,
    address,
    dbPath,
    keyFor: async (userName) => (await store.createApiKey(userName)).apiKey,
    async outage() {
      running = false;
      await server.close(0);
    },
    async restart() {
      if (running) await server.close(0);
      server = createRegistryServer({ store, meshToken: MESH_TOKEN, ...options });
      await server.listen(address);
      running = true;
    },
    async stop() {
      if (running) await server.close(1_000);
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
