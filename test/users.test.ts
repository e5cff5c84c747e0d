import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import type { RegistryStore } from "../services/registry/store/registry-store.js";
import { createSqliteStore } from "../services/registry/store/sqlite-store.js";
import { ISO_TIME as ISO, infermesh } from "./support/in-process-cli.js";

const PASSWORD = "correct horse battery";

describe("infermesh users", () => {
  let dir: string;
  let db: string;
  /** inspect opens the database beside the command, as a running registry would. */
  const inspect = async <T>(look: (store: RegistryStore) => Promise<T>): Promise<T> => {
    const store = createSqliteStore({ path: db });
    try {
      return await look(store);
    } finally {
      await store.close();
    }
  };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "infermesh-users-"));
    db = join(dir, "infermesh.db");
    await inspect(async () => undefined);
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("add prints the one-time invite link, its token in the fragment, valid 24 h, and the link sets the password once", async () => {
    const before = Date.now();
    const added = await infermesh(["users", "add", "alice", "--db", db, "--url", "https://mesh.example.org/"]);
    expect([added.code, added.stderr]).to.deep.equal([0, ""]);
    const lines = added.stdout.split("\n");
    expect(lines).to.have.length(3);
    expect(lines[0]).to.match(
      new RegExp(`^created alice; this link sets their password, once, until (${ISO}) \\(24 h; shown this once\\):$`),
    );
    expect(lines[1]).to.match(/^https:\/\/mesh\.example\.org\/invite#token=[A-Za-z0-9_%-]+$/);
    expect(lines[2]).to.equal("");
    const expiresAtMs = Date.parse(/until (\S+)/.exec(lines[0] as string)?.[1] ?? "");
    expect(expiresAtMs - before)
      .to.be.at.least(24 * 3600_000)
      .and.at.most(24 * 3600_000 + 60_000);
    const token = decodeURIComponent((lines[1] as string).split("#token=")[1] as string);
    await inspect(async (store) => {
      expect((await store.acceptInvite(token, PASSWORD))?.name).to.equal("alice");
      expect(await store.acceptInvite(token, PASSWORD), "an invite is used once").to.equal(undefined);
      expect((await store.checkPassword("alice", PASSWORD))?.name).to.equal("alice");
    });
  });

  it("add writes links for INFERMESH_PUBLIC_URL, or http://127.0.0.1:8080, and refuses a URL that is not http(s)", async () => {
    const fromEnv = await infermesh(["users", "add", "bob", "--db", db], { INFERMESH_PUBLIC_URL: "http://10.0.0.5:9000/v1" });
    expect(fromEnv.stdout.split("\n")[1]).to.match(/^http:\/\/10\.0\.0\.5:9000\/invite#token=/);
    const byDefault = await infermesh(["users", "add", "carol"], { INFERMESH_DB: db });
    expect(byDefault.stdout.split("\n")[1]).to.match(/^http:\/\/127\.0\.0\.1:8080\/invite#token=/);
    expect(await infermesh(["users", "add", "dave", "--db", db, "--url", "ftp://mesh.example.org"])).to.deep.equal({
      code: 2,
      stdout: "",
      stderr: "infermesh users add: --url expects an http:// or https:// URL, got 'ftp://mesh.example.org'\n",
    });
    expect((await infermesh(["users", "add", "dave", "--db", db], { INFERMESH_PUBLIC_URL: "mesh.example.org" })).stderr).to.equal(
      "infermesh users add: INFERMESH_PUBLIC_URL expects an http:// or https:// URL, got 'mesh.example.org'\n",
    );
    expect((await inspect((store) => store.listUsers())).map((user) => user.name)).to.deep.equal(["bob", "carol"]);
  });

  it("add refuses a taken name, a bad name and a missing or extra NAME with one line, non-zero", async () => {
    await infermesh(["users", "add", "alice", "--db", db]);
    expect(await infermesh(["users", "add", "alice", "--db", db])).to.deep.equal({
      code: 1,
      stdout: "",
      stderr: "infermesh users add: a user named 'alice' already exists (`infermesh users list` shows them)\n",
    });
    expect(await infermesh(["users", "add", "al ice", "--db", db])).to.deep.equal({
      code: 1,
      stdout: "",
      stderr: 'infermesh users add: invalid user name "al ice": use 1 to 64 characters from A-Z, a-z, 0-9, ".", "_", "@", "-"\n',
    });
    expect(await infermesh(["users", "add", "--db", db])).to.deep.equal({
      code: 2,
      stdout: "",
      stderr: "infermesh users add: a NAME is required (the new account's name)\n",
    });
    expect((await infermesh(["users", "add", "bob", "carol", "--db", db])).stderr).to.equal(
      "infermesh users add: takes one NAME, got 2: bob carol\n",
    );
  });

  it("sign-in-link prints a one-time dashboard link, its token in the fragment, valid 24 h, that signs the user in once", async () => {
    await infermesh(["users", "add", "alice", "--db", db]);
    await inspect((store) => store.setPassword("alice", PASSWORD));
    const before = Date.now();
    const made = await infermesh(["users", "sign-in-link", "alice", "--db", db, "--url", "https://mesh.example.org/v1"]);
    expect([made.code, made.stderr]).to.deep.equal([0, ""]);
    const lines = made.stdout.split("\n");
    expect(lines).to.have.length(3);
    expect(lines[0]).to.match(new RegExp(`^this link signs alice in, once, until (${ISO}) \\(24 h; shown this once\\):$`));
    expect(lines[1]).to.match(/^https:\/\/mesh\.example\.org\/dashboard\/sign-in#token=[A-Za-z0-9_%-]+$/);
    expect(lines[2]).to.equal("");
    const expiresAtMs = Date.parse(/until (\S+)/.exec(lines[0] as string)?.[1] ?? "");
    expect(expiresAtMs - before)
      .to.be.at.least(24 * 3600_000 - 1_000)
      .and.at.most(24 * 3600_000 + 60_000);
    const token = decodeURIComponent((lines[1] as string).split("#token=")[1] as string);
    await inspect(async (store) => {
      expect(await store.acceptInvite(token, "another password"), "a sign-in link sets no password").to.equal(undefined);
      expect((await store.useSignInLink(token))?.name).to.equal("alice");
      expect(await store.useSignInLink(token), "a link is used once").to.equal(undefined);
      expect((await store.checkPassword("alice", PASSWORD))?.name, "the password stays").to.equal("alice");
    });
    const byDefault = await infermesh(["users", "sign-in-link", "alice"], { INFERMESH_DB: db });
    expect(byDefault.stdout.split("\n")[1]).to.match(/^http:\/\/127\.0\.0\.1:8080\/dashboard\/sign-in#token=/);
  });

  it("sign-in-link refuses an unknown name, and says when the account is disabled, where the link waits for it", async () => {
    expect(await infermesh(["users", "sign-in-link", "zoe", "--db", db])).to.deep.equal({
      code: 1,
      stdout: "",
      stderr: "infermesh users sign-in-link: no user named 'zoe' (`infermesh users list` shows them)\n",
    });
    expect((await infermesh(["users", "sign-in-link", "--db", db])).stderr).to.equal(
      "infermesh users sign-in-link: a NAME is required (`infermesh users list` shows them)\n",
    );
    await infermesh(["users", "add", "bob", "--db", db]);
    await infermesh(["users", "disable", "bob", "--db", db]);
    const made = await infermesh(["users", "sign-in-link", "bob", "--db", db]);
    expect(made.code).to.equal(0);
    expect(made.stderr).to.equal("bob is disabled: the link works once `infermesh users enable bob` enables the account\n");
    const token = decodeURIComponent(made.stdout.split("\n")[1]?.split("#token=")[1] as string);
    expect(await inspect((store) => store.useSignInLink(token))).to.equal(undefined);
    await infermesh(["users", "enable", "bob", "--db", db]);
    expect((await inspect((store) => store.useSignInLink(token)))?.name).to.equal("bob");
  });

  it("list shows each account's name, creation, when it was disabled and whether it has a password", async () => {
    expect(await infermesh(["users", "list", "--db", db])).to.deep.equal({
      code: 0,
      stdout: "NAME  CREATED  DISABLED  HAS_PASSWORD\n",
      stderr: "",
    });
    const link = (await infermesh(["users", "add", "alice", "--db", db])).stdout.split("\n")[1] as string;
    await infermesh(["users", "add", "bob", "--db", db]);
    await inspect((store) => store.acceptInvite(decodeURIComponent(link.split("#token=")[1] as string), PASSWORD));
    await infermesh(["users", "disable", "bob", "--db", db]);
    const listed = await infermesh(["users", "list", "--db", db]);
    expect([listed.code, listed.stderr]).to.deep.equal([0, ""]);
    const lines = listed.stdout.split("\n");
    expect(lines[0]).to.match(/^NAME {3}CREATED {19}DISABLED {18}HAS_PASSWORD$/);
    expect(lines[1]).to.match(new RegExp(`^alice  ${ISO}  - {25}yes$`));
    expect(lines[2]).to.match(new RegExp(`^bob    ${ISO}  ${ISO}  no$`));
    expect(lines.slice(3)).to.deep.equal([""]);
  });

  it("disable turns an account's API keys off until enable; an unknown name is one line, exit 1", async () => {
    await infermesh(["users", "add", "alice", "--db", db]);
    const key = (await infermesh(["keys", "create", "--user", "alice", "--db", db])).stdout.trim();
    const works = () => inspect(async (store) => (await store.authenticate(key)) !== undefined);
    expect(await works()).to.equal(true);
    expect(await infermesh(["users", "disable", "alice", "--db", db])).to.deep.equal({ code: 0, stdout: "disabled alice\n", stderr: "" });
    expect(await works()).to.equal(false);
    expect(await infermesh(["users", "enable", "alice", "--db", db])).to.deep.equal({ code: 0, stdout: "enabled alice\n", stderr: "" });
    expect(await works()).to.equal(true);
    for (const command of ["disable", "enable", "logout", "password"]) {
      expect(await infermesh(["users", command, "zoe", "--db", db]), command).to.deep.equal({
        code: 1,
        stdout: "",
        stderr: `infermesh users ${command}: no user named 'zoe' (\`infermesh users list\` shows them)\n`,
      });
    }
  });

  it("logout ends every session of the user and says how many; password sets a new one, printed once, and ends them too", async () => {
    await infermesh(["users", "add", "alice", "--db", db]);
    const sessions = await inspect(async (store) => {
      const user = await store.findUser("alice");
      return Promise.all([1, 2, 3].map(() => store.createSession(user?.id as string, 3600_000)));
    });
    expect(await infermesh(["users", "logout", "alice", "--db", db])).to.deep.equal({
      code: 0,
      stdout: "ended 3 sessions of alice\n",
      stderr: "",
    });
    expect(await inspect((store) => Promise.all(sessions.map((s) => store.resolveSession(s.sessionId))))).to.deep.equal([
      undefined,
      undefined,
      undefined,
    ]);
    expect((await infermesh(["users", "logout", "alice", "--db", db])).stdout).to.equal("alice had no session signed in\n");

    await inspect(async (store) => store.createSession((await store.findUser("alice"))?.id as string, 3600_000));
    const reset = await infermesh(["users", "password", "alice", "--db", db]);
    expect([reset.code, reset.stderr]).to.deep.equal([0, ""]);
    const match = /^new password of alice \(shown this once, stored hashed\): ([A-Za-z0-9_-]{16})\nended 1 session of alice\n$/.exec(
      reset.stdout,
    );
    expect(match, reset.stdout).not.to.equal(null);
    expect((await inspect((store) => store.checkPassword("alice", match?.[1] as string)))?.name).to.equal("alice");
  });

  it("every command refuses a --db path that does not exist, saying how a database is made, and makes none", async () => {
    const missing = join(dir, "nope", "infermesh.db");
    const expected = (command: string, setting: string) =>
      `infermesh users ${command}: ${setting} names '${missing}', which does not exist; ` +
      `\`infermesh registry --db ${missing}\` makes the database when it starts (\`infermesh dev\` makes one in its --data folder)\n`;
    for (const argv of [
      ["add", "alice"],
      ["sign-in-link", "alice"],
      ["list"],
      ["disable", "alice"],
      ["enable", "alice"],
      ["logout", "alice"],
      ["password", "alice"],
    ]) {
      expect(await infermesh(["users", ...argv, "--db", missing]), argv[0]).to.deep.equal({
        code: 2,
        stdout: "",
        stderr: expected(argv[0] as string, "--db"),
      });
    }
    expect((await infermesh(["users", "list"], { INFERMESH_DB: missing })).stderr).to.equal(expected("list", "INFERMESH_DB"));
    expect(existsSync(join(dir, "nope"))).to.equal(false);
  });
});
