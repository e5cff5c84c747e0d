import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import type { Counter } from "prom-client";
import { type Gate, gate } from "../../test/support/gate.js";
import { ManualClock } from "../../test/support/manual-clock.js";
import { createLogger } from "../shared/logger.js";
import type { UsageRecordData } from "../shared/usage-record.js";
import { createGatewayMetrics } from "./gateway-metrics.js";
import { usageRecord } from "./test-support/usage-records.js";
import { UsageRecorder } from "./usage-recorder.js";
import { UsageSpool } from "./usage-spool.js";

const FLUSH_MS = 1_000;

/** RegistryDouble stores batches by record id, as the registry does (INSERT OR IGNORE), and can refuse or hold them. */
class RegistryDouble {
  /** sends are the models of each batch sent, in order, whatever became of it. */
  readonly sends: string[][] = [];
  /** sentIds are the ids of each batch sent, as sends are its models. */
  readonly sentIds: string[][] = [];
  readonly stored = new Map<string, UsageRecordData>();
  /** plan decides the next sends: "fail" refuses one, a Gate holds one until it opens; empty means store. */
  readonly plan: ("fail" | "refuse" | Gate)[] = [];
  inFlight = 0;
  maxInFlight = 0;

  readonly send = async (records: readonly UsageRecordData[]): Promise<void> => {
    this.sends.push(records.map((r) => r.model));
    this.sentIds.push(records.map((r) => r.id));
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const step = this.plan.shift();
      if (step === "fail") throw new Error("registry unreachable");
      if (step === "refuse") throw new RefusedBatch();
      if (step) await step.opened;
      for (const record of records) if (!this.stored.has(record.id)) this.stored.set(record.id, record);
    } finally {
      this.inFlight--;
    }
  };

  /** storedModels are the models of the stored records, in the order they were stored. */
  get storedModels(): string[] {
    return [...this.stored.values()].map((r) => r.model);
  }
}

/** RefusedBatch is the registry's answer to a batch it will never take (a record too large, say). */
class RefusedBatch extends Error {}

function setup(options: { batchSize?: number; maxBuffered?: number; spool?: UsageSpool } = {}) {
  const clock = new ManualClock();
  const registry = new RegistryDouble();
  const metrics = createGatewayMetrics();
  const recorder = new UsageRecorder({
    send: registry.send,
    refused: (error) => error instanceof RefusedBatch,
    clock,
    flushMs: FLUSH_MS,
    metrics,
    log: createLogger("test", "silent"),
    ...options,
  });
  let n = 0;
  /** record records count records whose models are r0, r1, ... in order. */
  const record = (count: number) => {
    for (let i = 0; i < count; i++) recorder.record(usageRecord(recorder.nextId(), `r${n++}`));
  };
  const counted = async (counter: Counter) => (await counter.get()).values[0]?.value ?? 0;
  const counters = async () => ({
    written: await counted(metrics.usageRecordsWritten),
    dropped: await counted(metrics.usageRecordsDropped),
  });
  return { clock, registry, recorder, record, counters };
}

const models = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `r${from + i}`);

/** settled lets every promise that can move on do so. */
const settled = () => new Promise((resolve) => setImmediate(resolve));

describe("UsageRecorder", () => {
  it("sends what was recorded once per flush interval, in one batch, and nothing when there is nothing", async () => {
    const { clock, registry, recorder, record, counters } = setup();
    record(3);
    clock.advance(FLUSH_MS - 1);
    await settled();
    expect(registry.sends).to.deep.equal([]);
    clock.advance(1);
    await settled();
    record(2);
    clock.advance(FLUSH_MS);
    await settled();
    clock.advance(FLUSH_MS);
    await settled();
    expect(registry.sends).to.deep.equal([models(0, 3), models(3, 5)]);
    expect({ buffered: recorder.buffered, ...(await counters()) }).to.deep.equal({ buffered: 0, written: 5, dropped: 0 });
    await recorder.close(1_000);
  });

  it("sends a full batch at once, and keeps the rest for the tick", async () => {
    const { clock, registry, recorder, record } = setup({ batchSize: 4 });
    record(9);
    await settled();
    expect(registry.sends).to.deep.equal([models(0, 4), models(4, 8)]);
    expect(recorder.buffered).to.equal(1);
    clock.advance(FLUSH_MS);
    await settled();
    expect(registry.sends).to.deep.equal([models(0, 4), models(4, 8), ["r8"]]);
    expect(registry.maxInFlight).to.equal(1);
    await recorder.close(1_000);
  });

  it("sends a refused batch again on the next tick, the same records under the same ids, losing none and storing none twice", async () => {
    const { clock, registry, recorder, record, counters } = setup({ batchSize: 2 });
    registry.plan.push("fail");
    record(2);
    await settled();
    record(3);
    await settled();
    expect(registry.sends).to.deep.equal([["r0", "r1"]]);
    expect(recorder.buffered).to.equal(5);
    clock.advance(FLUSH_MS);
    await settled();
    expect(registry.sends).to.deep.equal([["r0", "r1"], ["r0", "r1"], ["r2", "r3"], ["r4"]]);
    expect(registry.storedModels).to.deep.equal(models(0, 5));
    expect({ buffered: recorder.buffered, ...(await counters()) }).to.deep.equal({ buffered: 0, written: 5, dropped: 0 });
    await recorder.close(1_000);
  });

  it("drops a batch the registry refuses for good, counting it, and sends the ones behind it at once", async () => {
    const { registry, recorder, record, counters } = setup({ batchSize: 2 });
    registry.plan.push("refuse");
    record(5);
    await settled();
    expect(registry.sends).to.deep.equal([
      ["r0", "r1"],
      ["r2", "r3"],
    ]);
    expect(registry.storedModels).to.deep.equal(["r2", "r3"]);
    expect({ buffered: recorder.buffered, ...(await counters()) }).to.deep.equal({ buffered: 1, written: 2, dropped: 2 });
    await recorder.close(1_000);
  });

  it("stores a batch that reached the registry but whose answer was lost once, though it is sent twice", async () => {
    const { clock, registry, recorder } = setup();
    const lostAnswer = async (records: readonly UsageRecordData[]) => {
      await registry.send(records);
      throw new Error("deadline exceeded");
    };
    const flaky = new UsageRecorder({
      send: (records) => (registry.sends.length === 0 ? lostAnswer(records) : registry.send(records)),
      clock,
      flushMs: FLUSH_MS,
      metrics: createGatewayMetrics(),
      log: createLogger("test", "silent"),
    });
    for (const model of ["a", "b"]) flaky.record(usageRecord(flaky.nextId(), model));
    clock.advance(FLUSH_MS);
    await settled();
    clock.advance(FLUSH_MS);
    await settled();
    expect(registry.sends).to.deep.equal([
      ["a", "b"],
      ["a", "b"],
    ]);
    expect(registry.storedModels).to.deep.equal(["a", "b"]);
    expect(flaky.buffered).to.equal(0);
    await Promise.all([recorder.close(1_000), flaky.close(1_000)]);
  });

  it("sends one batch at a time: records that arrive while one is in flight wait for it", async () => {
    const { clock, registry, recorder, record } = setup();
    const held = gate();
    registry.plan.push(held);
    record(2);
    clock.advance(FLUSH_MS);
    record(1);
    clock.advance(FLUSH_MS);
    clock.advance(FLUSH_MS);
    await settled();
    expect(registry.sends).to.deep.equal([["r0", "r1"]]);
    held.open();
    await settled();
    expect(registry.sends).to.deep.equal([["r0", "r1"], ["r2"]]);
    expect(registry.maxInFlight).to.equal(1);
    await recorder.close(1_000);
  });

  it("keeps at most maxBuffered records while the registry refuses them, dropping the oldest and counting them", async () => {
    const { clock, registry, recorder, record, counters } = setup({ batchSize: 2, maxBuffered: 5 });
    registry.plan.push("fail");
    record(2);
    await settled();
    record(6);
    expect({ buffered: recorder.buffered, ...(await counters()) }).to.deep.equal({ buffered: 5, written: 0, dropped: 3 });
    clock.advance(FLUSH_MS);
    await settled();
    expect(registry.sends).to.deep.equal([["r0", "r1"], ["r3"], ["r4", "r5"], ["r6", "r7"]]);
    expect(registry.storedModels).to.deep.equal(models(3, 8));
    expect({ buffered: recorder.buffered, ...(await counters()) }).to.deep.equal({ buffered: 0, written: 5, dropped: 3 });
    await recorder.close(1_000);
  });

  it("never drops from the batch in flight", async () => {
    const { registry, recorder, record, counters } = setup({ batchSize: 2, maxBuffered: 4 });
    const held = gate();
    registry.plan.push(held);
    record(2);
    await settled();
    expect(registry.sends).to.deep.equal([["r0", "r1"]]);
    record(5);
    expect({ buffered: recorder.buffered, ...(await counters()) }).to.deep.equal({ buffered: 4, written: 0, dropped: 3 });
    held.open();
    await recorder.close(1_000);
    expect(registry.storedModels).to.deep.equal(["r0", "r1", "r5", "r6"]);
  });

  it("close() waits for the batch in flight, then sends everything still buffered", async () => {
    const { registry, recorder, record, counters } = setup({ batchSize: 2 });
    const held = gate();
    registry.plan.push(held);
    record(5);
    let closed = false;
    const closing = recorder.close(10_000).then(() => {
      closed = true;
    });
    await settled();
    expect({ closed, sends: registry.sends }).to.deep.equal({ closed: false, sends: [["r0", "r1"]] });
    held.open();
    await closing;
    expect(registry.sends).to.deep.equal([["r0", "r1"], ["r2", "r3"], ["r4"]]);
    expect({ buffered: recorder.buffered, ...(await counters()) }).to.deep.equal({ buffered: 0, written: 5, dropped: 0 });
  });

  it("close() tries a refused batch again until its timeout, then counts what is left as dropped", async () => {
    const { clock, registry, recorder, record, counters } = setup();
    registry.plan.push("fail");
    record(2);
    const retried = recorder.close(1_000);
    await settled();
    expect(registry.sends).to.deep.equal([["r0", "r1"]]);
    clock.advance(250);
    await retried;
    expect(registry.storedModels).to.deep.equal(["r0", "r1"]);

    const stuck = setup();
    stuck.registry.plan.push(gate());
    stuck.record(3);
    const closing = stuck.recorder.close(1_000);
    await settled();
    stuck.clock.advance(1_000);
    await closing;
    stuck.record(1);
    expect({ buffered: stuck.recorder.buffered, ...(await stuck.counters()) }).to.deep.equal({ buffered: 0, written: 0, dropped: 4 });
    expect(clock.pendingTimers).to.equal(0);
    expect(await counters()).to.deep.equal({ written: 2, dropped: 0 });
  });

  it("gives every record an id of its own", () => {
    const { recorder } = setup();
    const ids = Array.from({ length: 10_000 }, () => recorder.nextId());
    const other = setup().recorder.nextId();
    expect(new Set([...ids, other]).size).to.equal(10_001);
  });
});

describe("UsageRecorder with a spool", () => {
  let dir: string;
  let path: string;
  /** spool opens the spool as process pid would, every other process being gone (killed). */
  const spool = (pid: number) => new UsageSpool({ path, log: createLogger("test", "silent"), pid, isAlive: () => false });
  /** files are the spool's files but its lock. */
  const files = () =>
    readdirSync(dir)
      .filter((name) => !name.endsWith(".lock"))
      .sort();

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "usage-recorder-"));
    path = join(dir, "gw.usage-spool");
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("sends the records a killed gateway left in its spool under their own ids, first, and none the registry had taken", async () => {
    const killed = setup({ spool: spool(1001) });
    const record = (...ids: number[]) => {
      for (const i of ids) killed.recorder.record(usageRecord(`id${i}`, `r${i}`));
    };
    record(0, 1);
    killed.clock.advance(FLUSH_MS);
    await settled();
    // The next send never ends: the process is killed with that batch in flight and one more record not sent yet.
    killed.registry.plan.push(gate());
    record(2, 3);
    killed.clock.advance(FLUSH_MS);
    await settled();
    record(4);
    expect({ stored: [...killed.registry.stored.keys()], sent: killed.registry.sentIds, files: files() }).to.deep.equal({
      stored: ["id0", "id1"],
      sent: [
        ["id0", "id1"],
        ["id2", "id3"],
      ],
      files: ["gw.usage-spool.2", "gw.usage-spool.3"],
    });

    const next = setup({ spool: spool(1002), batchSize: 2 });
    expect(next.recorder.buffered).to.equal(3);
    next.record(1);
    next.clock.advance(FLUSH_MS);
    await settled();
    expect(next.registry.sends).to.deep.equal([["r2", "r3"], ["r4"], ["r0"]]);
    expect(next.registry.sentIds.slice(0, 2)).to.deep.equal([["id2", "id3"], ["id4"]]);
    expect({ files: files(), buffered: next.recorder.buffered, ...(await next.counters()) }).to.deep.equal({
      files: [],
      buffered: 0,
      written: 4,
      dropped: 0,
    });
    await next.recorder.close(1_000);
  });

  it("settles what the registry refused for good and what was dropped beyond maxBuffered, so no segment is left", async () => {
    const { clock, registry, recorder, record, counters } = setup({ batchSize: 2, maxBuffered: 4, spool: spool(1001) });
    registry.plan.push("refuse", "fail");
    record(2);
    await settled();
    record(6);
    await settled();
    expect({ buffered: recorder.buffered, ...(await counters()) }).to.deep.equal({ buffered: 4, written: 0, dropped: 4 });
    clock.advance(FLUSH_MS);
    await settled();
    expect(registry.storedModels).to.deep.equal(["r2", "r3", "r6", "r7"]);
    expect({ files: files(), ...(await counters()) }).to.deep.equal({ files: [], written: 4, dropped: 4 });
    await recorder.close(1_000);
  });

  it("close() leaves what the registry did not take in time in the spool, for the next gateway on it, not counted as dropped", async () => {
    const first = setup({ spool: spool(1001) });
    first.registry.plan.push(gate());
    first.record(3);
    const closing = first.recorder.close(1_000);
    await settled();
    first.clock.advance(1_000);
    await closing;
    expect({ buffered: first.recorder.buffered, ...(await first.counters()) }).to.deep.equal({ buffered: 0, written: 0, dropped: 0 });
    expect(readdirSync(dir)).to.deep.equal(["gw.usage-spool.1"]);

    const next = setup({ spool: new UsageSpool({ path, log: createLogger("test", "silent") }) });
    await next.recorder.close(1_000);
    expect({ stored: next.registry.storedModels, files: readdirSync(dir) }).to.deep.equal({ stored: models(0, 3), files: [] });
  });
});
