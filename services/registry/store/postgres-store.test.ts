import { expect } from "chai";
import pg from "pg";
import { type PostgresServer, skipWithoutPostgres, startPostgres } from "../../../test/support/postgres-fixture.js";
import { freeLoopbackPort } from "../../../test/support/prometheus-tools.js";
import { rejection, storeConformance, USAGE_DAY0, usageRecord } from "../../../test/support/store-conformance.js";
import { waitFor } from "../../../test/support/wait-for.js";
import { POSTGRES_SCHEMA_VERSION } from "./postgres-schema.js";
import { createPostgresStore, numberedPlaceholders, POSTGRES_TYPES, type PostgresStoreOptions } from "./postgres-store.js";
import type { RegistryStore } from "./registry-store.js";

describe("createPostgresStore", function () {
  this.timeout(60_000);
  let server: PostgresServer | undefined;

  before(async function () {
    skipWithoutPostgres(this);
    server = await startPostgres();
  });

  after(async () => {
    await server?.stop();
  });

  /** running is the file's server, which before() started. */
  function running(): PostgresServer {
    if (server === undefined) throw new Error("PostgreSQL is not running");
    return server;
  }

  /** rawQuery runs one statement with "?" placeholders on database, reading BIGINT as the store does. */
  async function rawQuery(database: string, sql: string, params: readonly unknown[] = []): Promise<Record<string, unknown>[]> {
    const client = new pg.Client({ connectionString: running().url(database), types: POSTGRES_TYPES });
    await client.connect();
    try {
      return (await client.query(numberedPlaceholders(sql), [...params])).rows;
    } finally {
      await client.end();
    }
  }

  describe("the RegistryStore conformance suite", () => {
    storeConformance(async () => {
      const database = await running().createDatabase();
      return {
        open: (now) => createPostgresStore({ url: running().url(database), now }),
        query: (sql, params) => rawQuery(database, sql, params),
        drop: () => running().dropDatabase(database),
      };
    });
  });

  describe("PostgreSQL only", () => {
    let database: string | undefined;
    let opened: RegistryStore[];

    /** url is the connection string of the test's database. */
    function url(): string {
      if (database === undefined) throw new Error("no database: url is for tests only");
      return running().url(database);
    }

    /** open opens a store on the test's database and closes it after the test. */
    async function open(options: Partial<PostgresStoreOptions> = {}): Promise<RegistryStore> {
      const store = await createPostgresStore({ url: url(), now: () => 1_700_000_000_000, ...options });
      opened.push(store);
      return store;
    }

    /** query runs SQL on the test's database directly. */
    function query(sql: string, params: readonly unknown[] = []): Promise<Record<string, unknown>[]> {
      if (database === undefined) throw new Error("no database: query is for tests only");
      return rawQuery(database, sql, params);
    }

    /** storeConnections counts the store's open connections to the test's database. */
    async function storeConnections(): Promise<number> {
      const [row] = await query(
        "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE datname = ? AND application_name = 'infermesh-registry'",
        [database],
      );
      return Number(row?.["n"]);
    }

    beforeEach(async () => {
      opened = [];
      database = await running().createDatabase();
    });

    afterEach(async () => {
      for (const store of opened) {
        await store.close();
      }
      if (database !== undefined) await running().dropDatabase(database);
      database = undefined;
    });

    it("migrates a fresh database once and opens it again without changing it", async () => {
      const first = await open({ now: () => 1_000 });
      const { apiKey } = await first.createApiKey("alice");
      const versions = [{ version: POSTGRES_SCHEMA_VERSION, applied_at_ms: 1_000 }];
      expect(await query("SELECT version, applied_at_ms FROM schema_version ORDER BY version")).to.deep.equal(versions);

      const second = await open({ now: () => 2_000 });
      expect(await second.authenticate(apiKey)).to.deep.include({ userName: "alice" });
      expect(await query("SELECT version, applied_at_ms FROM schema_version ORDER BY version")).to.deep.equal(versions);
    });

    it("migrates a fresh database with several stores starting at the same moment", async () => {
      const stores = await Promise.all([1, 2, 3, 4].map(() => open()));
      expect(await query("SELECT version FROM schema_version")).to.deep.equal([{ version: POSTGRES_SCHEMA_VERSION }]);
      const created = await Promise.all(stores.map((store, index) => store.createApiKey(`user${index}`)));
      for (const store of stores) {
        for (const [index, { apiKey }] of created.entries()) {
          expect(await store.authenticate(apiKey)).to.deep.include({ userName: `user${index}` });
        }
      }
    });

    it("refuses a database from a newer infermesh and names it without its password", async () => {
      await (await createPostgresStore({ url: url() })).close();
      const newer = POSTGRES_SCHEMA_VERSION + 1;
      await query("INSERT INTO schema_version (version, applied_at_ms) VALUES (?, 0)", [newer]);
      const withPassword = url().replace("postgres@", "postgres:hunter2@");
      const error = (await rejection(createPostgresStore({ url: withPassword }))) as Error;
      expect(error.message).to.equal(
        `cannot open registry store ${withPassword.replace("hunter2", "***")}: ` +
          `schema version ${newer} is newer than the ${POSTGRES_SCHEMA_VERSION} this infermesh supports`,
      );
      await waitFor("the refused store's pool to end", async () => (await storeConnections()) === 0);
    });

    it("names the server it cannot reach, without the password", async () => {
      const port = await freeLoopbackPort();
      const error = (await rejection(createPostgresStore({ url: `postgres://someone:hunter2@127.0.0.1:${port}/registry` }))) as Error;
      expect(error.message).to.match(
        new RegExp(`^cannot open registry store postgres://someone:\\*\\*\\*@127\\.0\\.0\\.1:${port}/registry: `),
      );
      expect(error.message).to.include("ECONNREFUSED");
      expect(error.message).not.to.include("hunter2");
    });

    it("stores a batch of 1,000 usage records in one statement", async () => {
      const store = await open();
      await query("CREATE EXTENSION pg_stat_statements");
      await query("SELECT pg_stat_statements_reset()");
      const records = Array.from({ length: 1_000 }, (_, index) =>
        usageRecord({ id: `r${index}`, timeMs: USAGE_DAY0 + index, promptTokens: index, model: `m${index % 3}` }),
      );
      expect(await store.recordUsage(records)).to.equal(1_000);
      const inserts = await query(
        "SELECT calls, rows FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = ?) AND query LIKE 'INSERT INTO usage%'",
        [database],
      );
      expect(inserts).to.deep.equal([{ calls: 1, rows: 1_000 }]);

      const byModel = await store.queryUsage({
        scope: "all",
        userId: "",
        fromMs: USAGE_DAY0,
        toMs: USAGE_DAY0 + 1_000,
        groupBy: ["model"],
      });
      const expected = [0, 1, 2].map((model) => {
        const indexes = Array.from({ length: 1_000 }, (_, index) => index).filter((index) => index % 3 === model);
        return [`m${model}`, indexes.length, indexes.reduce((sum, index) => sum + index, 0)];
      });
      expect(byModel.map((row) => [...row.group, row.requests, row.promptTokens])).to.deep.equal(expected);
      expect(await store.recordUsage(records), "a batch sent again").to.equal(0);
    });

    it("keeps its pool within maxConnections and ends it on close", async () => {
      const store = await open({ maxConnections: 2 });
      const created = await Promise.all(Array.from({ length: 20 }, (_, index) => store.createApiKey(`user${index}`)));
      expect(new Set(created.map(({ record }) => record.userId)).size).to.equal(20);
      expect(await storeConnections()).to.equal(2);
      await store.close();
      opened = [];
      await waitFor("the store's connections to end", async () => (await storeConnections()) === 0);
    });
  });
});
