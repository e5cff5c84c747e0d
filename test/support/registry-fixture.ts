import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRegistry, type Registry, type RegistryOptions } from "../../services/registry/registry.js";
import type { RegistryStore } from "../../services/registry/store/registry-store.js";
import { createSqliteStore } from "../../services/registry/store/sqlite-store.js";

/** MESH_TOKEN is the test mesh's gateway credential. */
export const MESH_TOKEN = "test-mesh-token-0123456789";

/** RegistryFixture is a real registry on a loopback port with a SQLite file in a temp dir. */
export interface RegistryFixture {
  readonly server: Registry;
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

/**
 * startRegistry starts a registry on 127.0.0.1:0. Its calls get no grace period on stop unless options give one: an
 * outage is abrupt, and a test's own streams end with it.
 */
export async function startRegistry(options: Partial<Omit<RegistryOptions, "store" | "meshToken">> = {}): Promise<RegistryFixture> {
  const dir = mkdtempSync(join(tmpdir(), "infermesh-registry-"));
  const dbPath = join(dir, "infermesh.db");
  const store = createSqliteStore({ path: dbPath });
  const start = (port: number) =>
    createRegistry({ store, meshToken: MESH_TOKEN, shutdownGraceMs: 0, ...options, listen: { host: "127.0.0.1", port } });
  let server = start(0);
  const { port } = (await server.listen()).grpc;
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
      await server.close();
    },
    async restart() {
      if (running) await server.close();
      server = start(port);
      await server.listen();
      running = true;
    },
    async stop() {
      if (running) await server.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
