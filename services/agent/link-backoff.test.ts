import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { create, toBinary } from "@bufbuild/protobuf";
import { expect } from "chai";
import { pino } from "pino";
import { AttachResponseSchema } from "../../gen/infermesh/v1/link_pb.js";
import { ManualClock } from "../../test/support/manual-clock.js";
import { waitFor } from "../../test/support/wait-for.js";
import { frameMessage } from "../shared/grpc/wire.js";
import { type ReconnectBackoff, reconnectDelayMs } from "./link-backoff.js";
import { DEFAULT_INITIAL_RETRY_MS, DEFAULT_MAX_RETRY_MS, MeshLink } from "./mesh-link.js";

// "Agents reconnect with jittered backoff capped near 3 s": the wait grows after each failure, is drawn at random
// within its bounds so that agents cut off together spread out, never exceeds the cap, and starts over once a link
// attached, so that an agent whose gateway restarts after a long outage is back within a fraction of a second.

/** NEAR_CAP_MS is how far below 3 s the cap may be and still be "near 3 s". */
const NEAR_CAP_MS = 2_500;
/** THREE_SECONDS_MS is the most an agent may wait between two dials. */
const THREE_SECONDS_MS = 3_000;
/** ALMOST_ONE is the largest draw Math.random gives, near enough: the top of the jitter. */
const ALMOST_ONE = 0.999_999_9;
const DRAWS = [0, 0.1, 0.25, 0.5, 0.75, 0.9, ALMOST_ONE];
const DEFAULTS: ReconnectBackoff = { initialMs: DEFAULT_INITIAL_RETRY_MS, maxMs: DEFAULT_MAX_RETRY_MS };

/** baseMs is the wait's upper bound after `failures` failures: the first delay doubled each time, up to the cap. */
function baseMs(failures: number, backoff: ReconnectBackoff): number {
  return Math.min(backoff.maxMs, backoff.initialMs * 2 ** (failures - 1));
}

describe("an agent's reconnect backoff", () => {
  it("is capped near 3 s by default", () => {
    expect(DEFAULT_MAX_RETRY_MS).to.be.within(NEAR_CAP_MS, THREE_SECONDS_MS);
    expect(DEFAULT_INITIAL_RETRY_MS).to.be.above(0).and.below(DEFAULT_MAX_RETRY_MS);
  });

  it("doubles from the first delay after each failure until the cap, then stays there", () => {
    const top = (failures: number) => reconnectDelayMs(failures, { initialMs: 250, maxMs: 3_000 }, () => ALMOST_ONE);
    expect([1, 2, 3, 4, 5, 6, 7].map(top)).to.deep.equal([250, 500, 1_000, 2_000, 3_000, 3_000, 3_000]);
    const bottom = (failures: number) => reconnectDelayMs(failures, { initialMs: 250, maxMs: 3_000 }, () => 0);
    expect([1, 2, 3, 4, 5, 6].map(bottom)).to.deep.equal([125, 250, 500, 1_000, 1_500, 1_500]);
  });

  it("draws each wait between half its base and its base, spread by the random draw", () => {
    for (let failures = 1; failures <= 12; failures++) {
      const base = baseMs(failures, DEFAULTS);
      const waits = DRAWS.map((draw) => reconnectDelayMs(failures, DEFAULTS, () => draw));
      for (const wait of waits) expect(wait, `after ${failures} failures`).to.be.within(Math.floor(base / 2), base);
      expect(waits, "a higher draw never waits less").to.deep.equal([...waits].sort((a, b) => a - b));
      // Without the spread, agents cut off by one gateway restart would all dial back in the same instant.
      expect(Math.max(...waits) - Math.min(...waits), `the jitter's spread after ${failures} failures`).to.be.at.least(base / 2 - 1);
    }
  });

  it("never waits longer than the cap, however many failures, nor a non-finite time", () => {
    for (const failures of [1, 5, 30, 31, 32, 64, 1_000, 1e6, Number.MAX_SAFE_INTEGER]) {
      for (const draw of DRAWS) {
        const wait = reconnectDelayMs(failures, DEFAULTS, () => draw);
        expect(Number.isFinite(wait), `after ${failures} failures`).to.equal(true);
        expect(wait, `after ${failures} failures, draw ${draw}`).to.be.within(1, THREE_SECONDS_MS);
      }
    }
  });

  describe("in a link to the mesh", () => {
    let gateway: FakeGateway;
    let link: MeshLink | undefined;

    beforeEach(async () => {
      gateway = await startFakeGateway();
    });

    afterEach(async () => {
      await link?.close();
      link = undefined;
      await gateway.close();
    });

    it("waits longer after each failed dial up to the cap, and starts over after a link that attached", async () => {
      const refusals = 6;
      gateway.answers.push(...Array<Answer>(refusals).fill("unavailable"), "attach-then-break", "unavailable");
      const clock = new ManualClock();
      const waits: number[] = [];
      link = new MeshLink({
        meshUrl: gateway.url,
        apiKey: "im_test",
        clock,
        log: retryLog(waits),
        report: () => ({ providerId: "", name: "box", models: [] }),
        serve: async function* () {},
        maxMessageBytes: 1 << 20,
        random: () => ALMOST_ONE,
      });
      await link.start();
      // Each wait is read from the link's log as it goes; advancing the clock by it is what dials again.
      const dials = refusals + 2;
      for (let failure = 1; failure <= dials; failure++) {
        const wait = await waitFor(`wait number ${failure}`, () => waits[failure - 1]);
        if (failure < dials) clock.advance(wait);
      }
      expect(gateway.dials, "one dial per wait").to.equal(dials);

      const growing = waits.slice(0, refusals);
      growing.forEach((wait, index) => {
        expect(wait, `wait ${index + 1}`).to.be.within(baseMs(index + 1, DEFAULTS) / 2, baseMs(index + 1, DEFAULTS));
      });
      for (let index = 1; index < 4; index++) expect(growing[index], `wait ${index + 1}`).to.be.above(growing[index - 1] ?? Infinity);
      expect(Math.max(...growing), "capped near 3 s").to.be.within(NEAR_CAP_MS, THREE_SECONDS_MS);
      expect(growing.at(-1), "staying at the cap").to.equal(growing.at(-2));
      expect(waits.slice(refusals), "after an attached link, the first waits again").to.deep.equal(waits.slice(0, 2));
    });
  });
});

/** retryLog is a logger of the link that collects the retryInMs of each "dialling again" line. */
function retryLog(waits: number[]) {
  return pino(
    { level: "debug" },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        const line = JSON.parse(chunk.toString("utf8")) as { retryInMs?: unknown };
        if (typeof line.retryInMs === "number") waits.push(line.retryInMs);
        done();
      },
    }),
  );
}

/** Answer is how the fake gateway answers one dial: at once with UNAVAILABLE, or attaching the agent then ending. */
type Answer = "unavailable" | "attach-then-break";

/** FakeGateway takes Attach calls over cleartext HTTP/2 and answers each as the next of answers says. */
interface FakeGateway {
  readonly url: string;
  readonly answers: Answer[];
  readonly dials: number;
  close(): Promise<void>;
}

/** UNAVAILABLE is gRPC's status for a failure a retry may fix, as a gateway that lost its registry answers. */
const UNAVAILABLE = "14";

async function startFakeGateway(): Promise<FakeGateway> {
  const answers: Answer[] = [];
  const sessions = new Set<http2.ServerHttp2Session>();
  let dials = 0;
  const server = http2.createServer();
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  server.on("stream", (stream) => {
    dials++;
    stream.on("error", () => {});
    stream.resume();
    if (answers.shift() === "attach-then-break") attachThenBreak(stream);
    else stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": UNAVAILABLE }, { endStream: true });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    answers,
    get dials() {
      return dials;
    },
    close: () =>
      new Promise((resolve) => {
        for (const session of sessions) session.destroy();
        server.close(() => resolve());
      }),
  };
}

/** attachThenBreak accepts the agent's heartbeat, as a gateway does once the registry took it, then ends the link. */
function attachThenBreak(stream: http2.ServerHttp2Stream): void {
  const accepted = create(AttachResponseSchema, {
    frame: { case: "heartbeat", value: { response: { provider: { id: "box-0123456789ab" } }, code: 0 } },
  });
  stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
  stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": UNAVAILABLE, "grpc-message": "the gateway restarts" }));
  stream.end(frameMessage(toBinary(AttachResponseSchema, accepted)));
}
