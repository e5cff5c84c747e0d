import { expect } from "chai";
import { editDistance, nearestName } from "./nearest-name.js";

describe("nearestName", () => {
  it("counts insertions, deletions, replacements and swapped neighbours as one edit each", () => {
    expect(editDistance("listen", "listen")).to.equal(0);
    expect(editDistance("listn", "listen")).to.equal(1);
    expect(editDistance("listenn", "listen")).to.equal(1);
    expect(editDistance("lusten", "listen")).to.equal(1);
    expect(editDistance("hepl", "help")).to.equal(1);
    expect(editDistance("", "abc")).to.equal(3);
    expect(editDistance("kitten", "sitting")).to.equal(3);
  });

  it("suggests the closest name within a third of the word's length, case aside, and nothing for a far-off word", () => {
    const flags = ["listen", "grpc-listen", "metrics-listen", "registry", "log-level"];
    expect(nearestName("listn", flags)).to.equal("listen");
    expect(nearestName("LISTEN", flags)).to.equal("listen");
    expect(nearestName("registy", flags)).to.equal("registry");
    expect(nearestName("metrics-lsiten", flags)).to.equal("metrics-listen");
    expect(nearestName("bogus", flags)).to.equal(undefined);
    expect(nearestName("log", flags), "a prefix is no typo").to.equal(undefined);
    expect(nearestName("x", ["y"]), "one edit is always near enough").to.equal("y");
  });
});
