import type { ServerResponse } from "node:http";
import { expect } from "chai";
import { waitFor } from "../../test/support/wait-for.js";
import { SilenceTicker } from "./silence-ticker.js";
import { KEEPALIVE_FRAME } from "./sse-frames.js";

/** fakeStream records what the ticker writes, as a response would carry it. */
function fakeStream(): { res: ServerResponse; frames: string[] } {
  const frames: string[] = [];
  const res = { writableEnded: false, write: (chunk: string | Buffer) => frames.push(String(chunk)) };
  return { res: res as unknown as ServerResponse, frames };
}

const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;

describe("SilenceTicker", () => {
  it("writes a keep-alive comment into each silent stream, not into one that keeps writing", async () => {
    const ticker = new SilenceTicker(40);
    const silent = fakeStream();
    const busy = fakeStream();
    const watchedSilent = ticker.watch(silent.res);
    const watchedBusy = ticker.watch(busy.res);
    const writing = setInterval(() => watchedBusy.wrote(), 5);
    try {
      await waitFor("two keep-alives in the silent stream", () => silent.frames.length >= 2, 5_000);
      expect(new Set(silent.frames)).to.deep.equal(new Set([String(KEEPALIVE_FRAME)]));
      expect(busy.frames).to.deep.equal([]);
    } finally {
      clearInterval(writing);
      watchedSilent.stop();
      watchedBusy.stop();
    }
  });

  it("runs one timer for all its streams, and none once no stream is left", () => {
    const ticker = new SilenceTicker(1_000);
    const before = timers();
    const streams = Array.from({ length: 100 }, () => ticker.watch(fakeStream().res));
    expect(timers()).to.equal(before + 1);
    for (const stream of streams.slice(1)) stream.stop();
    expect(timers()).to.equal(before + 1);
    streams[0]?.stop();
    expect(timers()).to.equal(before);
  });
});
