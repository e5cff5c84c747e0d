import { readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { createSimulator, expectedGeneratedPng, type Simulator, testWav } from "../services/sim/simulator.js";
import { spawnCli } from "./support/cli-process.js";
import { type Mesh, startMesh } from "./support/mesh-fixture.js";
import { waitFor } from "./support/wait-for.js";

/** TCP_LISTEN is the state /proc/net/tcp gives a listening socket. */
const TCP_LISTEN = "0A";
/** TCP_ESTABLISHED is the state /proc/net/tcp gives a connected socket. */
const TCP_ESTABLISHED = "01";
/** SAMPLE_EVERY_MS is how often the agent's sockets are read while it serves: far shorter than any answer below. */
const SAMPLE_EVERY_MS = 10;
/** TTFT_MS holds every answer back at the model server, so that all calls are open at the agent at the same time. */
const TTFT_MS = 300;

/** TcpSocket is one line of /proc/<pid>/net/tcp*: its state and the port at its far end (0 for a listening one). */
interface TcpSocket {
  readonly local: string;
  readonly remotePort: number;
  readonly state: string;
  readonly inode: string;
}

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
function tcpSockets(pid: number): TcpSocket[] {
  const mine = socketInodes(pid);
  return ["tcp", "tcp6"].flatMap((table) =>
    readFileSync(`/proc/${pid}/net/${table}`, "utf8")
      .split("\n")
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((fields) => fields.length > 9 && mine.has(fields[9] as string))
      .map((fields) => ({
        local: fields[1] as string,
        remotePort: Number.parseInt((fields[2] as string).split(":")[1] ?? "", 16),
        state: fields[3] as string,
        inode: fields[9] as string,
      })),
  );
}

/**
 * watchSockets reads the process's sockets every SAMPLE_EVERY_MS until stopped, so that a socket that lived only
 * between two requests is seen too; stop returns every reading, the last one taken at the stop.
 */
function watchSockets(pid: number): { stop(): TcpSocket[] } {
  const seen: TcpSocket[] = [...tcpSockets(pid)];
  const timer = setInterval(() => seen.push(...tcpSockets(pid)), SAMPLE_EVERY_MS);
  return {
    stop() {
      clearInterval(timer);
      seen.push(...tcpSockets(pid));
      return seen;
    },
  };
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
      const sim = { ttft_ms: TTFT_MS };
      const post = (path: string, body: Record<string, unknown> | FormData) =>
        body instanceof FormData
          ? fetch(`${mesh.gateway.baseUrl}${path}`, { method: "POST", headers: auth, body })
          : fetch(`${mesh.gateway.baseUrl}${path}`, { method: "POST", headers: json, body: JSON.stringify({ ...body, sim }) });
      const form = (fields: Record<string, string | Blob>) => {
        const data = new FormData();
        for (const [name, value] of Object.entries(fields)) data.set(name, value);
        data.set("sim", JSON.stringify(sim));
        return data;
      };
      const audio = new Blob([testWav(1)], { type: "audio/wav" });
      const png = new Blob([expectedGeneratedPng("a cat", { width: 64, height: 64 })], { type: "image/png" });
      const messages = [{ role: "user", content: "hi" }];
      const calls: [string, () => Promise<Response>][] = [
        ["chat", () => post("/v1/chat/completions", { model: "sim-llama", messages })],
        ["chat streamed", () => post("/v1/chat/completions", { model: "sim-llama", stream: true, messages })],
        ["completions", () => post("/v1/completions", { model: "sim-llama", prompt: "once" })],
        ["speech", () => post("/v1/audio/speech", { model: "sim-voice", input: "hello", voice: "alloy" })],
        ["transcriptions", () => post("/v1/audio/transcriptions", form({ model: "sim-whisper", file: audio }))],
        ["translations", () => post("/v1/audio/translations", form({ model: "sim-whisper", file: audio }))],
        ["images generations", () => post("/v1/images/generations", { model: "sim-diffusion", prompt: "a cat", size: "256x256" })],
        ["images edits", () => post("/v1/images/edits", form({ model: "sim-diffusion", prompt: "hat", size: "256x256", image: png }))],
      ];

      // Watch from before the first call until every answer has been read: the agent listens at no point.
      const watch = watchSockets(pid);
      const answers = await Promise.all(calls.map(([, call]) => call()));
      // Every answer has begun: the agent is mid-service, holding its link and its connections to the model server.
      const during = tcpSockets(pid);
      const outcomes = await Promise.all(
        answers.map(async (response, i) => `${calls[i]?.[0]}: ${response.status} ${(await response.arrayBuffer()).byteLength > 0}`),
      );
      const seen = watch.stop();
      expect(outcomes).to.deep.equal(calls.map(([name]) => `${name}: 200 true`));

      const gatewayPort = Number(new URL(mesh.gateway.baseUrl).port);
      const upstreamPort = Number(new URL(url).port);
      const connected = seen.filter((socket) => socket.state === TCP_ESTABLISHED);
      expect(seen.filter((socket) => socket.state === TCP_LISTEN)).to.deep.equal([]);
      // Outbound only, and only to the two ends it was given: its gateway and its model server.
      expect(connected.filter((socket) => socket.remotePort !== gatewayPort && socket.remotePort !== upstreamPort)).to.deep.equal([]);
      expect(
        during.some((socket) => socket.state === TCP_ESTABLISHED && socket.remotePort === gatewayPort),
        "the link",
      ).to.equal(true);
      expect(
        during.some((socket) => socket.state === TCP_ESTABLISHED && socket.remotePort === upstreamPort),
        "calls to the model server",
      ).to.equal(true);
    } finally {
      agent.child.kill("SIGTERM");
      await agent.exited;
    }
  });
});
