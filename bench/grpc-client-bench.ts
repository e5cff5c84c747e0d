/**
 * grpc-client-bench compares, in one run, the CPU a gRPC client spends per AgentService.Infer call: grpc-js's
 * general client, connect-node's gRPC transport, and the gateway's own client on node:http2
 * (services/shared/grpc/infer-client.ts, createPeerCalls). AgentService.Infer is the hop between gateways: a call that
 * lands on one gateway for an agent whose link another holds goes there with the mesh token. The server is the same
 * grpc-js AgentService in a child process, answering every call with one whole non-streamed answer, as the gateway
 * holding the link relays the agent's. It prints client CPU µs per call and calls/s at 64 concurrent calls, and
 * p50/p99 latency one call at a time.
 *
 * Run: npx tsx bench/grpc-client-bench.ts [--calls 30000]
 */
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import {
  AgentService,
  InferenceCallSchema,
  InferRequestSchema,
  type InferResponse,
  InferResponseSchema,
} from "../gen/infermesh/v1/inference_pb.js";
import { createPeerCalls } from "../services/shared/grpc/infer-client.js";
import { bindService, createGrpcServer } from "../services/shared/grpc/server.js";
import { percentiles } from "./latency-percentiles.js";

/** TOKEN stands for the mesh token, which peer gateways present. */
const TOKEN = "bench-token";
/** PROVIDER_ID names the agent whose link the serving gateway would hold. */
const PROVIDER_ID = "bench-provider";
const ANSWER = new TextEncoder().encode(
  JSON.stringify({ object: "chat.completion", choices: [{ message: { role: "assistant", content: "token ".repeat(16) } }] }),
);

if (process.argv[2] === "--serve") {
  const server = createGrpcServer({
    services: [
      bindService(AgentService, {
        async *infer() {
          yield {
            parts: [
              { part: { case: "head", value: { status: 200, contentType: "application/json" } } },
              { part: { case: "data", value: ANSWER } },
              { part: { case: "trailer", value: { usage: { promptTokens: 5, completionTokens: 16 } } } },
            ],
          };
        },
      }),
    ],
  });
  process.send?.(await server.listen("127.0.0.1:0"));
} else {
  const { values } = parseArgs({ options: { calls: { type: "string", default: "30000" } } });
  const calls = Number(values.calls);
  const child = fork(fileURLToPath(import.meta.url), ["--serve"], { execArgv: ["--import", "tsx"] });
  const port = await new Promise<number>((resolve) => child.once("message", (m) => resolve(m as number)));
  const endpoint = `127.0.0.1:${port}`;
  const call = { model: "m", requestId: "bench", body: new TextEncoder().encode('{"model":"m","messages":[]}') };
  const inferenceCall = create(InferenceCallSchema, call);
  const request = create(InferRequestSchema, { call: inferenceCall, providerId: PROVIDER_ID });
  const path = `/${AgentService.typeName}/${AgentService.method.infer.name}`;

  const grpcJs = new grpc.Client(endpoint, grpc.credentials.createInsecure());
  const connect = createClient(AgentService, createGrpcTransport({ baseUrl: `http://${endpoint}` }));
  const peers = createPeerCalls({ meshToken: TOKEN });
  const clients: Record<string, () => Promise<number>> = {
    "grpc-js": async () => {
      const metadata = new grpc.Metadata();
      metadata.set("authorization", `Bearer ${TOKEN}`);
      const stream = grpcJs.makeServerStreamRequest(
        path,
        (r: typeof request) => Buffer.from(toBinary(InferRequestSchema, r)),
        (bytes: Buffer) => fromBinary(InferResponseSchema, bytes),
        request,
        metadata,
      );
      let parts = 0;
      for await (const message of stream as AsyncIterable<InferResponse>) parts += message.parts.length;
      return parts;
    },
    "connect-node": async () => {
      let parts = 0;
      for await (const message of connect.infer(request, { headers: { authorization: `Bearer ${TOKEN}` } })) parts += message.parts.length;
      return parts;
    },
    "gateway (node:http2)": async () => {
      let parts = 0;
      for await (const _part of peers.infer(endpoint, PROVIDER_ID, inferenceCall, new AbortController().signal)) parts++;
      return parts;
    },
  };

  console.log(`grpc client bench: ${calls} calls per client at 64 concurrent, then 3,000 one at a time (Node ${process.version})`);
  console.log("client                  cpu µs/call   calls/s   c=1 p50 µs   c=1 p99 µs");
  for (const [name, run] of Object.entries(clients)) {
    await drive(run, 3_000, 64); // warm-up: let V8 optimise the path
    const cpu = process.cpuUsage();
    const started = process.hrtime.bigint();
    await drive(run, calls, 64);
    const used = process.cpuUsage(cpu);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const latencies: number[] = [];
    for (let i = 0; i < 3_000; i++) {
      const t = process.hrtime.bigint();
      await run();
      latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    const { p50, p99 } = percentiles(latencies);
    const micros = (ms: number | null) => ((ms ?? Number.NaN) * 1000).toFixed(0).padStart(11);
    const perCall = (used.user + used.system) / calls;
    console.log(
      `${name.padEnd(22)}  ${perCall.toFixed(1).padStart(11)}  ${(calls / seconds).toFixed(0).padStart(8)}  ${micros(p50)}  ${micros(p99)}`,
    );
  }
  grpcJs.close();
  peers.close();
  child.kill();
  process.exit(0);
}

async function drive(run: () => Promise<number>, total: number, concurrency: number): Promise<void> {
  let started = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (started < total) {
        started++;
        if ((await run()) !== 3) throw new Error("an answer came back incomplete");
      }
    }),
  );
}
