import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import OpenAI from "openai";
import { createSqliteStore } from "../services/registry/store/sqlite-store.js";
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
        ["sim-llama", "llm"],
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

  it("shows the dev user's dashboard password on the first start only, and lets one key run 64 streams at once", async () => {
    const data = mkdtempSync(join(tmpdir(), "infermesh-dev-"));
    const db = join(data, "infermesh.db");
    const start = () => spawnCli(["dev", "--port", "0", "--registry-port", "0", "--data", data]);
    const ready = (dev: CliProcess) =>
      waitFor("the OPENAI_* lines", () => (/^OPENAI_API_KEY=(\S+)$/m.exec(dev.stdout()) ? dev.stdout() : undefined), 30_000, 50);
    const stop = async (dev: CliProcess) => {
      if (dev.child.exitCode === null) dev.child.kill("SIGINT");
      return (await dev.exited).code;
    };
    const checkPassword = async (password: string) => {
      const store = createSqliteStore({ path: db });
      try {
        return (await store.checkPassword("dev", password))?.name;
      } finally {
        await store.close();
      }
    };
    try {
      const first = start();
      let password: string;
      try {
        const stdout = await ready(first);
        const url = /^OPENAI_BASE_URL=(\S+)\/v1$/m.exec(stdout)?.[1] as string;
        const key = /^OPENAI_API_KEY=(\S+)$/m.exec(stdout)?.[1] as string;
        const shown = /^# dashboard: (\S+) \(user dev, password ([A-Za-z0-9_-]{16}) — shown once, stored hashed\)$/m.exec(stdout);
        expect(shown, stdout).not.to.equal(null);
        expect(shown?.[1]).to.equal(`${url}/`);
        password = shown?.[2] as string;
        expect(stdout.split(password)).to.have.length(2);

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
      expect(await checkPassword(password)).to.equal("dev");

      const second = start();
      try {
        const stdout = await ready(second);
        expect(stdout).to.match(
          new RegExp(
            `^# dashboard: http://127\\.0\\.0\\.1:\\d+/ \\(user dev, with the password shown on the first start; a new one: infermesh users password dev --db ${db.replaceAll(".", "\\.")}\\)$`,
            "m",
          ),
        );
        expect(stdout).not.to.contain(password);
      } finally {
        expect(await stop(second)).to.equal(0);
      }
      expect(await checkPassword(password), "the second start kept the password").to.equal("dev");
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });
});
