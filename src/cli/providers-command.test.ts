import { expect } from "chai";
import { refusalMessage as message } from "../../test/support/config-errors.js";
import { parseSharing } from "./providers-command.js";

describe("infermesh providers share's policy", () => {
  it("reads private, public and users:NAME,..., each user once, and refuses anything else", () => {
    expect(parseSharing("private")).to.deep.equal({ visibility: "private", users: [] });
    expect(parseSharing("public")).to.deep.equal({ visibility: "public", users: [] });
    expect(parseSharing("users:alice, bob,alice")).to.deep.equal({ visibility: "users", users: ["alice", "bob"] });
    expect(parseSharing("Public"), "keywords in any case, as the agent's --share").to.deep.equal({ visibility: "public", users: [] });
    for (const text of ["users", "friends"]) {
      expect(
        message(() => parseSharing(text)),
        text,
      ).to.equal(`expects private, public or users:NAME[,NAME...], got '${text}'`);
    }
    expect(message(() => parseSharing("users:"))).to.equal(
      "expects private, public or users:NAME[,NAME...] naming at least one user, got 'users:'",
    );
    expect(message(() => parseSharing("users:a b"))).to.match(/with user names of 1 to 64/);
  });
});
