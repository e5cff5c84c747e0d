import { expect } from "chai";
import { mediaType } from "./upstream-client.js";

describe("mediaType", () => {
  it("drops parameters and surrounding space and lowers the case, and keeps a clean type as it is", () => {
    expect(
      [
        "application/json",
        "text/event-stream; charset=utf-8",
        " Text/Event-Stream ;charset=UTF-8",
        "APPLICATION/JSON",
        "",
        ";",
        "text/plain;",
      ].map(mediaType),
    ).to.deep.equal(["application/json", "text/event-stream", "text/event-stream", "application/json", "", "", "text/plain"]);
  });
});
