import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import http2 from "node:http2";
import net from "node:net";
import { Readable } from "node:stream";
import tls from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import Fastify, { type FastifyInstance } from "fastify";
import { Agent, request } from "undici";
import { testCertificates } from "../../test/support/test-certificates.js";
import { waitFor } from "../../test/support/wait-for.js";
import { createSharedPort, type SharedPort, type SharedPortOptions } from "./shared-port.js";

const BIG_BODY_BYTES = 5 * 1024 * 1024;
const SSE_BODY = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
const HTTP2_PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/** Running is a tiny Fastify app on a shared port, with the server-side sockets it accepted. */
interface Running {
  readonly app: FastifyInstance;
  readonly shared: SharedPort;
  readonly port: number;
  readonly accepted: net.Socket[];
}

/**
 * echoStream answers an HTTP/2 stream with a marker header and sends every message back, as a bidi gRPC call would;
 * gRPC's length-prefixed messages come back as they went, and the OK status goes in the trailers.
 */
function echoStream(stream: http2.ServerHttp2Stream): void {
  stream.on("error", () => {});
  stream.respond({ ":status": 200, "content-type": "application/grpc", "x-handled-by": "on-stream" }, { waitForTrailers: true });
  stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
  stream.on("data", (chunk: Buffer) => stream.write(chunk));
  stream.on("end", () => stream.end());
}

async function start(secure: boolean, extra: Partial<SharedPortOptions> = {}): Promise<Running> {
  const { cert, key } = testCertificates();
  const shared = createSharedPort({ onStream: echoStream, ...(secure ? { tls: { cert, key } } : {}), ...extra });
  const app = Fastify({ serverFactory: shared.serverFactory, bodyLimit: 2 * BIG_BODY_BYTES });
  app.addContentTypeParser("application/octet-stream", { parseAs: "buffer" }, (_request, body, done) => done(null, body));
  app.get("/hello", async (req) => ({ hello: "world", clientPort: req.socket.remotePort }));
  app.post("/echo", async (req, reply) => reply.type("application/octet-stream").send(req.body));
  app.get("/events", async (_req, reply) =>
    reply.type("text/event-stream").send(Readable.from(["data: 1\n\n", "data: 2\n\n", "data: 3\n\n"])),
  );
  const accepted: net.Socket[] = [];
  app.server.on("connection", (socket: net.Socket) => accepted.push(socket));
  await app.listen({ host: "127.0.0.1", port: 0 });
  const { port } = app.server.address() as net.AddressInfo;
  return { app, shared, port, accepted };
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** closing resolves when the socket or session has closed, at once if it already has. */
function closing(target: net.Socket | http2.ClientHttp2Session): Promise<unknown> {
  return target.closed ? Promise.resolve() : once(target, "close");
}

async function withDeadline<T>(what: string, promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** echoRoundTrip opens a bidi stream on the session and sends messages one at a time, each after the last came back. */
async function echoRoundTrip(session: http2.ClientHttp2Session, messages: readonly string[]) {
  const stream = session.request({ ":method": "POST", ":path": "/infermesh.v1.Test/Echo", "content-type": "application/grpc" });
  const [headers] = (await once(stream, "response")) as [http2.IncomingHttpHeaders];
  let received = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    received += chunk;
  });
  const echoed: string[] = [];
  for (const message of messages) {
    const before = received.length;
    stream.write(message);
    echoed.push(await waitFor(`the echo of ${message}`, () => received.length >= before + message.length && received.slice(before)));
  }
  stream.end();
  await once(stream, "close");
  return { status: headers[":status"], handledBy: headers["x-handled-by"], echoed };
}

/** rawExchange sends a request over an open socket, each of the first `trickle` bytes in its own read, and reads to the end. */
async function rawExchange(socket: net.Socket, serverSide: () => net.Socket | undefined, bytes: Buffer, trickle: number) {
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  const ended = once(socket, "end");
  for (let sent = 0; sent < Math.min(trickle, bytes.length); sent++) {
    socket.write(bytes.subarray(sent, sent + 1));
    await waitFor(`the server to read byte ${sent + 1}`, () => (serverSide()?.bytesRead ?? 0) >= sent + 1);
  }
  socket.write(bytes.subarray(trickle));
  await ended;
  return Buffer.concat(chunks).toString("latin1");
}

/**
 * tricklingRelay is a TCP relay to the port that passes a client's first `trickle` bytes one read at a time: the
 * server has read each byte before the next is sent.
 */
async function tricklingRelay(target: Running, trickle: number): Promise<net.Server> {
  const relay = net.createServer(async (client) => {
    const upstream = net.connect(target.port, "127.0.0.1");
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    upstream.pipe(client);
    await once(upstream, "connect");
    const serverSide = await waitFor("the server to accept the relayed connection", () => target.accepted.at(-1));
    let sent = 0;
    for await (const chunk of client as AsyncIterable<Buffer>) {
      let rest = chunk;
      while (sent < trickle && rest.length > 0) {
        upstream.write(rest.subarray(0, 1));
        rest = rest.subarray(1);
        sent++;
        const want = sent;
        await waitFor(`the server to read byte ${want}`, () => serverSide.bytesRead >= want);
      }
      if (rest.length > 0) upstream.write(rest);
    }
    upstream.end();
  });
  relay.listen(0, "127.0.0.1");
  await once(relay, "listening");
  return relay;
}

for (const secure of [false, true]) {
  const scheme = secure ? "https" : "http";
  describe(`createSharedPort (${secure ? "TLS" : "cleartext"})`, () => {
    let running: Running;
    const cleanups: Array<() => unknown> = [];
    beforeEach(async () => {
      running = await start(secure);
    });
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
      await running.app.close();
      expect(running.shared.http2Sessions()).to.equal(0);
    });

    function http2Connect(): http2.ClientHttp2Session {
      const session = http2.connect(`${scheme}://127.0.0.1:${running.port}`, secure ? { ca: testCertificates().ca } : {});
      session.on("error", () => {});
      cleanups.push(() => session.destroy());
      return session;
    }

    it("serves HTTP/1.1 keep-alive through Fastify: several requests, a 5 MiB body echoed byte for byte, SSE, one connection", async () => {
      const dispatcher = new Agent({ connections: 1, ...(secure ? { connect: { ca: testCertificates().ca } } : {}) });
      cleanups.push(() => dispatcher.close());
      const base = `${scheme}://127.0.0.1:${running.port}`;

      const first = await request(`${base}/hello`, { dispatcher });
      const firstBody = (await first.body.json()) as { hello: string; clientPort: number };
      expect({ status: first.statusCode, hello: firstBody.hello }).to.deep.equal({ status: 200, hello: "world" });

      const big = randomBytes(BIG_BODY_BYTES);
      const echo = await request(`${base}/echo`, {
        dispatcher,
        method: "POST",
        headers: { "content-type": "application/octet-stream" },
        body: big,
      });
      const echoed = Buffer.from(await echo.body.arrayBuffer());
      expect({ status: echo.statusCode, bytes: echoed.length, sha256: sha256(echoed) }).to.deep.equal({
        status: 200,
        bytes: BIG_BODY_BYTES,
        sha256: sha256(big),
      });

      const events = await request(`${base}/events`, { dispatcher });
      expect({ status: events.statusCode, type: events.headers["content-type"], body: await events.body.text() }).to.deep.equal({
        status: 200,
        type: "text/event-stream",
        body: SSE_BODY,
      });

      const last = await request(`${base}/hello`, { dispatcher });
      const lastBody = (await last.body.json()) as { clientPort: number };
      expect(lastBody.clientPort, "the same client connection").to.equal(firstBody.clientPort);
      expect(running.accepted.length, "connections accepted").to.equal(1);
    });

    it("hands HTTP/2 streams to onStream: a bidi stream echoes several messages, on one session", async () => {
      const session = http2Connect();
      const messages = ["one", "two", "three"];
      expect(await echoRoundTrip(session, messages)).to.deep.equal({ status: 200, handledBy: "on-stream", echoed: messages });
      expect(await echoRoundTrip(session, ["again"])).to.deep.equal({ status: 200, handledBy: "on-stream", echoed: ["again"] });
      expect(session.alpnProtocol).to.equal(secure ? "h2" : "h2c");
      expect(running.shared.http2Sessions()).to.equal(1);
    });

    it("carries a stock grpc-js client's bidi call to onStream and back, status OK", async () => {
      const credentials = secure ? grpc.credentials.createSsl(testCertificates().ca) : grpc.credentials.createInsecure();
      const client = new grpc.Client(`127.0.0.1:${running.port}`, credentials);
      cleanups.push(() => client.close());
      const identity = (bytes: Buffer) => bytes;
      const call = client.makeBidiStreamRequest("/infermesh.v1.Test/Echo", identity, identity);
      const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
      const received: string[] = [];
      call.on("data", (message: Buffer) => received.push(message.toString()));
      for (const [index, message] of ["hello", "agent", "link"].entries()) {
        call.write(Buffer.from(message));
        await waitFor(`the echo of ${message}`, () => received.length === index + 1);
      }
      call.end();
      expect({ received, code: (await status).code }).to.deep.equal({ received: ["hello", "agent", "link"], code: grpc.status.OK });
    });

    it("serves HTTP/1.1 and HTTP/2 side by side on the one port", async () => {
      const session = http2Connect();
      const dispatcher = new Agent({ ...(secure ? { connect: { ca: testCertificates().ca } } : {}) });
      cleanups.push(() => dispatcher.close());
      const [h2, h1] = await Promise.all([
        echoRoundTrip(session, ["x", "y"]),
        request(`${scheme}://127.0.0.1:${running.port}/hello`, { dispatcher }).then((r) => r.body.json()),
      ]);
      expect({ h2: h2.echoed, h1: (h1 as { hello: string }).hello }).to.deep.equal({ h2: ["x", "y"], h1: "world" });
    });

    it("closes promptly with an HTTP/2 stream still open: GOAWAY, then the session is cut after the grace", async () => {
      const session = http2Connect();
      const goaway = once(session, "goaway");
      const stream = session.request({ ":method": "POST", ":path": "/infermesh.v1.Test/Link" });
      stream.on("error", () => {});
      await once(stream, "response");
      expect(running.shared.http2Sessions()).to.equal(1);
      const startedAt = Date.now();
      await withDeadline("fastify.close()", running.app.close(), 4_000);
      expect(Date.now() - startedAt).to.be.below(4_000);
      await withDeadline("the client's GOAWAY", goaway, 1_000);
      await withDeadline("the client session to close", closing(session), 1_000);
      expect(running.shared.http2Sessions()).to.equal(0);
    });

    it("closeIdleConnections drops a connection that has not told its protocol, and leaves an HTTP/2 session be", async () => {
      const session = http2Connect();
      expect((await echoRoundTrip(session, ["before"])).echoed).to.deep.equal(["before"]);
      const silent = net.connect(running.port, "127.0.0.1");
      silent.on("error", () => {});
      cleanups.push(() => silent.destroy());
      await once(silent, "connect");
      await waitFor("the server to accept the silent connection", () => running.accepted.length === 2);
      running.app.server.closeIdleConnections();
      await withDeadline("the silent connection to be closed", closing(silent), 1_000);
      expect((await echoRoundTrip(session, ["after"])).echoed).to.deep.equal(["after"]);
      expect(running.shared.http2Sessions()).to.equal(1);
    });

    it("closeAllConnections cuts HTTP/2 sessions too", async () => {
      const session = http2Connect();
      expect((await echoRoundTrip(session, ["before"])).echoed).to.deep.equal(["before"]);
      running.app.server.closeAllConnections();
      await withDeadline("the client session to close", closing(session), 1_000);
      await waitFor("no HTTP/2 session left", () => running.shared.http2Sessions() === 0);
    });

    it("closes promptly with a connection open that has sent nothing", async () => {
      const socket = net.connect(running.port, "127.0.0.1");
      socket.on("error", () => {});
      cleanups.push(() => socket.destroy());
      await once(socket, "connect");
      await waitFor("the server to accept the connection", () => running.accepted.length === 1);
      await withDeadline("fastify.close()", running.app.close(), 4_000);
      await withDeadline("the silent connection to be closed", closing(socket), 1_000);
      expect(socket.closed).to.equal(true);
    });
  });
}

describe("createSharedPort (cleartext): the preface decides, whatever the TCP reads", () => {
  let running: Running;
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await running.app.close();
  });

  it("a preface that arrives one byte per read still reaches onStream", async () => {
    running = await start(false);
    const relay = await tricklingRelay(running, HTTP2_PREFACE.length + 1);
    cleanups.push(() => new Promise((resolve) => relay.close(resolve)));
    const { port } = relay.address() as net.AddressInfo;
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {});
    cleanups.push(() => session.destroy());
    expect(await echoRoundTrip(session, ["a", "b"])).to.deep.equal({ status: 200, handledBy: "on-stream", echoed: ["a", "b"] });
  });

  it("an HTTP/1.1 request that starts like the preface (POST) and arrives in single-byte reads still reaches Fastify", async () => {
    running = await start(false);
    const socket = net.connect(running.port, "127.0.0.1");
    cleanups.push(() => socket.destroy());
    await once(socket, "connect");
    const postEcho = Buffer.from(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    const response = await rawExchange(socket, () => running.accepted[0], postEcho, 30);
    expect({ statusLine: response.split("\r\n")[0], body: response.split("\r\n\r\n")[1] }).to.deep.equal({
      statusLine: "HTTP/1.1 200 OK",
      body: "hello",
    });
  });

  it("a connection that sends nothing is closed after the sniff timeout", async () => {
    running = await start(false, { sniffTimeoutMs: 100 });
    const socket = net.connect(running.port, "127.0.0.1");
    socket.on("error", () => {});
    cleanups.push(() => socket.destroy());
    await once(socket, "connect");
    await withDeadline("the server to close the silent connection", once(socket, "close"), 2_000);
    expect(running.accepted[0]?.destroyed).to.equal(true);
  });

  it("a connection that sends part of the preface and ends is closed", async () => {
    running = await start(false);
    const socket = net.connect(running.port, "127.0.0.1");
    socket.on("error", () => {});
    cleanups.push(() => socket.destroy());
    await once(socket, "connect");
    socket.end("PRI * HTTP/2.0\r\n");
    await withDeadline("the server to close the connection", once(socket, "close"), 2_000);
    expect(running.accepted[0]?.destroyed).to.equal(true);
  });
});

describe("createSharedPort (TLS): ALPN decides", () => {
  let running: Running;
  before(async () => {
    running = await start(true);
  });
  after(async () => {
    await running.app.close();
  });

  /** helloOverTls asks for /hello over a TLS connection offering the given ALPN protocols, and reads to the end. */
  async function helloOverTls(alpn: string[] | undefined) {
    const socket = tls.connect({
      host: "127.0.0.1",
      port: running.port,
      servername: "localhost",
      ca: testCertificates().ca,
      ...(alpn ? { ALPNProtocols: alpn } : {}),
    });
    try {
      await once(socket, "secureConnect");
      const chunks: Buffer[] = [];
      socket.on("data", (chunk: Buffer) => chunks.push(chunk));
      const ended = once(socket, "end");
      socket.write("GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
      await ended;
      const response = Buffer.concat(chunks).toString("latin1");
      const body = JSON.parse(response.split("\r\n\r\n")[1] ?? "null") as { hello: string };
      return { alpn: socket.alpnProtocol, statusLine: response.split("\r\n")[0], hello: body.hello };
    } finally {
      socket.destroy();
    }
  }

  it("a client offering only http/1.1 gets Fastify", async () => {
    expect(await helloOverTls(["http/1.1"])).to.deep.equal({ alpn: "http/1.1", statusLine: "HTTP/1.1 200 OK", hello: "world" });
  });

  it("a client offering h2 and http/1.1, as curl and browsers do, gets Fastify over http/1.1", async () => {
    expect(await helloOverTls(["h2", "http/1.1"])).to.deep.equal({ alpn: "http/1.1", statusLine: "HTTP/1.1 200 OK", hello: "world" });
  });

  it("a client offering no ALPN gets Fastify", async () => {
    expect(await helloOverTls(undefined)).to.deep.equal({ alpn: false, statusLine: "HTTP/1.1 200 OK", hello: "world" });
  });

  it("a client offering only h2, as gRPC clients do, gets onStream", async () => {
    const session = http2.connect(`https://127.0.0.1:${running.port}`, { ca: testCertificates().ca });
    session.on("error", () => {});
    try {
      expect(await echoRoundTrip(session, ["grpc"])).to.deep.equal({ status: 200, handledBy: "on-stream", echoed: ["grpc"] });
      expect(session.alpnProtocol).to.equal("h2");
    } finally {
      session.destroy();
    }
  });

  it("a client offering neither protocol is refused in the handshake", async () => {
    const socket = tls.connect({ host: "127.0.0.1", port: running.port, ca: testCertificates().ca, ALPNProtocols: ["spdy/3"] });
    try {
      const [error] = (await once(socket, "error").catch((e: unknown) => [e])) as [NodeJS.ErrnoException];
      expect(error.code).to.equal("ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL");
    } finally {
      socket.destroy();
    }
  });
});
