import { readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { createSimulator, type Simulator } from "../services/sim/simulator.js";
import { spawnCli } from "./support/cli-process.js";
import { type Mesh, startMesh } from "./support/mesh-fixture.js";
import { waitFor } from "./support/wait-for.js";

/** TCP_LISTEN is the state /proc/net/tcp gives a listening socket. */
const TCP_LISTEN = "0A";

/** socketInodes are the inodes of the sockets a process holds open, read from its file descriptors. */
function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match?.[1]) inodes.add(match[1]);
    } catch {
      // The descriptor closed while we read the directory.
    }
  }
  return inodes;
}

/** tcpSockets lists the process's TCP sockets (IPv4 and IPv6) with their state, from /proc/<pid>/net/tcp*. */
function tcpSockets(pid: number): { local: string; state: string; inode: string }[] {
  const mine = socketInodes(pid);
  return ["tcp", "tcp6"].flatMap((table) =>
    readFileSync(`/proc/${pid}/net/${table}`, "utf8")
      .split("\n")
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((fields) => fields.length > 9 && mine.has(fields[9] as string))
      .map((fields) => ({ local: fields[1] as string, state: fields[3] as string, inode: fields[9] as string })),
  );
}

describe("an agent holds no listening socket", function () {
  this.timeout(90_000);
  let mesh: Mesh;
  let simulator: Simulator;
  let key: string;
  let url: string;

  before(async () => {
    mesh = await startMesh();
    key = await mesh.registry.keyFor("alice");
    simulator = createSimulator({
      models: [
        { id: "sim-llama", kind: "llm" },
        { id: "sim-whisper", kind: "stt" },
        { id: "sim-diffusion", kind: "image" },
        { id: "sim-voice", kind: "tts" },
      ],
    });
    url = (await simulator.listen()).url;
  });

  after(async () => {
    await mesh.stop();
    await simulator.close();
  });

  it("serves chat, completions and all four media endpoints through the gateway with only outbound connections", async () => {
    const config = join(tmpdir(), `infermesh-outbound-${process.pid}.json`);
    writeFileSync(
      config,
      JSON.stringify({
        upstreams: [
          { type: "llm", url, models: { expose: ["sim-llama"] } },
          { type: "stt", url, models: { expose: ["sim-whisper"] } },
          { type: "image", url, models: { expose: ["sim-diffusion"] } },
          { type: "tts", url, models: { expose: ["sim-voice"] } },
        ],
      }),
    );
    const agent = spawnCli(["agent", "--mesh", `${mesh.gateway.baseUrl}/v1`, "--config", config, "--name", "outbound-box"], {
      INFERMESH_API_KEY: key,
    });
    try {
      await agent.waitForLog("agent ready");
      await waitFor("the agent's four models routable", () =>
        [...mesh.gateway.gateway.table.providers()].some((p) => p.name === "outbound-box" && p.models.length === 4),
      );
      const pid = agent.child.pid as number;
      const auth = { authorization: `Bearer ${key}` };
      const json = { ...auth, "content-type": "application/json" };
      const post = (path: string, body: string | FormData, headers: Record<string, string> = json) =>
        fetch(`${mesh.gateway.baseUrl}${path}`, { method: "POST", headers, body });
      const form = (fields: Record<string, string | Blob>) => {
        const data = new FormData();
        for (const [name, value] of Object.entries(fields)) data.set(name, value);
        return data;
      };
      const png = await (await post("/v1/images/generations", JSON.stringify({ model: "sim-diffusion", prompt: "a cat" }))).json();
      const image = Buffer.from((png as { data: { b64_json: string }[] }).data[0]?.b64_json ?? "", "base64");
      const answers = await Promise.all([
        post("/v1/chat/completions", JSON.stringify({ model: "sim-llama", messages: [{ role: "user", content: "hi" }] })),
        post("/v1/chat/completions", JSON.stringify({ model: "sim-llama", stream: true, messages: [{ role: "user", content: "hi" }] })),
        post("/v1/completions", JSON.stringify({ model: "sim-llama", prompt: "once" })),
        post("/v1/audio/speech", JSON.stringify({ model: "sim-voice", input: "hello", voice: "alloy" })),
        post("/v1/audio/transcriptions", form({ model: "sim-whisper", file: new Blob([Buffer.alloc(4096, 1)]) }), auth),
        post("/v1/images/edits", form({ model: "sim-diffusion", prompt: "hat", image: new Blob([image], { type: "image/png" }) }), auth),
      ]);
      // Read while the answers are open, and again after: the agent listened at no point.
      const during = tcpSockets(pid);
      const statuses = await Promise.all(
        answers.map(async (response) => {
          await response.arrayBuffer();
          return response.status;
        }),
      );
      expect(statuses).to.deep.equal([200, 200, 200, 200, 200, 200]);
      expect(image.length).to.be.greaterThan(0);
      const after = tcpSockets(pid);
      expect(during.length).to.be.greaterThan(0, "the agent's own connections are found");
      expect(during.filter((socket) => socket.state === TCP_LISTEN)).to.deep.equal([]);
      expect(after.filter((socket) => socket.state === TCP_LISTEN)).to.deep.equal([]);
    } finally {
      agent.child.kill("SIGTERM");
      await agent.exited;
    }
  });
});
