import { expect } from "chai";
import pg from "pg";
import { POSTGRES_SCHEMA_VERSION } from "../services/registry/store/postgres-schema.js";
import { type CliProcess, runCli, spawnCli } from "./support/cli-process.js";
import { type PostgresServer, skipWithoutPostgres, startPostgres } from "./support/postgres-fixture.js";
import { RELAYED_HEARTBEAT, relayMetadata } from "./support/relayed-heartbeat.js";
import { stockClient, unary } from "./support/stock-grpc-client.js";

const MESH = "cli-postgres-mesh-token-0123";
const KEY_SHAPE = /^im_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\n$/;

describe("the infermesh command on a PostgreSQL database (--db postgres://…)", function () {
  // Each run starts Node with tsx; a loaded 2-core machine needs the headroom.
  this.timeout(90_000);
  let server: PostgresServer | undefined;
  let database: string | undefined;
  let registry: CliProcess | undefined;

  before(async function () {
    skipWithoutPostgres(this);
    server = await startPostgres();
    database = await server.createDatabase();
  });

  after(async () => {
    if (registry !== undefined && registry.child.exitCode === null) registry.child.kill("SIGKILL");
    await registry?.exited;
    if (database !== undefined) await server?.dropDatabase(database);
    await server?.stop();
  });

  it("serves a registry from it, which accepts a key `keys create` made there, and `users` and `usage` read it", async () => {
    if (server === undefined || database === undefined) throw new Error("PostgreSQL is not running");
    // The test server trusts every loopback connection, so the password only shows what the log hides.
    const url = server.url(database).replace("postgres@", "postgres:not-for-logs@");
    registry = spawnCli(["registry", "--listen", "127.0.0.1:0", "--db", url], { INFERMESH_MESH_TOKEN: MESH });
    const ready = await registry.waitForLog("registry ready");
    expect(ready.db).to.equal(url.replace("not-for-logs", "***"));

    const created = await runCli(["keys", "create", "--user", "alice", "--db", url]);
    expect(created).to.deep.include({ code: 0, stderr: "" });
    expect(created.stdout).to.match(KEY_SHAPE);
    const key = created.stdout.trim();

    const client = stockClient("RegistryService", ready.listen as string);
    try {
      const response = await unary<{ provider: { ownerUserName: string } }>(
        client,
        "heartbeat",
        RELAYED_HEARTBEAT,
        relayMetadata(MESH, key),
      );
      expect(response.provider.ownerUserName).to.equal("alice");
    } finally {
      client.close();
    }

    const [users, usage] = await Promise.all([runCli(["users", "list"], { INFERMESH_DB: url }), runCli(["usage", "--db", url, "--json"])]);
    expect(users).to.deep.include({ code: 0, stderr: "" });
    expect(users.stdout).to.contain("alice");
    expect(usage).to.deep.include({ code: 0, stderr: "" });

    registry.child.kill("SIGTERM");
    const stopped = await registry.exited;
    expect(stopped.code).to.equal(0);
    expect(stopped.stderr).to.contain('"msg":"registry stopped"');
  });

  it("migrates a new database with `infermesh migrate`, two at once as replicas starting together would, to one schema", async () => {
    if (server === undefined) throw new Error("PostgreSQL is not running");
    const fresh = await server.createDatabase();
    try {
      const url = server.url(fresh);
      const runs = await Promise.all([runCli(["migrate", "--db", url]), runCli(["migrate"], { INFERMESH_DB: url })]);
      for (const run of runs)
        expect(run).to.deep.equal({ code: 0, stdout: `${url} is at schema version ${POSTGRES_SCHEMA_VERSION}\n`, stderr: "" });
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const { rows } = await client.query<{ version: number }>("SELECT version FROM schema_version ORDER BY version");
        expect(rows.map((row) => row.version)).to.deep.equal(Array.from({ length: POSTGRES_SCHEMA_VERSION }, (_, i) => i + 1));
      } finally {
        await client.end();
      }
    } finally {
      await server.dropDatabase(fresh);
    }
  });

  it("stops the registry with one line naming the database, without its password, when it cannot connect", async () => {
    if (server === undefined) throw new Error("PostgreSQL is not running");
    const url = server.url("no_such_database").replace("postgres@", "postgres:not-for-logs@");
    const result = await runCli(["registry", "--listen", "127.0.0.1:0", "--db", url], { INFERMESH_MESH_TOKEN: MESH });
    expect(result.code).to.equal(1);
    expect(result.stderr).to.equal(
      `infermesh registry: cannot open registry store ${url.replace("not-for-logs", "***")}: database "no_such_database" does not exist\n`,
    );
  });
});
