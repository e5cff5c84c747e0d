import { once } from "node:events";
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from "node:http";
import * as http2 from "node:http2";
import { request as httpsRequest } from "node:https";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import { type NginxProxy, skipWithoutNginx, startNginx } from "./support/nginx-fixture.js";
import { testCertificates } from "./support/test-certificates.js";

/** Backend is a tiny HTTP/1.1 server that answers with its name and remembers the headers it saw. */
interface Backend {
  readonly name: string;
  readonly address: string;
  readonly seen: IncomingHttpHeaders[];
  readonly server: Server;
}

/** Answer is what an HTTP/1.1 request through nginx got back. */
interface Answer {
  readonly status: number | undefined;
  readonly body: string;
}

/** grpcFrame is one gRPC message on the wire: uncompressed flag, big-endian length, payload. */
function grpcFrame(payload: string): Buffer {
  const body = Buffer.from(payload);
  const header = Buffer.alloc(5);
  header.writeUInt32BE(body.length, 1);
  return Buffer.concat([header, body]);
}

describe("the test nginx (test/support/nginx-fixture.ts)", function () {
  this.timeout(30_000);
  const certs = testCertificates();
  const backends: Backend[] = [];
  let h2c: http2.Http2Server;
  let h2cAddress: string;
  const h2cPaths: string[] = [];
  const proxies: NginxProxy[] = [];

  const start = async (options: Parameters<typeof startNginx>[0]) => {
    const proxy = await startNginx(options);
    proxies.push(proxy);
    return proxy;
  };
  /** get makes a GET on a connection of its own, trusting the test CA for https:// URLs. */
  const get = (url: string): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const send = url.startsWith("https:") ? httpsRequest : httpRequest;
      const request = send(url, { ca: certs.ca, agent: false }, (response) => {
        let body = "";
        response.setEncoding("utf8").on("data", (chunk: string) => {
          body += chunk;
        });
        response.once("end", () => resolve({ status: response.statusCode, body }));
      });
      request.once("error", reject).end();
    });

  before(async function () {
    skipWithoutNginx(this);
    for (const name of ["A", "B"]) {
      const seen: IncomingHttpHeaders[] = [];
      const server = createServer((request, response) => {
        seen.push(request.headers);
        response.end(`backend ${name}`);
      });
      server.listen(0, "127.0.0.1");
      await once(server, "listening");
      backends.push({ name, address: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server });
    }
    // An echo service in gRPC's framing: each message comes back as soon as it arrives, so a test can hold a
    // conversation through nginx, as an agent does on its stream.
    h2c = http2.createServer();
    h2c.on("stream", (stream, headers) => {
      h2cPaths.push(String(headers[":path"]));
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("data", (chunk: Buffer) => stream.write(chunk));
      stream.on("end", () => stream.end());
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "grpc-message": "" }));
    });
    h2c.listen(0, "127.0.0.1");
    await once(h2c, "listening");
    h2cAddress = `127.0.0.1:${(h2c.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    await Promise.all(proxies.splice(0).map((proxy) => proxy.stop()));
    for (const backend of backends) backend.seen.length = 0;
  });
  after(async () => {
    if (h2c === undefined) return;
    for (const backend of backends) backend.server.closeAllConnections();
    await Promise.all([
      ...backends.map((backend) => new Promise((resolve) => backend.server.close(resolve))),
      new Promise((resolve) => h2c.close(resolve)),
    ]);
  });

  it("terminates TLS and spreads requests round robin over the gateways, telling them the client's scheme", async () => {
    const proxy = await start({ upstreams: { http: backends.map((backend) => backend.address) }, tls: certs });
    expect(proxy.url).to.equal(`https://127.0.0.1:${proxy.port}`);
    const answers: Answer[] = [];
    for (let i = 0; i < 4; i++) answers.push(await get(`${proxy.url}/v1/models`));
    expect(answers.map((answer) => answer.status)).to.deep.equal([200, 200, 200, 200]);
    expect(answers.map((answer) => answer.body).sort()).to.deep.equal(["backend A", "backend A", "backend B", "backend B"]);
    expect(backends.flatMap((backend) => backend.seen.map((headers) => [headers["x-forwarded-proto"], headers.host]))).to.deep.equal(
      Array(4).fill(["https", "127.0.0.1"]),
    );
  });

  it("carries a gRPC stream both ways over HTTP/2 to an h2c gateway, messages and trailers", async () => {
    const proxy = await start({ upstreams: { http: [backends[0]?.address ?? ""], grpc: [h2cAddress] }, tls: certs });
    const session = http2.connect(proxy.url, { ca: certs.ca });
    try {
      const stream = session.request({
        ":method": "POST",
        ":path": "/infermesh.v1.AgentLinkService/Attach",
        "content-type": "application/grpc",
        te: "trailers",
      });
      const response = once(stream, "response") as Promise<[http2.IncomingHttpHeaders]>;
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      const received = async (bytes: number) => {
        while (Buffer.concat(chunks).length < bytes) await once(stream, "data");
      };
      // nginx passes the gateway's response headers on only once a message moves on the stream, so the client
      // speaks first, as an agent must. The second message goes out only after the first came back: nginx streams
      // the request body instead of waiting for its end.
      stream.write(grpcFrame("hello"));
      const [headers] = await response;
      await received(10);
      stream.write(grpcFrame("again"));
      await received(20);
      const trailers = once(stream, "trailers") as Promise<[http2.IncomingHttpHeaders]>;
      stream.end();
      const [ended] = await trailers;
      expect([headers[":status"], headers["content-type"]]).to.deep.equal([200, "application/grpc"]);
      expect(Buffer.concat(chunks)).to.deep.equal(Buffer.concat([grpcFrame("hello"), grpcFrame("again")]));
      expect(ended["grpc-status"]).to.equal("0");
      expect(h2cPaths.at(-1)).to.equal("/infermesh.v1.AgentLinkService/Attach");
    } finally {
      session.close();
    }
  });

  it("serves plain HTTP/1.1 without TLS, and takes new gateways on reload", async () => {
    const [a, b] = backends as [Backend, Backend];
    const proxy = await start({ upstreams: { http: [a.address] } });
    expect(proxy.url).to.equal(`http://127.0.0.1:${proxy.port}`);
    expect(await get(`${proxy.url}/health`)).to.deep.equal({ status: 200, body: "backend A" });
    await proxy.reload({ http: [b.address] });
    const answers = [await get(`${proxy.url}/health`), await get(`${proxy.url}/health`)];
    expect(answers).to.deep.equal([
      { status: 200, body: "backend B" },
      { status: 200, body: "backend B" },
    ]);
  });

  it("answers OpenAI's error envelope, as JSON, when no gateway can be reached", async () => {
    const gone = createServer();
    gone.listen(0, "127.0.0.1");
    await once(gone, "listening");
    const { port } = gone.address() as AddressInfo;
    await new Promise((resolve) => gone.close(resolve));
    const proxy = await start({ upstreams: { http: [`127.0.0.1:${port}`] } });
    const answer = await get(`${proxy.url}/v1/models`);
    expect(answer.status).to.equal(502);
    expect(JSON.parse(answer.body)).to.deep.equal({
      error: { message: "No gateway answered the request; retry it.", type: "upstream_error", param: null, code: "gateway_unavailable" },
    });
  });

  it("dies on kill, refusing connections from then on", async () => {
    const proxy = await start({ upstreams: { http: [backends[0]?.address ?? ""] } });
    expect((await get(`${proxy.url}/`)).status).to.equal(200);
    await proxy.kill();
    const refused = await get(`${proxy.url}/`).then(
      () => undefined,
      (error: NodeJS.ErrnoException) => error.code,
    );
    expect(refused).to.equal("ECONNREFUSED");
  });

  it("surfaces nginx's error log when it cannot start", async () => {
    const error = await startNginx({ upstreams: { http: [] } }).then(
      () => undefined,
      (failure: Error) => failure.message,
    );
    expect(error).to.match(/^nginx did not start: nginx exited \(1\)\n[\s\S]*no servers are inside upstream/);
  });
});
