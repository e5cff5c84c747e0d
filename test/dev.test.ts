import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import OpenAI from "openai";
import { expectedCompletionText } from "../services/sim/simulator.js";
import { type CliProcess, spawnCli } from "./support/cli-process.js";
import { waitFor } from "./support/wait-for.js";

// `npm start` as a newcomer runs it: one command, two export lines, a working OpenAI endpoint, a clean Ctrl-C.

describe("infermesh dev", function () {
  this.timeout(60_000);

  it("prints exportable OPENAI_BASE_URL and OPENAI_API_KEY lines that work, and stops cleanly on Ctrl-C", async () => {
    const data = mkdtempSync(join(tmpdir(), "infermesh-dev-"));
    const dev = spawnCli(["dev", "--port", "0", "--registry-port", "0", "--data", data]);
    try {
      const env = await waitFor(
        "the OPENAI_* lines",
        () => {
          const lines = dev.stdout().split("\n");
          const url = lines.find((l) => l.startsWith("OPENAI_BASE_URL="))?.slice("OPENAI_BASE_URL=".length);
          const key = lines.find((l) => l.startsWith("OPENAI_API_KEY="))?.slice("OPENAI_API_KEY=".length);
          return url && key ? { url, key } : undefined;
        },
        30_000,
        50,
      );
      expect(
        dev
          .stdout()
          .split("\n")
          .filter((l) => l && !l.startsWith("#") && !l.startsWith("OPENAI_")),
      ).to.deep.equal([]);
      expect(env.url).to.match(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
      expect(statSync(join(data, "dev-api-key")).mode & 0o777).to.equal(0o600);
      const client = new OpenAI({ baseURL: env.url, apiKey: env.key, maxRetries: 0 });
      const models = (await client.models.list()).data as unknown as { id: string; service_type: string }[];
      expect(models.map((m) => [m.id, m.service_type])).to.deep.equal([
        ["sim-diffusion", "image"],
        ["sim-embed", "embedding"],
        ["sim-llama", "llm"],
        ["sim-rerank", "rerank"],
        ["sim-voice", "tts"],
        ["sim-whisper", "stt"],
      ]);
      const messages = [{ role: "user" as const, content: "hello" }];
      const chat = await client.chat.completions.create({ model: "sim-llama", messages, max_tokens: 3 });
      expect(chat.choices[0]?.message.content).to.equal(expectedCompletionText(messages, 3));

      // The printed way to add an agent works as printed: it dials the gateway's public port (the base URL without
      // /v1), with the key read from dev's own file, never on argv, and the gateway then routes to it.
      const hint = dev
        .stdout()
        .split("\n")
        .find((line) => line.startsWith("# more agents join with: "));
      expect(hint).to.match(
        /^# more agents join with: infermesh agent --mesh http:\/\/127\.0\.0\.1:\d+ --api-key-file \S+ --upstream llm=URL$/,
      );
      expect(hint)
        .to.contain(`--mesh ${env.url.replace(/\/v1$/, "")} `)
        .and.to.contain(`--api-key-file ${join(data, "dev-api-key")} `)
        .and.not.to.contain(env.key);
      const simUrl = /# simulator ready: (http:\/\/\S+),/.exec(dev.stdout())?.[1];
      const args = (hint as string).slice("# more agents join with: infermesh ".length).replace("llm=URL", `llm=${simUrl}`).split(" ");
      const joined = spawnCli([...args, "--id", "joined-agent", "--name", "joined-box"]);
      try {
        expect(await joined.waitForLog("attached to the mesh", 30_000)).to.deep.include({ providerId: "joined-agent" });
        await waitFor(
          "the gateway to route sim-llama to the joined agent too",
          async () => {
            const owners = (await client.models.list()).data.find((m) => m.id === "sim-llama")?.owned_by.split(",") ?? [];
            return owners.includes("joined-box") && owners.includes("dev-agent");
          },
          10_000,
          50,
        );
      } finally {
        joined.child.kill("SIGTERM");
        expect((await joined.exited).code).to.equal(0);
      }

      dev.child.kill("SIGINT");
      const result = await dev.exited;
      expect(result.code).to.equal(0);
    } finally {
      if (dev.child.exitCode === null) dev.child.kill("SIGKILL");
      await dev.exited;
      rmSync(data, { recursive: true, force: true });
    }
  });

  it("prints a new one-time dashboard sign-in link on every start, and lets one key run 64 streams at once", async () => {
    const data = mkdtempSync(join(tmpdir(), "infermesh-dev-"));
    const db = join(data, "infermesh.db");
    const start = () => spawnCli(["dev", "--port", "0", "--registry-port", "0", "--data", data]);
    const ready = (dev: CliProcess) =>
      waitFor("the OPENAI_* lines", () => (/^OPENAI_API_KEY=(\S+)$/m.exec(dev.stdout()) ? dev.stdout() : undefined), 30_000, 50);
    const stop = async (dev: CliProcess) => {
      if (dev.child.exitCode === null) dev.child.kill("SIGINT");
      return (await dev.exited).code;
    };
    /** dashboardLink reads the dashboard line: the link's base URL and token, and the command that makes another. */
    const dashboardLink = (stdout: string) => {
      const shown =
        /^# dashboard: (http:\/\/127\.0\.0\.1:\d+)\/dashboard\/sign-in#token=([A-Za-z0-9_-]{43}) \(one-time sign-in link for user dev, valid 24 h; another: infermesh (users sign-in-link dev --url (\S+) --db (\S+))\)$/m.exec(
          stdout,
        );
      expect(shown, stdout).not.to.equal(null);
      const [, url, token, another, anotherUrl, anotherDb] = shown as unknown as string[];
      expect([anotherUrl, anotherDb]).to.deep.equal([url, db]);
      return { url: url as string, token: token as string, another: (another as string).split(" ") };
    };
    /** signIn posts a link's token as the dashboard's sign-in page does, and reads who the session cookie is. */
    const signIn = async (url: string, token: string) => {
      const response = await fetch(`${url}/api/auth/sign-in-link`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token }),
      });
      const cookie = /^(infermesh_session=[^;]+);/.exec(response.headers.get("set-cookie") ?? "")?.[1];
      if (response.status !== 200 || cookie === undefined) return { status: response.status, me: undefined };
      const me = await fetch(`${url}/api/me`, { headers: { cookie } });
      return { status: response.status, me: (await me.json()) as unknown };
    };
    try {
      const first = start();
      let firstToken: string;
      try {
        const stdout = await ready(first);
        const url = /^OPENAI_BASE_URL=(\S+)\/v1$/m.exec(stdout)?.[1] as string;
        const key = /^OPENAI_API_KEY=(\S+)$/m.exec(stdout)?.[1] as string;
        const link = dashboardLink(stdout);
        expect(link.url).to.equal(url);
        expect(stdout, "no password any more").not.to.match(/password/i);
        firstToken = link.token;
        expect((await signIn(url, link.token)).me).to.deep.include({ name: "dev", auth: "session" });
        expect(await signIn(url, link.token), "the link works once").to.deep.equal({ status: 401, me: undefined });

        // No per-key cap on streams: a batch of 64 from one local user is queued by the agent, never refused.
        const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 });
        const messages = [{ role: "user" as const, content: "hello" }];
        const texts = await Promise.all(
          Array.from({ length: 64 }, async () => {
            const stream = await client.chat.completions.create({ model: "sim-llama", messages, max_tokens: 3, stream: true });
            let text = "";
            for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
            return text;
          }),
        );
        expect(new Set(texts)).to.deep.equal(new Set([expectedCompletionText(messages, 3)]));
        expect((await fetch(`${url}/metrics`)).status, "dev serves /metrics on its one port").to.equal(200);
      } finally {
        expect(await stop(first)).to.equal(0);
      }

      const second = start();
      try {
        const link = dashboardLink(await ready(second));
        expect(link.token, "a new link at every start").not.to.equal(firstToken);
        expect((await signIn(link.url, link.token)).me).to.deep.include({ name: "dev", auth: "session" });
        // The printed command makes another link for the running dev, beside it on the same database.
        const another = await spawnCli(link.another).exited;
        expect([another.code, another.stderr]).to.deep.equal([0, ""]);
        const made = /^(http:\/\/127\.0\.0\.1:\d+)\/dashboard\/sign-in#token=([A-Za-z0-9_-]{43})$/m.exec(another.stdout);
        expect(made?.[1], another.stdout).to.equal(link.url);
        expect((await signIn(link.url, made?.[2] as string)).me).to.deep.include({ name: "dev", auth: "session" });
      } finally {
        expect(await stop(second)).to.equal(0);
      }
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });
});
