import { mkdtempSync, rmSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import type { UsageRecordData } from "../services/registry/store/registry-store.js";
import { createSqliteStore } from "../services/registry/store/sqlite-store.js";
import { infermesh } from "./support/in-process-cli.js";

const DAY_MS = 24 * 3600_000;
const MAY_1 = Date.parse("2025-05-01T00:00:00Z");

describe("infermesh usage --db", () => {
  let dir: string;
  let db: string;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "infermesh-usage-"));
    db = join(dir, "infermesh.db");
    const store = createSqliteStore({ path: db });
    try {
      const alice = (await store.createApiKey("alice")).record;
      const bob = (await store.createApiKey("bob")).record;
      const call = (
        id: string,
        timeMs: number,
        who: typeof alice,
        model: string,
        more: Partial<UsageRecordData> = {},
      ): UsageRecordData => ({
        id,
        timeMs,
        userId: who.userId,
        keyId: who.id,
        providerId: "box",
        providerOwnerId: alice.userId,
        providerName: "box",
        model,
        operation: "chat.completions",
        status: 200,
        promptTokens: 10,
        completionTokens: 20,
        audioSeconds: 0,
        images: 0,
        ttfbMs: 100,
        durationMs: 1000,
        ...more,
      });
      await store.recordUsage([
        call("r1", MAY_1 + 3600_000, alice, "llama"),
        call("r2", MAY_1 + 7200_000, alice, "llama", { status: 500, promptTokens: 5, completionTokens: 0, ttfbMs: 0, durationMs: 200 }),
        call("r3", MAY_1 + DAY_MS + 60_000, bob, "llama", { ttfbMs: 300, durationMs: 3000 }),
        call("r4", MAY_1 + DAY_MS + 120_000, bob, "whisper", { promptTokens: 0, completionTokens: 0, audioSeconds: 12.5 }),
        call("r5", MAY_1 + 3 * DAY_MS, alice, "llama"),
      ]);
    } finally {
      await store.close();
    }
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("prints everyone's calls in the window as a table, by day and model unless told, audio only when there is some", async () => {
    const result = await infermesh(["usage", "--db", db, "--from", "2025-05-01", "--to", "2025-05-03"]);
    expect(result).to.deep.equal({
      code: 0,
      stdout: [
        "usage (all) from 2025-05-01T00:00:00.000Z to 2025-05-03T00:00:00.000Z",
        "DAY         MODEL    REQUESTS  ERRORS  PROMPT_TOKENS  COMPLETION_TOKENS  TOTAL_TOKENS  AUDIO_S  TTFB_MS  DURATION_MS",
        "2025-05-01  llama           2       1             15                 20            35      0.0      100          600",
        "2025-05-02  llama           1       0             10                 20            30      0.0      300         3000",
        "2025-05-02  whisper         1       0              0                  0             0     12.5      100         1000",
        "",
      ].join("\n"),
      stderr: "",
    });
  });

  it("groups by user, reads unix seconds, and sums everything in one row with an empty --group-by", async () => {
    const from = String(MAY_1 / 1000);
    const byUser = await infermesh(["usage", "--group-by", "user", "--from", from, "--to", "2025-05-10T00:00:00Z"], { INFERMESH_DB: db });
    expect(byUser.stdout.split("\n").slice(1)).to.deep.equal([
      "USER   REQUESTS  ERRORS  PROMPT_TOKENS  COMPLETION_TOKENS  TOTAL_TOKENS  AUDIO_S  TTFB_MS  DURATION_MS",
      "alice         3       1             25                 40            65      0.0      100          733",
      "bob           2       0             10                 20            30     12.5      200         2000",
      "",
    ]);
    const totals = await infermesh(["usage", "--db", db, "--group-by=", "--from", "2025-05-01", "--to", "2025-05-02"]);
    expect(totals.stdout.split("\n").slice(1)).to.deep.equal([
      "REQUESTS  ERRORS  PROMPT_TOKENS  COMPLETION_TOKENS  TOTAL_TOKENS  TTFB_MS  DURATION_MS",
      "       2       1             15                 20            35      100          600",
      "",
    ]);
    const none = await infermesh(["usage", "--db", db, "--from", "2024-01-01", "--to", "2024-02-01"]);
    expect(none.stdout).to.equal("usage (all) from 2024-01-01T00:00:00.000Z to 2024-02-01T00:00:00.000Z\nno calls\n");
  });

  it("prints with --json what GET /api/usage answers, scope all", async () => {
    const result = await infermesh([
      "usage",
      "--db",
      db,
      "--from",
      "2025-05-02",
      "--to",
      "2025-05-03",
      "--group-by",
      "hour,model",
      "--json",
    ]);
    expect(JSON.parse(result.stdout)).to.deep.equal({
      object: "list",
      scope: "all",
      group_by: ["hour", "model"],
      from: "2025-05-02T00:00:00.000Z",
      to: "2025-05-03T00:00:00.000Z",
      data: [
        {
          hour: "2025-05-02T00:00:00.000Z",
          model: "llama",
          requests: 1,
          errors: 0,
          prompt_tokens: 10,
          completion_tokens: 20,
          total_tokens: 30,
          audio_seconds: 0,
          images: 0,
          ttfb_ms_avg: 300,
          duration_ms_avg: 3000,
        },
        {
          hour: "2025-05-02T00:00:00.000Z",
          model: "whisper",
          requests: 1,
          errors: 0,
          prompt_tokens: 0,
          completion_tokens: 0,
          total_tokens: 0,
          audio_seconds: 12.5,
          images: 0,
          ttfb_ms_avg: 100,
          duration_ms_avg: 1000,
        },
      ],
    });
  });

  it("refuses a bad window, dimension or scope, a missing database, and --db with --mesh, in one line naming the flag", async () => {
    const refused = async (argv: string[], env: NodeJS.ProcessEnv = {}) => {
      const result = await infermesh(["usage", ...argv], env);
      expect([result.code, result.stdout], argv.join(" ")).to.deep.equal([2, ""]);
      return result.stderr;
    };
    expect(await refused(["--db", db, "--from", "yesterday"])).to.equal(
      "infermesh usage: --from expects an ISO-8601 time (2025-05-01, 2025-05-01T12:00:00Z) or unix seconds, got 'yesterday'\n",
    );
    expect(await refused(["--db", db, "--from", "2025-05-02", "--to", "2025-05-01"])).to.equal(
      "infermesh usage: --from (2025-05-02T00:00:00.000Z) must be before --to (2025-05-01T00:00:00.000Z)\n",
    );
    expect(await refused(["--db", db, "--group-by", "day,week"])).to.equal(
      "infermesh usage: --group-by expects a comma-separated list of day, hour, model, key, provider and user, got 'day,week'\n",
    );
    expect(await refused(["--db", db], { INFERMESH_USAGE_GROUP_BY: "model,model" })).to.equal(
      "infermesh usage: INFERMESH_USAGE_GROUP_BY names model twice, in 'model,model'\n",
    );
    expect(await refused(["--db", db, "--scope", "providers"])).to.equal(
      "infermesh usage: --scope is for the mesh's API; --db sums everyone's calls (--group-by user splits them)\n",
    );
    expect(await refused(["--db", db, "--mesh", "http://127.0.0.1:8080"])).to.equal(
      "infermesh usage: --db and --mesh are both given; give one of them\n",
    );
    expect(await refused(["--scope", "everyone"], { INFERMESH_API_KEY: "k" })).to.equal(
      "infermesh usage: --scope expects mine or providers, got 'everyone'\n",
    );
    expect(await refused(["--db", join(dir, "missing.db")])).to.match(
      /^infermesh usage: --db names '.*missing\.db', which does not exist; /,
    );
    expect(await refused([])).to.equal(
      "infermesh usage: --api-key-file FILE (or INFERMESH_API_KEY_FILE) or INFERMESH_API_KEY is required: your infermesh API key (`infermesh dev` keeps one in ./data/dev-api-key)\n",
    );
  });

  it("calls the mesh when --mesh on the command line overrides an exported INFERMESH_DB, and says in one line it cannot reach it", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const result = await infermesh(["usage", "--mesh", `http://127.0.0.1:${port}`, "--api-key", "im_x"], { INFERMESH_DB: db });
    expect([result.code, result.stdout]).to.deep.equal([1, ""]);
    expect(result.stderr).to.equal(
      `infermesh usage: cannot reach the mesh at http://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}\n`,
    );
  });
});
