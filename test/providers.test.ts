import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { readServerTls } from "../services/shared/tls-files.js";
import { startGateway } from "./support/gateway-fixture.js";
import { ISO_TIME as ISO, infermesh } from "./support/in-process-cli.js";
import { type Mesh, type MeshAgent, startMesh } from "./support/mesh-fixture.js";
import { testCertificates } from "./support/test-certificates.js";

// `infermesh providers` and `infermesh usage` as a member runs them: against a real gateway's /api, with the key in a file.

describe("infermesh providers and usage, through the mesh's API", function () {
  this.timeout(60_000);
  let mesh: Mesh;
  let box: MeshAgent;
  let dir: string;
  const keyFiles: Record<string, string> = {};
  /** as runs a command as a user: their key from a file, the test mesh's URL from INFERMESH_MESH. */
  const as = (user: string, argv: readonly string[]) =>
    infermesh(argv, { INFERMESH_MESH: mesh.gateway.baseUrl, INFERMESH_API_KEY_FILE: keyFiles[user] as string });

  before(async () => {
    mesh = await startMesh();
    dir = mkdtempSync(join(tmpdir(), "infermesh-providers-"));
    for (const user of ["alice", "bob", "carol"]) {
      keyFiles[user] = join(dir, `${user}.key`);
      writeFileSync(keyFiles[user] as string, `${await mesh.registry.keyFor(user)}\n`, { mode: 0o600 });
    }
    const aliceKey = (await mesh.registry.store.createApiKey("alice")).apiKey;
    box = await mesh.addAgent({ user: "alice", apiKey: aliceKey });
  });

  after(async () => {
    await mesh.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("providers list shows the caller's providers only: status, sharing, load, last heartbeat, version and models", async () => {
    const listed = await as("alice", ["providers", "list"]);
    expect([listed.code, listed.stderr]).to.deep.equal([0, ""]);
    const [header, row, ...rest] = listed.stdout.split("\n");
    expect(header).to.match(/^ID +NAME +STATUS +SHARING +LOAD +LAST_SEEN +VERSION +MODELS$/);
    expect(row).to.match(new RegExp(`^${box.providerId} +alice-agent-0 +online +private +0/4\\+0 +${ISO} +dev +sim-llama$`));
    expect(rest).to.deep.equal([""]);
    const json = JSON.parse((await as("alice", ["providers", "list", "--json"])).stdout) as { object: string; data: { id: string }[] };
    expect([json.object, json.data.map((provider) => provider.id)]).to.deep.equal(["list", [box.providerId]]);
    expect(await as("bob", ["providers", "list"])).to.deep.equal({
      code: 0,
      stdout: "ID  NAME  STATUS  SHARING  LOAD  LAST_SEEN  VERSION  MODELS\n",
      stderr: "",
    });
  });

  it("pause and resume switch routing off and on, share sets who may use it; each prints the provider's new state", async () => {
    const name = `${box.providerId} (alice-agent-0)`;
    expect(await as("alice", ["providers", "pause", box.providerId])).to.deep.equal({
      code: 0,
      stdout: `paused ${name}: paused\n`,
      stderr: "",
    });
    expect((await as("alice", ["providers", "list"])).stdout).to.match(new RegExp(`\\n${box.providerId} +alice-agent-0 +paused `));
    expect(await as("alice", ["providers", "resume", box.providerId])).to.deep.equal({
      code: 0,
      stdout: `resumed ${name}: online\n`,
      stderr: "",
    });
    expect(await as("alice", ["providers", "share", box.providerId, "users:bob,carol"])).to.deep.equal({
      code: 0,
      stdout: `${name} is shared: users:bob,carol\n`,
      stderr: "",
    });
    expect((await as("alice", ["providers", "list"])).stdout).to.match(
      new RegExp(`\\n${box.providerId} +alice-agent-0 +online +users:bob,carol `),
    );
    expect((await as("alice", ["providers", "share", box.providerId, "private"])).stdout).to.equal(`${name} is shared: private\n`);
  });

  it("prints the API's error message in one line, exit 1, for another's provider or a bad key; a bad policy is exit 2", async () => {
    const notBobs = await as("bob", ["providers", "pause", box.providerId]);
    expect([notBobs.code, notBobs.stdout]).to.deep.equal([1, ""]);
    expect(notBobs.stderr).to.match(/^infermesh providers pause: [^\n]+ \(HTTP 404 Not Found\)\n$/);
    const badKey = await infermesh(["providers", "list", "--mesh", mesh.gateway.baseUrl], {
      INFERMESH_API_KEY: "im_0123456789abcdef_nope",
    });
    expect([badKey.code, badKey.stdout]).to.deep.equal([1, ""]);
    expect(badKey.stderr).to.match(/^infermesh providers list: [^\n]+ \(HTTP 401 Unauthorized\)\n$/);
    expect(await as("alice", ["providers", "share", box.providerId, "friends"])).to.deep.equal({
      code: 2,
      stdout: "",
      stderr: "infermesh providers share: expects private, public or users:NAME[,NAME...], got 'friends'\n",
    });
    expect((await as("alice", ["providers", "share", box.providerId])).stderr).to.equal(
      "infermesh providers share: a POLICY is required (`infermesh providers list` shows yours; POLICY is private, public or users:NAME[,NAME...])\n",
    );
  });

  it("usage sums the caller's calls, or as a provider owner the calls their providers answered, by whom", async () => {
    const { store } = mesh.registry;
    const alice = (await store.findUser("alice"))?.id as string;
    const bob = (await store.findUser("bob"))?.id as string;
    const call = (id: string, userId: string, minute: number, model: string, promptTokens: number) => ({
      id,
      timeMs: Date.parse("2025-05-01T10:00:00Z") + minute * 60_000,
      userId,
      keyId: `${userId}-key`,
      providerId: box.providerId,
      providerOwnerId: alice,
      providerName: "alice-agent-0",
      model,
      operation: "chat.completions",
      status: 200,
      promptTokens,
      completionTokens: 3,
      audioSeconds: 0,
      images: 0,
      ttfbMs: 40,
      durationMs: 100,
    });
    await store.recordUsage([
      call("u1", alice, 0, "sim-llama", 5),
      call("u2", alice, 1, "sim-llama", 5),
      call("u3", bob, 2, "sim-llama", 7),
      call("u4", bob, 3, "sim-llama", 7),
      call("u5", bob, 61, "sim-qwen", 7),
    ]);
    const window = ["--from", "2025-05-01", "--to", "2025-05-02T00:00:00Z"];

    expect(await as("bob", ["usage", ...window, "--group-by", "hour,model"])).to.deep.equal({
      code: 0,
      stdout: [
        "usage (mine) from 2025-05-01T00:00:00.000Z to 2025-05-02T00:00:00.000Z",
        "HOUR              MODEL      REQUESTS  ERRORS  PROMPT_TOKENS  COMPLETION_TOKENS  TOTAL_TOKENS  TTFB_MS  DURATION_MS",
        "2025-05-01 10:00  sim-llama         2       0             14                  6            20       40          100",
        "2025-05-01 11:00  sim-qwen          1       0              7                  3            10       40          100",
        "",
      ].join("\n"),
      stderr: "",
    });
    const byCaller = JSON.parse((await as("alice", ["usage", ...window, "--scope", "providers", "--group-by", "user", "--json"])).stdout);
    expect(byCaller).to.deep.include({ object: "list", scope: "providers", group_by: ["user"], from: "2025-05-01T00:00:00.000Z" });
    expect(
      byCaller.data.map((row: { user: string; requests: number; total_tokens: number }) => [row.user, row.requests, row.total_tokens]),
    ).to.deep.equal([
      ["alice", 2, 16],
      ["bob", 3, 30],
    ]);
    expect((await as("carol", ["usage", ...window])).stdout).to.equal(
      "usage (mine) from 2025-05-01T00:00:00.000Z to 2025-05-02T00:00:00.000Z\nno calls\n",
    );
  });

  it("trusts the gateway's private CA given with --ca-file, and says what to do without it", async () => {
    const certificates = testCertificates();
    const tlsGateway = await startGateway(mesh.registry.address, { tls: readServerTls(certificates.certFile, certificates.keyFile) });
    try {
      const url = tlsGateway.baseUrl.replace("http://", "https://");
      const trusted = await infermesh([
        "providers",
        "list",
        "--mesh",
        url,
        "--ca-file",
        certificates.caFile,
        "--api-key-file",
        keyFiles.alice as string,
      ]);
      expect([trusted.code, trusted.stderr]).to.deep.equal([0, ""]);
      expect(trusted.stdout).to.contain(box.providerId);
      const untrusted = await infermesh(["providers", "list", "--mesh", url, "--api-key-file", keyFiles.alice as string]);
      expect([untrusted.code, untrusted.stdout]).to.deep.equal([1, ""]);
      expect(untrusted.stderr).to.match(
        new RegExp(
          `^infermesh providers list: cannot reach the mesh at ${url.replaceAll(".", "\\.")}: the server's TLS certificate .*--ca-file FILE.*\\n$`,
        ),
      );
    } finally {
      await tlsGateway.stop();
    }
  });
});
