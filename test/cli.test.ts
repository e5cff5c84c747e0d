import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, spawnCli, type CliProcess } from "./support/cli-process.js";
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
    const created = await runCli(["keys", "create", "--user", "alice", "--db", db]);
    expect(created.code).to.equal(0);
    expect(created.stdout).to.match(KEY_SHAPE);
    const keyId = created.stdout.split("_")[1] as string;
    const listed = await runCli(["keys", "list"], { INFERMESH_DB: db });
    expect(listed.code).to.equal(0);
    expect(listed.stdout).to.contain(keyId).and.to.contain("alice");
    expect(listed.stdout).not.to.contain(created.stdout.trim());
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
      try {
        const heartbeat = { providerId: "box", endpoint: "127.0.0.1:9", models: [{ id: "m", serviceType: "SERVICE_TYPE_LLM" }] };
        const response = await unary<{ provider: { ownerUserName: string } }>(client, "heartbeat", heartbeat, bearer(key));
        expect(response.provider.ownerUserName).to.equal("alice");
        const revoked = await runCli(["keys", "revoke", key.split("_")[1] as string, "--db", db]);
        expect(revoked.code).to.equal(0);
        const error = await unary(client, "heartbeat", heartbeat, bearer(key)).then(
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
      [["registry", "--bogus"], "infermesh registry: Unknown option '--bogus'"],
      [["registry", "--db", db], "infermesh registry: --mesh-token (or INFERMESH_MESH_TOKEN) is required"],
      [["registry", "--mesh-token", MESH, "--listen", "localhost"], "infermesh registry: --listen expects HOST:PORT"],
      [["registry", "--mesh-token", MESH, "--heartbeat-interval-ms", "soon"], "infermesh registry: --heartbeat-interval-ms expects"],
      [["frobnicate"], "infermesh: unknown command 'frobnicate'"],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args)));
    results.forEach((result, i) => {
      const [args, message] = cases[i] as [string[], string];
      expect(result.code, args.join(" ")).to.equal(2);
      expect(result.stderr.split("\n")[0], args.join(" ")).to.contain(message);
    });
    expect(results[0]?.stderr.trim().split("\n")).to.have.length(1);
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
