import { Code } from "@connectrpc/connect";
import { expect } from "chai";
import { grpcCodeFor, httpFailureFor } from "./status-mapping.js";

/** ALL_CODES are every gRPC code connect-es knows, read from the enum so that a new one is tested without an edit. */
const ALL_CODES: readonly Code[] = Object.values(Code).filter((value): value is Code => typeof value === "number");

describe("status mapping (gRPC code <-> HTTP status)", () => {
  it("reads all sixteen gRPC codes from the enum", () => {
    expect(ALL_CODES.map((code) => Code[code])).to.deep.equal([
      "Canceled",
      "Unknown",
      "InvalidArgument",
      "DeadlineExceeded",
      "NotFound",
      "AlreadyExists",
      "PermissionDenied",
      "ResourceExhausted",
      "FailedPrecondition",
      "Aborted",
      "OutOfRange",
      "Unimplemented",
      "Internal",
      "Unavailable",
      "DataLoss",
      "Unauthenticated",
    ]);
  });

  it("gives back the same HTTP failure for every code after a round trip through its status", () => {
    const roundTrips = ALL_CODES.map((code) => ({ code: Code[code], failure: httpFailureFor(grpcCodeFor(httpFailureFor(code).status)) }));
    expect(roundTrips).to.deep.equal(ALL_CODES.map((code) => ({ code: Code[code], failure: httpFailureFor(code) })));
  });

  it("maps every status httpFailureFor yields to a code that yields that status again", () => {
    const statuses = [...new Set(ALL_CODES.map((code) => httpFailureFor(code).status))].sort((a, b) => a - b);
    expect(statuses, "the statuses a gRPC failure surfaces as").to.deep.equal([400, 404, 429, 499, 501, 502, 504]);
    expect(statuses.map((status) => httpFailureFor(grpcCodeFor(status)).status)).to.deep.equal(statuses);
  });

  it("maps the statuses only the HTTP face produces to the codes a gRPC caller expects", () => {
    const httpOnly = [401, 403, 413, 500, 503];
    expect(httpOnly.map((status) => ({ status, code: Code[grpcCodeFor(status)] }))).to.deep.equal([
      { status: 401, code: "Unauthenticated" },
      { status: 403, code: "PermissionDenied" },
      { status: 413, code: "ResourceExhausted" },
      { status: 500, code: "Internal" },
      { status: 503, code: "Unavailable" },
    ]);
  });

  it("answers each code with the HTTP status and OpenAI error type its meaning calls for", () => {
    const table = Object.fromEntries(ALL_CODES.map((code) => [Code[code], httpFailureFor(code)]));
    const upstream = { status: 502, type: "upstream_error" };
    const invalid = { status: 400, type: "invalid_request_error" };
    expect(table).to.deep.equal({
      Canceled: { status: 499, type: "cancelled" },
      Unknown: upstream,
      InvalidArgument: invalid,
      DeadlineExceeded: { status: 504, type: "timeout" },
      NotFound: { status: 404, type: "no_provider" },
      AlreadyExists: upstream,
      // The gateway's own mesh credential refused by an agent is not the client's fault.
      PermissionDenied: upstream,
      ResourceExhausted: { status: 429, type: "rate_limit_exceeded" },
      FailedPrecondition: invalid,
      Aborted: upstream,
      OutOfRange: invalid,
      Unimplemented: { status: 501, type: "not_implemented" },
      Internal: upstream,
      Unavailable: upstream,
      DataLoss: upstream,
      Unauthenticated: upstream,
    });
  });

  it("maps other 4xx statuses to FailedPrecondition and other 5xx statuses to Unavailable", () => {
    expect([409, 418, 422, 505, 599].map((status) => Code[grpcCodeFor(status)])).to.deep.equal([
      "FailedPrecondition",
      "FailedPrecondition",
      "FailedPrecondition",
      "Unavailable",
      "Unavailable",
    ]);
  });
});
