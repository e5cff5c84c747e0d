/**
 * stream-memory measures what one held stream costs in resident memory in each layer the mesh's streams pass
 * through, with nothing of the mesh around them: Node's HTTP/2 (client and server, as between gateway and agent), an
 * HTTP/1.1 request through undici to a local server (as from agent to model server), and Node's HTTP/1.1 server (as a
 * client's stream into the gateway). It shows the floor under the mesh's own figure in `npm run bench` (hold phase):
 * each layer holds native buffers and objects per stream that no code above it can give back.
 *
 * Run: node --expose-gc --import tsx bench/stream-memory.ts [--streams 3000]
 */
import { Agent, createServer, request as httpRequest } from "node:http";
import * as http2 from "node:http2";
import { parseArgs } from "node:util";
import { Pool } from "undici";

const { values } = parseArgs({ options: { streams: { type: "string", default: "3000" } } });
const STREAMS = Number(values.streams);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");

/** perStream holds STREAMS streams opened by open() and returns the growth of RSS and heap per stream, in KB. */
async function perStream(open: () => Promise<unknown>): Promise<{ rssKb: number; heapKb: number }> {
  gc?.();
  const before = process.memoryUsage();
  const held: unknown[] = [];
  for (let i = 0; i < STREAMS; i++) held.push(await open());
  gc?.();
  const after = process.memoryUsage();
  return { rssKb: (after.rss - before.rss) / STREAMS / 1024, heapKb: (after.heapUsed - before.heapUsed) / STREAMS / 1024 };
}

async function listen(server: { listen: (port: number, host: string, cb: () => void) => void; address: () => unknown }): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as { port: number }).port;
}

const sseServer = createServer((_req, res) => {
  res.writeHead(200, { "content-type": "text/event-stream" });
  res.write("data: {}\n\n");
});
sseServer.maxConnections = Number.MAX_SAFE_INTEGER;
const ssePort = await listen(sseServer);

const h2Server = http2.createServer({ maxSessionMemory: Number.MAX_SAFE_INTEGER });
h2Server.on("stream", (stream) => {
  stream.respond({ ":status": 200 });
  stream.write("x");
});
const h2Port = await listen(h2Server);
const h2Session = http2.connect(`http://127.0.0.1:${h2Port}`, { maxSessionMemory: Number.MAX_SAFE_INTEGER });
await new Promise((resolve) => h2Session.once("connect", resolve));

const pool = new Pool(`http://127.0.0.1:${ssePort}`, { connections: STREAMS + 1 });
const agent = new Agent({ keepAlive: true, maxSockets: Number.MAX_SAFE_INTEGER });

const layers: Record<string, () => Promise<unknown>> = {
  "node:http2 stream (client + server)": () =>
    new Promise((resolve) => {
      const stream = h2Session.request({ ":method": "POST" }, { endStream: false });
      stream.once("data", () => resolve(stream));
    }),
  "undici request + HTTP/1.1 server": async () => {
    const response = await pool.request({ method: "POST", path: "/", body: "{}" });
    response.body.on("data", () => {});
    return response;
  },
  "node:http client + HTTP/1.1 server": () =>
    new Promise((resolve) => {
      const req = httpRequest({ port: ssePort, host: "127.0.0.1", method: "POST", agent }, (res) => res.once("data", () => resolve(res)));
      req.end("{}");
    }),
};

console.log(`memory per held stream, ${STREAMS} streams each (Node ${process.version}); both ends live in this process`);
for (const [name, open] of Object.entries(layers)) {
  const { rssKb, heapKb } = await perStream(open);
  console.log(`${name.padEnd(38)} rss ${rssKb.toFixed(1).padStart(5)} KB   heap ${heapKb.toFixed(1).padStart(5)} KB`);
}
process.exit(0);
