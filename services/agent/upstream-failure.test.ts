import { expect } from "chai";
import { errors } from "undici";
import { type FakeHandler, type FakeUpstream, startFakeUpstream } from "./test-support/fake-upstream.js";
import { UpstreamClient } from "./upstream-client.js";
import { describeUpstreamFailure, isConnectionFailure } from "./upstream-failure.js";

const SERVER = "the local llm server";

function systemError(code: string, syscall: string, message: string): Error {
  return Object.assign(new Error(message), { code, syscall });
}

describe("describeUpstreamFailure", () => {
  it("names refusals, timeouts and resets in words a person can act on", () => {
    expect(describeUpstreamFailure(new errors.HeadersTimeoutError(), SERVER, 300_000)).to.equal(
      "the local llm server sent no response within 300000 ms",
    );
    expect(describeUpstreamFailure(new errors.BodyTimeoutError(), SERVER, 5)).to.equal(
      "the local llm server sent nothing for 5 ms in the middle of its answer",
    );
    expect(describeUpstreamFailure(new errors.SocketError("other side closed"), SERVER, 5)).to.equal(
      "the local llm server closed the connection unexpectedly (UND_ERR_SOCKET: other side closed)",
    );
  });

  it("unwraps happy-eyeballs AggregateErrors and cause chains to the error with a code", () => {
    const refused = systemError("ECONNREFUSED", "connect", "connect ECONNREFUSED ::1:8080");
    const aggregate = new AggregateError([refused, systemError("ECONNREFUSED", "connect", "connect ECONNREFUSED 127.0.0.1:8080")]);
    expect(describeUpstreamFailure(aggregate, SERVER, 5)).to.equal(
      "cannot connect to the local llm server: connection refused (is the server running?)",
    );
    expect(describeUpstreamFailure(new Error("fetch failed", { cause: refused }), SERVER, 5)).to.match(/connection refused/);
  });

  it("never repeats the peer address a system error message carries", () => {
    const message = describeUpstreamFailure(systemError("ETIMEDOUT", "connect", "connect ETIMEDOUT 10.1.2.3:8080"), SERVER, 5);
    expect(message).to.equal("the local llm server: connect failed (ETIMEDOUT)");
  });
});

/** answerJson answers every request with status and a JSON body. */
function answerJson(status: number, body: unknown): FakeHandler {
  return (_request, response) => {
    response.writeHead(status, { "content-type": "application/json" });
    response.end(JSON.stringify(body));
  };
}

/** resetConnection answers every request by cutting its connection, as a server that dies in the middle does. */
const resetConnection: FakeHandler = (_request, response) => void response.socket?.destroy();

describe("isConnectionFailure", () => {
  let upstream: FakeUpstream;
  let client: UpstreamClient;

  beforeEach(async () => {
    upstream = await startFakeUpstream();
    client = new UpstreamClient({ url: upstream.url, apiKey: undefined, connections: 1, timeoutMs: 200 });
  });

  afterEach(async () => {
    await client.close();
    await upstream.close();
  });

  async function failureOf(): Promise<unknown> {
    try {
      const response = await client.get("/v1/models", { signal: new AbortController().signal });
      await response.body.dump();
      return undefined;
    } catch (error) {
      return error;
    }
  }

  it("tells a server that is gone (refused, reset) from one that answers late or with an error status", async () => {
    upstream.handler = answerJson(500, { error: { code: 500, message: "boom" } });
    expect(await failureOf(), "an HTTP error status is an answer").to.equal(undefined);
    upstream.handler = resetConnection;
    const reset = await failureOf();
    upstream.handler = () => {};
    const late = await failureOf();
    await upstream.close();
    const refused = await failureOf();
    expect([reset, late, refused].map((error) => (error as { code?: unknown }).code)).to.deep.equal([
      "UND_ERR_SOCKET",
      "UND_ERR_HEADERS_TIMEOUT",
      "ECONNREFUSED",
    ]);
    expect([reset, late, refused].map(isConnectionFailure)).to.deep.equal([true, false, true]);
    const refusedInside = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });
    expect(isConnectionFailure(new AggregateError([refusedInside], "happy eyeballs"))).to.equal(true);
    expect(isConnectionFailure(new TypeError("fetch failed", { cause: refusedInside }))).to.equal(true);
    expect(isConnectionFailure(new Error("the local llm server answered HTTP 503"))).to.equal(false);
    expect(isConnectionFailure(undefined)).to.equal(false);
  });
});
