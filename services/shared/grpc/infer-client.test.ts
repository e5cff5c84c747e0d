import * as http2 from "node:http2";
import { createServer, type Server, type Socket } from "node:net";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import { AgentService, type InferenceCall, InferenceCallSchema, type InferencePart } from "../../../gen/infermesh/v1/inference_pb.js";
import type { Script } from "../../../test/support/scripted-agent.js";
import { waitFor } from "../../../test/support/wait-for.js";
import { bearerCredential } from "../bearer.js";
import { createPeerCalls, type PeerCalls } from "./infer-client.js";
import { MEDIA_MAX_MESSAGE_BYTES } from "./message-limits.js";
import { bindService, createGrpcServer, type GrpcServer } from "./server.js";

const MESH_TOKEN = "peer-client-test-mesh-token";
const PROVIDER = "p-1";
const encode = (text: string) => new TextEncoder().encode(text);

/**
 * FakePeer is a TEST DOUBLE of another gateway's AgentService: a real gRPC server that takes the mesh token and
 * answers by its script, recording each call with the provider it was for, and the calls cancelled.
 */
interface FakePeer {
  readonly endpoint: string;
  readonly calls: { readonly providerId: string; readonly call: InferenceCall }[];
  readonly cancelled: string[];
  script: Script;
  close(): Promise<void>;
}

async function startFakePeer(script: Script): Promise<FakePeer> {
  let server: GrpcServer | undefined;
  const peer: FakePeer = {
    endpoint: "",
    calls: [],
    cancelled: [],
    script,
    close: async () => server?.close(0),
  };
  server = createGrpcServer({
    maxMessageBytes: MEDIA_MAX_MESSAGE_BYTES,
    services: [
      bindService(AgentService, {
        async *infer(request, { metadata, signal }) {
          if (bearerCredential(metadata) !== MESH_TOKEN) throw new ConnectError("AgentService takes the mesh token", Code.Unauthenticated);
          const call = request.call as InferenceCall;
          peer.calls.push({ providerId: request.providerId, call });
          signal.addEventListener("abort", () => peer.cancelled.push(call.requestId), { once: true });
          yield* peer.script(call, signal);
        },
      }),
    ],
  });
  (peer as { endpoint: string }).endpoint = `127.0.0.1:${await server.listen("127.0.0.1:0")}`;
  return peer;
}

function eventData(part: InferencePart): string {
  return part.part.case === "event" ? new TextDecoder().decode(part.part.value.data) : `<${part.part.case}>`;
}

async function collect(parts: AsyncIterable<InferencePart>): Promise<InferencePart[]> {
  const all: InferencePart[] = [];
  for await (const part of parts) all.push(part);
  return all;
}

async function failureOf(parts: AsyncIterable<InferencePart>): Promise<ConnectError> {
  try {
    await collect(parts);
  } catch (error) {
    expect(error).to.be.instanceOf(ConnectError);
    return error as ConnectError;
  }
  throw new Error("the call did not fail");
}

describe("gateway's Infer client to peer gateways (gRPC over node:http2)", () => {
  let peer: FakePeer;
  let calls: PeerCalls;
  const call = (init: MessageInitShape<typeof InferenceCallSchema> = {}) =>
    create(InferenceCallSchema, { model: "m", requestId: "r", ...init });
  const infer = (endpoint: string, inferenceCall: InferenceCall, signal = new AbortController().signal) =>
    calls.infer(endpoint, PROVIDER, inferenceCall, signal);

  before(async () => {
    peer = await startFakePeer(async function* () {});
  });
  beforeEach(() => {
    calls = createPeerCalls({ meshToken: MESH_TOKEN, keepaliveMs: 50 });
    peer.calls.length = 0;
    peer.cancelled.length = 0;
  });
  afterEach(() => calls.close());
  after(() => peer.close());

  it("sends the call for the provider with the mesh token and yields single and batched parts in order", async () => {
    peer.script = async function* () {
      yield { part: { part: { case: "head", value: { status: 200, contentType: "text/event-stream" } } } };
      yield {
        parts: [{ part: { case: "event", value: { data: encode("a") } } }, { part: { case: "event", value: { data: encode("é") } } }],
      };
      yield { part: { part: { case: "trailer", value: { finishReasons: ["stop"] } } } };
    };
    const parts = await collect(infer(peer.endpoint, call({ requestId: "first", body: encode("{}") })));
    expect(parts.map(eventData)).to.deep.equal(["<head>", "a", "é", "<trailer>"]);
    expect(peer.calls.map((c) => [c.providerId, c.call.requestId, new TextDecoder().decode(c.call.body)])).to.deep.equal([
      [PROVIDER, "first", "{}"],
    ]);
  });

  it("reassembles messages larger than an HTTP/2 frame, and many in one frame", async () => {
    const big = "x".repeat(3 * 1024 * 1024 + 17);
    peer.script = async function* () {
      yield { part: { part: { case: "event", value: { data: encode(big) } } } };
      for (let i = 0; i < 500; i++) yield { part: { part: { case: "event", value: { data: encode(String(i)) } } } };
    };
    const parts = await collect(infer(peer.endpoint, call()));
    expect(parts).to.have.length(501);
    expect(eventData(parts[0] as InferencePart)).to.equal(big);
    expect(parts.slice(1).map(eventData)).to.deep.equal(Array.from({ length: 500 }, (_, i) => String(i)));
  });

  it("fails with the peer's gRPC status and its decoded message, and UNAUTHENTICATED without the mesh token", async () => {
    // biome-ignore lint/correctness/useYield: a call that fails before its first part yields nothing
    peer.script = async function* () {
      throw new ConnectError("no upstream serves 'ü%model'", Code.NotFound);
    };
    const error = await failureOf(infer(peer.endpoint, call()));
    expect(error.code).to.equal(Code.NotFound);
    expect(error.rawMessage).to.equal("no upstream serves 'ü%model'");

    const outsider = createPeerCalls({ meshToken: "not-the-mesh-token" });
    try {
      const refused = await failureOf(outsider.infer(peer.endpoint, PROVIDER, call(), new AbortController().signal));
      expect({ code: Code[refused.code], message: refused.rawMessage }).to.deep.equal({
        code: "Unauthenticated",
        message: "AgentService takes the mesh token",
      });
    } finally {
      outsider.close();
    }
  });

  it("cancels the peer's call when the signal aborts", async () => {
    peer.script = async function* (_call, signal) {
      yield { part: { part: { case: "head", value: { status: 200, contentType: "text/event-stream" } } } };
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    };
    const controller = new AbortController();
    const parts = infer(peer.endpoint, call({ requestId: "to-cancel" }), controller.signal)[Symbol.asyncIterator]();
    expect((await parts.next()).value?.part.case).to.equal("head");
    const pending = parts.next();
    controller.abort();
    const error = await pending.then(
      () => undefined,
      (e: unknown) => e as ConnectError,
    );
    expect(error?.code).to.equal(Code.Canceled);
    await waitFor("the peer to see the cancel", () => peer.cancelled.includes("to-cancel"));
  });

  it("cancels the peer's call when the reader stops early", async () => {
    peer.script = async function* (_call, signal) {
      while (!signal.aborted) {
        yield { part: { part: { case: "event", value: { data: encode("tick") } } } };
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    };
    for await (const part of infer(peer.endpoint, call({ requestId: "stopped-reading" }))) {
      expect(eventData(part)).to.equal("tick");
      break;
    }
    await waitFor("the peer to see the cancel", () => peer.cancelled.includes("stopped-reading"));
  });

  it("sends the deadline as grpc-timeout and gives up itself when it passes", async () => {
    peer.script = async function* (_call, signal) {
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    };
    const deadlineMs = Date.now() + 300;
    const error = await failureOf(infer(peer.endpoint, call({ requestId: "late", deadline: timestampFromMs(deadlineMs) })));
    expect(error.code).to.equal(Code.DeadlineExceeded);
    expect(Date.now()).to.be.at.least(deadlineMs - 5);
    // grpc-js on the peer's side cancels the call at the same deadline, which is how the fake peer learns it.
    await waitFor("the peer to see the deadline", () => peer.cancelled.includes("late"));

    const calledBefore = peer.calls.length;
    const passed = await failureOf(infer(peer.endpoint, call({ deadline: timestampFromMs(Date.now() - 1) })));
    expect(passed.code).to.equal(Code.DeadlineExceeded);
    expect(peer.calls.length, "a call past its deadline is not sent").to.equal(calledBefore);
  });

  it("stops reading when the caller does, so the peer waits instead of filling the gateway's memory", async () => {
    const partBytes = 1024 * 1024;
    const total = 100;
    let produced = 0;
    peer.script = async function* () {
      for (let i = 0; i < total; i++) {
        yield { part: { part: { case: "event", value: { data: new Uint8Array(partBytes).fill(i) } } } };
        produced++;
      }
    };
    const parts = infer(peer.endpoint, call())[Symbol.asyncIterator]();
    await parts.next();
    const stalledAt = await waitForSteady(() => produced, 300, 10_000);
    // The 16 MiB HTTP/2 window, a paused reader's 1 MiB and socket buffers hold at most some 20 parts, not 100.
    expect(stalledAt).to.be.below(40);
    let seen = 1;
    for (let next = await parts.next(); !next.done; next = await parts.next()) {
      const part = next.value.part;
      expect(part.case === "event" && part.value.data[0]).to.equal(seen);
      seen++;
    }
    expect(seen).to.equal(total);
  });

  it("fails with UNAVAILABLE when the peer cannot be reached, and recovers once it can", async () => {
    const port = await freePort();
    const error = await failureOf(infer(`127.0.0.1:${port}`, call()));
    expect(error.code).to.equal(Code.Unavailable);
    expect(error.rawMessage).to.match(/ECONNREFUSED/);

    peer.script = async function* () {
      yield { part: { part: { case: "trailer", value: {} } } };
    };
    const parts = await collect(infer(peer.endpoint, call()));
    expect(parts.map((p) => p.part.case)).to.deep.equal(["trailer"]);
  });

  it("fails the calls of a peer that stops answering pings, and of one that closes the connection", async () => {
    // A peer that accepts the connection and then says nothing, not even HTTP/2's settings: a frozen process.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const frozen = `127.0.0.1:${(silent.address() as { port: number }).port}`;
      const started = Date.now();
      const error = await failureOf(infer(frozen, call()));
      expect(error.code).to.equal(Code.Unavailable);
      expect(error.rawMessage).to.match(/keepalive ping/);
      expect(Date.now() - started).to.be.below(8_000);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }

    peer.script = async function* (_call, signal) {
      yield { part: { part: { case: "head", value: { status: 200, contentType: "text/event-stream" } } } };
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    };
    const doomed = await startFakePeer(peer.script);
    const parts = infer(doomed.endpoint, call())[Symbol.asyncIterator]();
    expect((await parts.next()).value?.part.case).to.equal("head");
    const pending = parts.next().then(
      () => undefined,
      (e: unknown) => e as ConnectError,
    );
    await doomed.close();
    const error = await pending;
    // Node reports the lost connection as a CANCEL reset; the gateway did not cancel, so the peer is unavailable.
    expect(error?.code).to.equal(Code.Unavailable);
  });

  it("lets a call on a forgotten connection run to its end, and close() ends even that one", async () => {
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    peer.script = async function* (_call, signal) {
      yield { part: { part: { case: "head", value: { status: 200, contentType: "text/event-stream" } } } };
      await released;
      yield { part: { part: { case: "event", value: { data: encode("after forget") } } } };
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    };
    const parts = infer(peer.endpoint, call())[Symbol.asyncIterator]();
    expect((await parts.next()).value?.part.case).to.equal("head");
    calls.forget(peer.endpoint);
    release();
    expect(eventData((await parts.next()).value as InferencePart)).to.equal("after forget");
    const pending = parts.next().then(
      () => undefined,
      (e: unknown) => e as ConnectError,
    );
    calls.close();
    expect((await pending)?.code).to.equal(Code.Unavailable);
  });

  it("fails with UNAVAILABLE when the peer's connection drops mid-answer", async () => {
    // A peer that opens the answer and then loses its connection, as when the gateway's process is killed.
    const abrupt = http2.createServer();
    abrupt.on("stream", (stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.write(Buffer.from([0, 0, 0, 0, 0]), () => setImmediate(() => stream.session?.destroy()));
    });
    await new Promise<void>((resolve) => abrupt.listen(0, "127.0.0.1", resolve));
    try {
      const endpoint = `127.0.0.1:${(abrupt.address() as { port: number }).port}`;
      const error = await failureOf(infer(endpoint, call()));
      expect(error.code).to.equal(Code.Unavailable);
    } finally {
      await new Promise((resolve) => abrupt.close(resolve));
    }
  });
});

/** waitForSteady waits until read() has not changed for quietMs, and returns that value. */
async function waitForSteady(read: () => number, quietMs: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let value = read();
  let since = Date.now();
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const now = read();
    if (now !== value) {
      value = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) {
      return value;
    }
  }
  throw new Error(`the value kept changing for ${timeoutMs} ms`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server: Server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
