import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { createSqliteStore } from "../services/registry/store/sqlite-store.js";
import { prometheusScrapeConfig } from "../src/cli/scrape-config.js";
import { type CliProcess, runCli, spawnCli } from "./support/cli-process.js";
import { RELAYED_HEARTBEAT, relayMetadata } from "./support/relayed-heartbeat.js";
import { bearer, stockClient, unary } from "./support/stock-grpc-client.js";

const MESH = "cli-test-mesh-token-0123";
const KEY_SHAPE = /^im_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\n$/;

describe("the infermesh command", function () {
  // Each run starts Node with tsx; a loaded 2-core machine needs the headroom.
  this.timeout(60_000);
  let dir: string;
  let db: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "infermesh-cli-"));
    db = join(dir, "infermesh.db");
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("keys create prints the new key alone on stdout, and keys list shows it without the secret", async () => {
    await createSqliteStore({ path: db }).close();
    const created = await runCli(["keys", "create", "--user", "alice", "--db", db]);
    expect(created.code).to.equal(0);
    expect(created.stdout).to.match(KEY_SHAPE);
    const keyId = created.stdout.split("_")[1] as string;
    const listed = await runCli(["keys", "list"], { INFERMESH_DB: db });
    expect(listed.code).to.equal(0);
    expect(listed.stdout).to.contain(keyId).and.to.contain("alice");
    expect(listed.stdout).not.to.contain(created.stdout.trim());
  });

  it("keys and users on a --db path that does not exist say how a database is made and make none (keys create made one, and printed a key no registry knew)", async () => {
    const missing = join(dir, "typo.db");
    const results = await Promise.all([
      runCli(["keys", "create", "--user", "alice", "--db", missing]),
      runCli(["users", "list"], { INFERMESH_DB: missing }),
    ]);
    const how = `names '${missing}', which does not exist; \`infermesh registry --db ${missing}\` makes the database when it starts (\`infermesh dev\` makes one in its --data folder)\n`;
    expect(results).to.deep.equal([
      { code: 2, stdout: "", stderr: `infermesh keys create: --db ${how}` },
      { code: 2, stdout: "", stderr: `infermesh users list: INFERMESH_DB ${how}` },
    ]);
    expect(existsSync(missing)).to.equal(false);
  });

  describe("with a registry running on the same database", () => {
    let registry: CliProcess;
    let address: string;

    beforeEach(async () => {
      registry = spawnCli(["registry", "--listen", "127.0.0.1:0", "--db", db], { INFERMESH_MESH_TOKEN: MESH });
      const ready = await registry.waitForLog("registry ready");
      address = ready.listen as string;
    });

    afterEach(async () => {
      if (registry.child.exitCode === null) registry.child.kill("SIGKILL");
      await registry.exited;
    });

    it("accepts a key created by `keys create` at once, and refuses it once `keys revoke` ran", async () => {
      const key = (await runCli(["keys", "create", "--user", "alice", "--db", db])).stdout.trim();
      const client = stockClient("RegistryService", address);
      const relayed = relayMetadata(MESH, key);
      try {
        const response = await unary<{ provider: { ownerUserName: string } }>(client, "heartbeat", RELAYED_HEARTBEAT, relayed);
        expect(response.provider.ownerUserName).to.equal("alice");
        const revoked = await runCli(["keys", "revoke", key.split("_")[1] as string, "--db", db]);
        expect(revoked.code).to.equal(0);
        const error = await unary(client, "heartbeat", RELAYED_HEARTBEAT, relayed).then(
          () => undefined,
          (e: grpc.ServiceError) => e,
        );
        expect(error?.code).to.equal(grpc.status.UNAUTHENTICATED);
      } finally {
        client.close();
      }
    });

    it("stops on SIGTERM with exit code 0", async () => {
      registry.child.kill("SIGTERM");
      const result = await registry.exited;
      expect(result.code).to.equal(0);
      expect(result.stderr).to.contain('"msg":"registry stopped"');
    });

    it("refuses to start on a port in use, with one clear line and a non-zero exit", async () => {
      const second = await runCli(["registry", "--listen", address, "--db", db], { INFERMESH_MESH_TOKEN: MESH });
      expect(second.code).to.equal(1);
      expect(second.stderr).to.equal(`infermesh registry: cannot listen on ${address}: address already in use\n`);
    });
  });

  it("stops on a bad flag, a missing mesh token or a bad address with one line naming the flag, exit 2", async () => {
    const cases: [string[], string][] = [
      [["registry", "--bogus"], "infermesh registry: unknown flag --bogus; --help lists the flags"],
      [["registry", "--listn", "127.0.0.1:0"], "infermesh registry: unknown flag --listn; did you mean --listen?"],
      [["registry", "--db", db], "infermesh registry: --mesh-token (or INFERMESH_MESH_TOKEN) is required"],
      [
        ["registry", "--mesh-token", MESH, "--listen", "localhost"],
        "infermesh registry: --listen expects HOST:PORT with a port from 0 to 65535",
      ],
      [
        ["registry", "--mesh-token", MESH, "--heartbeat-interval-ms", "soon"],
        "infermesh registry: --heartbeat-interval-ms expects a whole number of milliseconds",
      ],
      [["frobnicate"], "infermesh: unknown command 'frobnicate'"],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args)));
    results.forEach((result, i) => {
      const [args, message] = cases[i] as [string[], string];
      expect(result.code, args.join(" ")).to.equal(2);
      expect(result.stderr.split("\n")[0], args.join(" ")).to.contain(message);
    });
    results.forEach((result, i) => {
      expect(result.stderr.trim().split("\n"), (cases[i]?.[0] ?? []).join(" ")).to.have.length(1);
    });
  });

  it("agent stops on a flag of the agents gateways dialled, or without --mesh, with one line saying what to use, exit 2", async () => {
    const cases: [string[], string][] = [
      [
        ["agent", "--registry", "http://127.0.0.1:7700", "--api-key", "k", "--upstream", "http://127.0.0.1:1"],
        "infermesh agent: --registry is no longer used: the agent reaches the mesh through its public URL: use --mesh URL",
      ],
      [["agent", "--listen", "127.0.0.1:0"], "infermesh agent: --listen is no longer used: the agent opens no port: it dials the mesh"],
      [["agent", "--advertise", "10.0.0.1:7000"], "infermesh agent: --advertise is no longer used: the agent opens no port"],
      [["agent", "--api-key", "k", "--upstream", "http://127.0.0.1:1"], "infermesh agent: --mesh (or INFERMESH_MESH"],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args)));
    results.forEach((result, i) => {
      const [args, message] = cases[i] as [string[], string];
      expect([result.code, result.stdout], args.join(" ")).to.deep.equal([2, ""]);
      expect(result.stderr.trim().split("\n"), args.join(" ")).to.have.length(1);
      expect(result.stderr, args.join(" ")).to.contain(message);
    });
  });

  it("answers --help, -h and `help` on commands and subcommands with usage on stdout, exit 0", async () => {
    const asked = [
      ["keys", "--help"],
      ["keys", "create", "-h"],
      ["help", "keys", "revoke"],
    ];
    const results = await Promise.all(asked.map((args) => runCli(args)));
    results.forEach((result, i) => {
      const args = (asked[i] as string[]).join(" ");
      expect([result.code, result.stderr], args).to.deep.equal([0, ""]);
    });
    const [keys, create, revoke] = results.map((result) => result.stdout);
    expect(keys)
      .to.match(/^usage: infermesh keys <command>/)
      .and.to.contain("\n  create  ")
      .and.to.contain("\n  revoke  ");
    expect(create)
      .to.match(/^usage: infermesh keys create --user NAME/)
      .and.to.contain("\n      env INFERMESH_KEYS_USER\n");
    expect(revoke)
      .to.match(/^usage: infermesh keys revoke KEY_ID/)
      .and.to.contain("\n      env INFERMESH_DB\n");
  });

  it("metrics-config ignores an exported INFERMESH_REGISTRY URL, INFERMESH_LISTEN and INFERMESH_API_KEY meant for other commands", async () => {
    const exported = {
      INFERMESH_REGISTRY: "http://127.0.0.1:7700",
      INFERMESH_LISTEN: "127.0.0.1:7701",
      INFERMESH_API_KEY: "im_users_own_key",
    };
    const result = await runCli(["metrics-config"], exported);
    expect(result).to.deep.equal({
      code: 0,
      stdout: prometheusScrapeConfig({ gateway: ["127.0.0.1:8080"], registry: [], agent: [] }, 15),
      stderr: "",
    });
    const own = await runCli(["metrics-config"], { ...exported, INFERMESH_METRICS_CONFIG_REGISTRY: "127.0.0.1:9464" });
    expect(own.stdout).to.contain('targets: ["127.0.0.1:9464"]');
  });

  it("sim ignores an exported INFERMESH_API_KEY and INFERMESH_LISTEN, and demands the key of --api-key-file", async () => {
    const usersKey = "im_0123456789abcdef_secretsecretsecretsecretsecretsecretsecret1";
    const keyFile = join(dir, "sim-key");
    writeFileSync(keyFile, "llama-key\n", { mode: 0o600 });
    const exported = { INFERMESH_API_KEY: usersKey, INFERMESH_LISTEN: "127.0.0.1:1", INFERMESH_SIM_LISTEN: "127.0.0.1:0" };
    const open = spawnCli(["sim"], exported);
    const guarded = spawnCli(["sim", "--api-key-file", keyFile], exported);
    try {
      const urls = await Promise.all([open, guarded].map(async (sim) => (await sim.waitForLog("simulator ready")).url as string));
      const [openUrl, guardedUrl] = urls as [string, string];
      expect(
        urls.map((url) => new URL(url).port),
        "INFERMESH_SIM_LISTEN's port 0, not INFERMESH_LISTEN's 1",
      ).not.to.include("1");
      const models = (url: string, key?: string) =>
        fetch(`${url}/v1/models`, key === undefined ? {} : { headers: { authorization: `Bearer ${key}` } }).then(
          (response) => response.status,
        );
      expect(await models(openUrl), "no key demanded").to.equal(200);
      expect(await models(guardedUrl, usersKey), "the user's key is not the simulator's").to.equal(401);
      expect(await models(guardedUrl, "llama-key")).to.equal(200);
    } finally {
      for (const sim of [open, guarded]) sim.child.kill("SIGTERM");
    }
    for (const sim of [open, guarded]) expect((await sim.exited).code).to.equal(0);
  });

  it("serves a registry whose mesh token comes from --mesh-token-file, kept off the command line", async () => {
    const tokenFile = join(dir, "mesh-token");
    writeFileSync(tokenFile, `${MESH}\n`, { mode: 0o600 });
    const registry = spawnCli(["registry", "--listen", "127.0.0.1:0", "--db", db, "--mesh-token-file", tokenFile]);
    try {
      const address = (await registry.waitForLog("registry ready")).listen as string;
      expect(registry.child.spawnargs.join(" ")).not.to.contain(MESH);
      const client = stockClient("RegistryService", address);
      try {
        expect(await unary(client, "listProviders", {}, bearer(MESH))).to.deep.equal({ providers: [] });
        const refused = await unary(client, "listProviders", {}, bearer(`${MESH}-other`)).then(
          () => undefined,
          (e: grpc.ServiceError) => e.code,
        );
        expect(refused).to.equal(grpc.status.UNAUTHENTICATED);
      } finally {
        client.close();
      }
    } finally {
      registry.child.kill("SIGTERM");
      await registry.exited;
    }
  });

  it("stops on a database it cannot read, naming the file", async () => {
    const bad = join(dir, "not-a-db");
    writeFileSync(bad, "this is not sqlite, just text long enough to have a header".repeat(10));
    const result = await runCli(["registry", "--mesh-token", MESH, "--listen", "127.0.0.1:0", "--db", bad]);
    expect(result.code).to.equal(1);
    expect(result.stderr).to.match(/^infermesh registry: .*not-a-db.*\n$/);
  });

  it("the port-in-use check also holds against a foreign listener", async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const result = await runCli(["registry", "--mesh-token", MESH, "--listen", `127.0.0.1:${port}`, "--db", db]);
      expect(result.code).to.equal(1);
      expect(result.stderr).to.contain("address already in use");
    } finally {
      blocker.close();
    }
  });
});
