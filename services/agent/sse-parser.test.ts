import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect } from "chai";
import { parseSse, type SseEvent, SseEventTooLargeError, SseParser } from "./sse-parser.js";

const SAMPLES = fileURLToPath(new URL("../../test/fixtures/llama-server", import.meta.url));
const sample = (name: string): Buffer => readFileSync(`${SAMPLES}/${name}`);

/** expectedPayloads is what a careful reader finds in a llama-server stream: each `data: ` line's rest. */
function expectedPayloads(body: Buffer): string[] {
  return body
    .toString("utf8")
    .split("\n\n")
    .filter((frame) => frame.startsWith("data: "))
    .map((frame) => frame.slice("data: ".length));
}

function feed(chunks: readonly (string | Uint8Array)[]): { events: SseEvent[]; parser: SseParser } {
  const parser = new SseParser();
  const events: SseEvent[] = [];
  for (const chunk of chunks) events.push(...parser.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk));
  return { events, parser };
}

const text = (events: readonly SseEvent[]): string[] => events.map((e) => Buffer.from(e.data).toString("utf8"));

describe("SseParser", () => {
  for (const name of ["chat_stream.body", "chat_stream_usage.body", "completions_stream.body"]) {
    it(`yields ${name}'s data payloads byte for byte, whole`, () => {
      const body = sample(name);
      const { events, parser } = feed([body]);
      expect(text(events)).to.deep.equal(expectedPayloads(body));
      expect(text(events).at(-1)).to.equal("[DONE]");
      expect(new Set(events.map((e) => e.event)), "no event names").to.deep.equal(new Set([""]));
      expect(parser.hasPartialEvent).to.equal(false);
    });
  }

  it("yields the same events when chat_stream.body is split in two at every byte offset", () => {
    const body = sample("chat_stream.body");
    const expected = expectedPayloads(body);
    for (let at = 0; at <= body.length; at++) {
      const { events } = feed([body.subarray(0, at), body.subarray(at)]);
      expect(text(events), `split at ${at}`).to.deep.equal(expected);
    }
  });

  it("yields the same events when fed one byte at a time", () => {
    const body = sample("chat_stream_usage.body");
    const { events } = feed([...body].map((byte) => Uint8Array.of(byte)));
    expect(text(events)).to.deep.equal(expectedPayloads(body));
  });

  it("keeps multi-byte UTF-8 characters intact when a read cuts through them", () => {
    const body = Buffer.from('data: {"content":"ér тый ज 🦙"}\n\n');
    for (let at = 0; at <= body.length; at++) {
      const { events } = feed([body.subarray(0, at), body.subarray(at)]);
      expect(text(events), `split at ${at}`).to.deep.equal(['{"content":"ér тый ज 🦙"}']);
    }
  });

  it("accepts CRLF and lone CR line endings, also with CRLF split across reads", () => {
    const crlf = "data: one\r\n\r\ndata: two\r\n\r\n";
    for (let at = 0; at <= crlf.length; at++) {
      expect(text(feed([crlf.slice(0, at), crlf.slice(at)]).events), `split at ${at}`).to.deep.equal(["one", "two"]);
    }
    expect(text(feed(["data: a\r\rdata: b\r\r"]).events)).to.deep.equal(["a", "b"]);
    expect(text(feed(["data: a\r", "\n", "\r", "\n"]).events)).to.deep.equal(["a"]);
  });

  it("ignores comments, keep-alives and unknown fields, and reads the event type", () => {
    const { events } = feed([": keep-alive\n\n", ":\n", "id: 7\nretry: 10\nfoo: bar\nevent: delta\ndata: x\n\n", "data: y\n\n"]);
    expect(events.map((e) => [Buffer.from(e.data).toString(), e.event])).to.deep.equal([
      ["x", "delta"],
      ["y", ""],
    ]);
  });

  it("joins multi-line data with LF and drops only one space after the colon", () => {
    const { events } = feed(['data: {\ndata:  "a": 1\ndata:}\n\n', "data\n\n", "data:\n\n"]);
    expect(text(events)).to.deep.equal(['{\n "a": 1\n}', "", ""]);
  });

  it("dispatches nothing for an event without data, and strips a leading BOM", () => {
    expect(feed(["event: ping\n\n"]).events).to.deep.equal([]);
    expect(text(feed(["\uFEFFdata: x\n\n"]).events)).to.deep.equal(["x"]);
    expect(text(feed([Uint8Array.of(0xef), Uint8Array.of(0xbb, 0xbf), "data: x\n\n"]).events)).to.deep.equal(["x"]);
  });

  it("reports an event cut off by the end of the stream instead of dispatching it", () => {
    const { events, parser } = feed(["data: done\n\ndata: half"]);
    expect(text(events)).to.deep.equal(["done"]);
    expect(parser.hasPartialEvent).to.equal(true);
    expect(feed(["data: whole-line-but-no-blank\n"]).parser.hasPartialEvent).to.equal(true);
  });

  it("returns data that stays valid when the caller reuses its read buffer", () => {
    const parser = new SseParser();
    const buffer = Buffer.from("data: abc\n\n");
    const [event] = parser.push(buffer);
    buffer.fill(0);
    expect(Buffer.from(event?.data ?? []).toString()).to.equal("abc");
  });

  it("refuses an event larger than its limit, whether one long line or many data lines", () => {
    expect(() => new SseParser(16).push(Buffer.from(`data: ${"x".repeat(32)}`))).to.throw(SseEventTooLargeError);
    expect(() => new SseParser(16).push(Buffer.from("data: 12345\n".repeat(4)))).to.throw(SseEventTooLargeError);
    expect(text(new SseParser(16).push(Buffer.from("data: 12345\n\n".repeat(4))))).to.have.length(4);
  });
});

describe("parseSse", () => {
  it("reads an async byte stream and says whether it ended mid-event", async () => {
    async function* source(): AsyncGenerator<Uint8Array> {
      yield Buffer.from("data: a\n");
      yield Buffer.from("\ndata: b");
    }
    const stream = parseSse(source());
    const seen: string[] = [];
    let next = await stream.next();
    while (!next.done) {
      seen.push(Buffer.from(next.value.data).toString());
      next = await stream.next();
    }
    expect(seen).to.deep.equal(["a"]);
    expect(next.value).to.deep.equal({ endedMidEvent: true });
  });
});
