import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { createLogger } from "../shared/logger.js";
import type { UsageRecordData } from "../shared/usage-record.js";
import { usageRecord } from "./test-support/usage-records.js";
import { UsageSpool } from "./usage-spool.js";

const log = createLogger("test", "silent");

describe("UsageSpool", () => {
  let dir: string;
  let path: string;
  /** open opens the spool as process pid would, every other process being gone. */
  const open = (pid: number) => new UsageSpool({ path, log, pid, isAlive: () => false });
  /** twoSegments opens a spool holding records a and b in a sealed segment, and c in the current one. */
  const twoSegments = () => {
    const spool = open(1001);
    const [a, b, c] = [usageRecord("a"), usageRecord("b"), usageRecord("c")];
    spool.append(a);
    spool.append(b);
    spool.rotate();
    spool.append(c);
    return { spool, a, b, c };
  };
  const files = () => readdirSync(dir).sort();
  const lines = (file: string) =>
    readFileSync(join(dir, file), "utf8")
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => (JSON.parse(line) as UsageRecordData).id);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "usage-spool-"));
    path = join(dir, "gw.usage-spool");
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("appends each record as a line of the current segment, and starts a new segment after rotate()", () => {
    const { spool, a, b } = twoSegments();
    expect(files()).to.deep.equal(["gw.usage-spool.1", "gw.usage-spool.2", "gw.usage-spool.lock"]);
    expect([lines("gw.usage-spool.1"), lines("gw.usage-spool.2")]).to.deep.equal([["a", "b"], ["c"]]);
    expect(readFileSync(`${path}.1`, "utf8")).to.equal(`${JSON.stringify(a)}\n${JSON.stringify(b)}\n`);
    expect(spool.pending).to.equal(3);
    spool.close();
  });

  it("deletes a sealed segment once every record in it is settled, and the current one only when it is sealed", () => {
    const { spool, a, b, c } = twoSegments();
    spool.settle([a]);
    expect(files()).to.deep.equal(["gw.usage-spool.1", "gw.usage-spool.2", "gw.usage-spool.lock"]);
    spool.settle([b, c]);
    expect(files()).to.deep.equal(["gw.usage-spool.2", "gw.usage-spool.lock"]);
    spool.rotate();
    spool.rotate();
    expect({ files: files(), pending: spool.pending }).to.deep.equal({ files: ["gw.usage-spool.lock"], pending: 0 });
    spool.close();
    expect(files()).to.deep.equal([]);
  });

  it("hands a killed predecessor's records out once, oldest first, and numbers its own segments after theirs", () => {
    const killed = open(1001);
    const records = ["a", "b", "c"].map((id) => usageRecord(id));
    for (const record of records.slice(0, 2)) killed.append(record);
    killed.rotate();
    killed.append(records[2] as UsageRecordData);
    // No close(): the process was killed, its lock and segments stay.

    const next = open(1002);
    const leftovers = next.takeLeftovers();
    expect(leftovers).to.deep.equal(records);
    expect(next.takeLeftovers()).to.deep.equal([]);
    const d = usageRecord("d");
    next.append(d);
    expect(files()).to.deep.equal(["gw.usage-spool.1", "gw.usage-spool.2", "gw.usage-spool.3", "gw.usage-spool.lock"]);
    next.settle(leftovers);
    expect(files()).to.deep.equal(["gw.usage-spool.3", "gw.usage-spool.lock"]);
    next.close();
    expect(readFileSync(`${path}.3`, "utf8")).to.equal(`${JSON.stringify(d)}\n`);
    expect(open(1003).takeLeftovers()).to.deep.equal([d]);
  });

  it("skips a line torn by a kill mid-write, and deletes a segment that held nothing else", () => {
    const [a, b] = [usageRecord("a"), usageRecord("b")];
    const whole = JSON.stringify(a);
    writeFileSync(`${path}.7`, `${whole}\n${JSON.stringify(b).slice(0, 40)}`);
    writeFileSync(`${path}.9`, whole.slice(0, 10));
    writeFileSync(join(dir, "gw.usage-spool.x"), "not a segment");
    const spool = open(1001);
    const leftovers = spool.takeLeftovers();
    expect(leftovers).to.deep.equal([a]);
    expect(files()).to.deep.equal(["gw.usage-spool.7", "gw.usage-spool.lock", "gw.usage-spool.x"]);
    spool.append(b);
    expect(files()).to.include("gw.usage-spool.10");
    spool.settle(leftovers);
    expect(files()).to.deep.equal(["gw.usage-spool.10", "gw.usage-spool.lock", "gw.usage-spool.x"]);
    spool.close();
  });

  it("refuses a path whose lock a live process holds, takes over a dead one's, and releases only its own lock", () => {
    const first = open(1001);
    expect(() => new UsageSpool({ path, log, pid: 1002, isAlive: (pid) => pid === 1001 }))
      .to.throw(`the usage spool ${path} is in use by process 1001`)
      .with.property("setting", "usageSpool");
    const second = open(1002);
    expect(readFileSync(`${path}.lock`, "utf8")).to.match(/^1002 /);
    first.close();
    expect(files()).to.deep.equal(["gw.usage-spool.lock"]);
    second.close();
    expect(files()).to.deep.equal([]);
  });
});
