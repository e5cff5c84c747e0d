import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freeLoopbackPort } from "./prometheus-tools.js";
import { awaitServerStart, type ServerStart } from "./server-start.js";

/**
 * The tests' PostgreSQL is Debian's own server (package `postgresql`), run from a temp data directory on a free
 * loopback port with durability switched off for speed. Each test file starts one and stops it at the end; each test
 * makes a database of its own on it.
 */

/** POSTGRES_ROOT is where Debian installs each PostgreSQL major version's binaries, as <version>/bin. */
const POSTGRES_ROOT = "/usr/lib/postgresql";
/** READY_TIMEOUT_MS is how long the server may take to accept connections once started. */
const READY_TIMEOUT_MS = 20_000;
/** STOP_GRACE_MS is how long the server may take to shut down on SIGINT before it is killed. */
const STOP_GRACE_MS = 10_000;
/** START_ATTEMPTS bounds the retries when another process takes the free port between our probe and the server's bind. */
const START_ATTEMPTS = 5;

/** postgresBinDir is the bin directory of the newest installed PostgreSQL with initdb and postgres, or undefined. */
export function postgresBinDir(): string | undefined {
  if (!existsSync(POSTGRES_ROOT)) return undefined;
  const versions = readdirSync(POSTGRES_ROOT)
    .filter((version) => /^\d+$/.test(version))
    .sort((a, b) => Number(b) - Number(a));
  return versions
    .map((version) => join(POSTGRES_ROOT, version, "bin"))
    .find((bin) => existsSync(join(bin, "initdb")) && existsSync(join(bin, "postgres")));
}

/**
 * skipWithoutPostgres skips a suite on a machine without Debian's PostgreSQL server, saying so; in CI, which installs
 * it (.ci/run), a missing server is a failure instead.
 */
export function skipWithoutPostgres(context: Mocha.Context): void {
  if (postgresBinDir() !== undefined) return;
  const message = `${POSTGRES_ROOT}/*/bin/initdb is missing (Debian package 'postgresql')`;
  if (process.env.CI) throw new Error(message);
  console.warn(`      skipped: ${message}`);
  context.skip();
}

/** PostgresServer is a running throwaway server reached as its superuser "postgres" over loopback TCP. */
export interface PostgresServer {
  readonly port: number;
  /** url is the connection string for database on this server. */
  url(database: string): string;
  /** createDatabase creates a new empty database with a unique name and returns its name. */
  createDatabase(): Promise<string>;
  /** dropDatabase drops a database, ending any connection still open to it. */
  dropDatabase(database: string): Promise<void>;
  /** stop shuts the server down and removes its data directory. */
  stop(): Promise<void>;
}

/** ServerUser is the account the server runs as: "postgres" when the tests run as root, which PostgreSQL refuses. */
interface ServerUser {
  readonly uid?: number;
  readonly gid?: number;
}

/** startPostgres initialises a data directory and starts a server on a free loopback port, ready for connections. */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = postgresBinDir();
  if (bin === undefined) throw new Error(`no PostgreSQL server under ${POSTGRES_ROOT}`);
  const user = serverUser();
  const dir = mkdtempSync(join(tmpdir(), "infermesh-postgres-"));
  try {
    if (user.uid !== undefined && user.gid !== undefined) chownSync(dir, user.uid, user.gid);
    const data = join(dir, "data");
    execFileSync(join(bin, "initdb"), ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"], {
      ...user,
      stdio: ["ignore", "ignore", "pipe"],
      env: serverEnv(),
    });
    for (let attempt = 1; ; attempt++) {
      const port = await freeLoopbackPort();
      const started = await startServer(bin, data, port, user);
      if (started.ok) return server(started.child, port, dir, majorVersionOf(bin));
      if (attempt >= START_ATTEMPTS || !started.log.includes("could not bind")) {
        throw new Error(`PostgreSQL did not start on port ${port}: ${started.log.trim().slice(-2000)}`);
      }
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/** serverUser is the postgres account's ids when this process is root; the current user otherwise. */
function serverUser(): ServerUser {
  if (process.getuid?.() !== 0) return {};
  const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
  return { uid: id("-u"), gid: id("-g") };
}

/** serverEnv is the environment for initdb and the server: this one, less settings meant for PostgreSQL clients. */
function serverEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("PG")));
}

/** startServer starts the server on port and waits until it accepts a connection or exits. */
async function startServer(bin: string, data: string, port: number, user: ServerUser): Promise<ServerStart> {
  // Durability is off: the data is thrown away after the tests. No Unix socket, so no system directory is needed.
  // pg_stat_statements (in Debian's server package) lets tests count the statements a store sends.
  const settings = [
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "unix_socket_directories=",
    "listen_addresses=127.0.0.1",
    "shared_preload_libraries=pg_stat_statements",
  ];
  const child = spawn(join(bin, "postgres"), ["-D", data, "-p", String(port), ...settings.flatMap((setting) => ["-c", setting])], {
    ...user,
    stdio: ["ignore", "ignore", "pipe"],
    env: serverEnv(),
  });
  return awaitServerStart(child, `PostgreSQL to accept connections on port ${port}`, () => accepts(port), READY_TIMEOUT_MS);
}

/** accepts tells whether the server on port answers a query. */
async function accepts(port: number): Promise<boolean> {
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres" });
  // A refused connection also emits "error" on some paths; connect()'s rejection is what we act on.
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** majorVersionOf reads the major version from a bin directory's path, /usr/lib/postgresql/<major>/bin. */
function majorVersionOf(bin: string): number {
  return Number(bin.split("/").at(-2));
}

/** server is the handle of a started server. */
function server(child: ChildProcess, port: number, dir: string, majorVersion: number): PostgresServer {
  const url = (database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`;
  const exited = new Promise<void>((resolve) =>
    child.exitCode !== null || child.signalCode !== null ? resolve() : child.once("exit", () => resolve()),
  );

  /** admin runs one statement on the maintenance database. */
  async function admin(sql: string): Promise<void> {
    const client = new pg.Client({ connectionString: url("postgres") });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  }

  return {
    port,
    url,
    async createDatabase() {
      const name = `infermesh_test_${randomBytes(6).toString("hex")}`;
      // From version 15 on, copying the template's files is faster than the default of logging every block to WAL.
      await admin(`CREATE DATABASE ${name}${majorVersion >= 15 ? " STRATEGY FILE_COPY" : ""}`);
      return name;
    },
    async dropDatabase(database) {
      await admin(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(database)} WITH (FORCE)`);
    },
    async stop() {
      // SIGINT is PostgreSQL's fast shutdown: it ends sessions and exits without waiting for clients.
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
