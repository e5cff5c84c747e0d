import { expect } from "chai";
import { errors } from "undici";
import { describeUpstreamFailure } from "./upstream-failure.js";

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
