import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { fromBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { expect } from "chai";
import { ServiceType } from "../gen/infermesh/v1/capabilities_pb.js";
import { type InferenceCall, InferenceCallSchema } from "../gen/infermesh/v1/inference_pb.js";
import { type Mesh, startMesh } from "./support/mesh-fixture.js";
import { openRawLink, type RawLink } from "./support/raw-link.js";
import { waitFor } from "./support/wait-for.js";

/** attachRaw attaches a raw link as a provider serving model, and waits until the gateway routes to it. */
async function attachRaw(mesh: Mesh, apiKey: string, name: string, model: string, serviceType = ServiceType.LLM): Promise<RawLink> {
  const link = openRawLink(mesh.gateway.baseUrl, apiKey);
  link.send({ case: "heartbeat", value: { name, models: [{ id: model, serviceType }] } });
  await waitFor(`${name}'s heartbeat accepted`, () => link.frames.some((frame) => frame.case === "heartbeat" && frame.value.code === 0));
  await waitFor(`${name} routable`, () => [...mesh.gateway.gateway.table.providers()].some((p) => p.name === name));
  return link;
}

/** callsOn are the calls a raw link was given whole, decoded from their pieces. */
function callsOn(link: RawLink): { id: number; call: InferenceCall }[] {
  const pieces = new Map<number, Uint8Array[]>();
  const calls: { id: number; call: InferenceCall }[] = [];
  for (const frame of link.frames) {
    if (frame.case !== "call") continue;
    const { callId, chunk, last } = frame.value;
    const chunks = [...(pieces.get(callId) ?? []), chunk];
    pieces.set(callId, chunks);
    if (last) calls.push({ id: callId, call: fromBinary(InferenceCallSchema, Buffer.concat(chunks)) });
  }
  return calls;
}

function chat(mesh: Mesh, key: string, model: string, stream = false, signal?: AbortSignal): Promise<Response> {
  return fetch(`${mesh.gateway.baseUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model, stream, messages: [{ role: "user", content: "hi" }] }),
    ...(signal ? { signal } : {}),
  });
}

function answer(link: RawLink, callId: number, json: string, end = true): void {
  link.send({
    case: "answer",
    value: {
      callId,
      parts: [
        { part: { case: "head", value: { status: 200, contentType: "application/json" } } },
        { part: { case: "data", value: Buffer.from(json) } },
        { part: { case: "trailer", value: {} } },
      ],
      ...(end ? { end: { code: 0 } } : {}),
    },
  });
}

function heapAfterGc(): number {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe("agents' links: nobody where they don't belong, and the link as the liveness signal", function () {
  this.timeout(60_000);
  let mesh: Mesh;
  let aliceKey: string;
  let malloryKey: string;

  beforeEach(async () => {
    mesh = await startMesh();
    aliceKey = await mesh.registry.keyFor("alice");
    malloryKey = await mesh.registry.keyFor("mallory");
    await mesh.addAgent({ user: "alice", apiKey: aliceKey, sim: { models: [{ id: "m" }] } });
  });

  afterEach(async () => {
    await mesh.stop();
  });

  it("drops what a hostile agent sends for calls it was not given, or after they ended", async () => {
    const hostile = await attachRaw(mesh, malloryKey, "evil-box", "x");
    let flooding = true;
    const flood = (async () => {
      for (let round = 0; flooding; round++) {
        for (let id = 1; id <= 64; id++) answer(hostile, id + round * 64, '{"evil":true}');
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const bodies = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const response = await chat(mesh, aliceKey, "m", i % 2 === 0);
        return { status: response.status, body: await response.text() };
      }),
    );
    flooding = false;
    await flood;
    for (const { status, body } of bodies) {
      expect(status).to.equal(200);
      expect(body).to.not.include("evil");
    }

    // Its own call: answered once; whatever it sends for that call afterwards reaches nobody.
    const own = chat(mesh, malloryKey, "x");
    const [given] = await waitFor("the call on the hostile link", () => {
      const calls = callsOn(hostile);
      return calls.length > 0 ? calls : undefined;
    });
    answer(hostile, given?.id as number, '{"mine":1}');
    answer(hostile, given?.id as number, '{"again":2}');
    const response = await own;
    expect(response.status).to.equal(200);
    expect(await response.text()).to.equal('{"mine":1}');
    const dropped = await mesh.gateway.gateway.metrics.registry.getSingleMetricAsString("infermesh_gateway_link_frames_dropped_total");
    expect(Number(/ (\d+)$/m.exec(dropped)?.[1])).to.be.greaterThan(64);
    hostile.destroy();
  });

  it("refuses garbage and oversized frames with a status, and goes on serving everyone else", async () => {
    const garbage = await attachRaw(mesh, malloryKey, "garbage-box", "g");
    garbage.sendRaw(Buffer.from([0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff]));
    await waitFor("the garbage link closed", () => garbage.closed);
    expect(garbage.status?.code).to.equal(Code.InvalidArgument);

    const oversized = await attachRaw(mesh, malloryKey, "big-box", "b");
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(512 * 1024 * 1024, 1);
    oversized.sendRaw(prefix);
    await waitFor("the oversized link closed", () => oversized.closed);
    expect(oversized.status?.code).to.equal(Code.ResourceExhausted);

    await waitFor("both gone from routing", () => ![...mesh.gateway.gateway.table.providers()].some((p) => p.ownerUserName === "mallory"));
    const response = await chat(mesh, aliceKey, "m");
    expect(response.status).to.equal(200);
  });

  it("refuses 1,000 attach attempts with bad keys, serves everyone meanwhile, and returns to its memory baseline", async () => {
    const gateway = mesh.gateway.gateway;
    // Warm up the paths first, so the baseline includes what any first attempt allocates once.
    const warm = openRawLink(mesh.gateway.baseUrl, "im_bad_warmup");
    await waitFor("the warm-up refusal", () => warm.closed);
    const baseline = heapAfterGc();
    const statuses: number[] = [];
    for (let batch = 0; batch < 10; batch++) {
      const links = Array.from({ length: 100 }, (_, i) => openRawLink(mesh.gateway.baseUrl, `im_${batch}_${i}_not-a-key`));
      const [response] = await Promise.all([chat(mesh, aliceKey, "m"), waitFor("refusals", () => links.every((link) => link.closed))]);
      expect(response.status).to.equal(200);
      for (const link of links) statuses.push(link.status?.code ?? -1);
    }
    expect(statuses).to.have.length(1000);
    expect(new Set(statuses)).to.deep.equal(new Set([Code.Unauthenticated]));
    expect(gateway.links.size).to.equal(1);
    const links = await gateway.metrics.registry.getSingleMetricAsString("infermesh_gateway_agent_links");
    expect(links).to.match(/^infermesh_gateway_agent_links 1$/m);
    await waitFor("memory back near its baseline", () => heapAfterGc() - baseline < 8 * 1024 * 1024, 10_000, 200);
  });

  it("takes a provider whose link closes out of routing at once, and ends its calls within a second", async () => {
    const box = await attachRaw(mesh, malloryKey, "box", "slow");
    const streamed = chat(mesh, malloryKey, "slow", true);
    const [given] = await waitFor("the call on the link", () => {
      const calls = callsOn(box);
      return calls.length > 0 ? calls : undefined;
    });
    box.send({
      case: "answer",
      value: {
        callId: given?.id as number,
        parts: [
          { part: { case: "head", value: { status: 200, contentType: "text/event-stream" } } },
          { part: { case: "event", value: { data: Buffer.from('{"choices":[{"delta":{"content":"a"}}]}') } } },
        ],
      },
    });
    const response = await streamed;
    expect(response.status).to.equal(200);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(Buffer.from(first.value ?? []).toString()).to.include('"content":"a"');
    const cutAt = Date.now();
    box.destroy();
    let rest = "";
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += Buffer.from(chunk.value).toString();
    expect(Date.now() - cutAt).to.be.lessThan(1_000);
    expect(rest).to.include("upstream_error");
    // No wait for the registry's TTL: the next call finds no provider.
    const next = await chat(mesh, malloryKey, "slow");
    expect(next.status).to.equal(404);
    expect(Date.now() - cutAt).to.be.lessThan(1_000);
  });

  it("drops a link that goes silent (a frozen agent) within 5 s, failing its calls", async () => {
    const frozen = await attachRaw(mesh, malloryKey, "frozen-box", "f");
    const pending = chat(mesh, malloryKey, "f");
    await waitFor("the call on the frozen link", () => callsOn(frozen).length > 0);
    const frozeAt = Date.now();
    const response = await pending;
    expect(Date.now() - frozeAt).to.be.lessThan(5_000);
    expect(response.status).to.be.oneOf([502, 503]);
    await waitFor("the frozen link closed", () => frozen.closed);
    expect(frozen.status?.code).to.equal(Code.Unavailable);
    await waitFor("the frozen provider out of routing", async () => (await chat(mesh, malloryKey, "f")).status === 404, 1_000);
  });

  it("serves a call of 20 MiB on the link in pieces, interleaved with other calls", async () => {
    const box = await attachRaw(mesh, malloryKey, "upload-box", "u", ServiceType.STT);
    const audio = Buffer.alloc(20 * 1024 * 1024, 7);
    const form = new FormData();
    form.set("model", "u");
    form.set("file", new Blob([audio]), "a.wav");
    const upload = fetch(`${mesh.gateway.baseUrl}/v1/audio/transcriptions`, {
      method: "POST",
      headers: { authorization: `Bearer ${malloryKey}` },
      body: form,
    });
    // A small call to the other agent is not held behind the upload's pieces.
    const small = await chat(mesh, aliceKey, "m");
    expect(small.status).to.equal(200);
    const [given] = await waitFor(
      "the whole upload on the link",
      () => {
        const calls = callsOn(box);
        return calls.length > 0 ? calls : undefined;
      },
      20_000,
      100,
    );
    const pieces = box.frames.filter((frame) => frame.case === "call" && frame.value.callId === given?.id);
    expect(pieces.length).to.be.greaterThan(100);
    expect(Buffer.from(given?.call.media[0]?.data ?? []).equals(audio)).to.equal(true);
    answer(box, given?.id as number, '{"text":"ok"}');
    expect((await upload).status).to.equal(200);
  });
});
