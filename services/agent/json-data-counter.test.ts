import { expect } from "chai";
import { JsonDataCounter } from "./json-data-counter.js";

/** counted counts the data objects of a JSON text, pushed in pieces of size bytes. */
function counted(text: string | Buffer, size: number): number {
  const counter = new JsonDataCounter();
  const bytes = typeof text === "string" ? Buffer.from(text, "utf8") : text;
  for (let at = 0; at < bytes.length; at += size) counter.push(bytes.subarray(at, at + size));
  return counter.count;
}

describe("JsonDataCounter", () => {
  const answers: Record<string, unknown>[] = [
    { created: 1, data: [{ b64_json: "QUJD" }, { b64_json: "REVG" }, { url: "data:image/png;base64,AAAA" }] },
    { data: [] },
    { created: 1 },
    // Keys like data elsewhere, strings that quote JSON, escapes of every kind, and text beyond ASCII.
    {
      metadata: [{}, {}],
      "data ": [{}],
      datum: { data: [{}, {}] },
      note: 'a "data": [{}, {}] \\ \\" \u00e9\u4e2d\ud83d\ude00 } ] {',
      data: [{ revised_prompt: 'say "{[" \\', data: [{}, {}] }, { b64_json: "A".repeat(10_000) }],
      usage: { input_tokens: 3 },
    },
    { "d\u0061ta": [{}], data2: [{}] },
  ];

  it("counts what JSON.parse finds in data, whatever the other keys and strings hold, cut anywhere", () => {
    for (const answer of answers) {
      const text = JSON.stringify(answer, null, answers.indexOf(answer) % 2 === 0 ? undefined : 2);
      const parsed = JSON.parse(text) as { data?: unknown[] };
      for (const size of [1, 2, 3, 5, 8, 64, 4096, text.length]) {
        expect(counted(text, size), `${text.slice(0, 60)} in pieces of ${size}`).to.equal(parsed.data?.length ?? 0);
      }
    }
  });

  it("crosses megabytes of base64 quickly", () => {
    const image = "A".repeat(16 * 1024 * 1024);
    const text = Buffer.from(JSON.stringify({ data: [{ b64_json: image }, { b64_json: image }] }));
    const started = performance.now();
    expect(counted(text, 64 * 1024)).to.equal(2);
    expect(performance.now() - started).to.be.below(300);
  });
});
