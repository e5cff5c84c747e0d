import { expect } from "chai";
import { refusalMessage as message } from "../../test/support/config-errors.js";
import { parseSharing } from "./providers-command.js";

describe("infermesh providers share's policy", () => {
  it("reads private, public and users:NAME,..., each user once, and refuses anything else", () => {
    expect(parseSharing("private")).to.deep.equal({ visibility: "private", users: [] });
    expect(parseSharing("public")).to.deep.equal({ visibility: "public", users: [] });
    expect(parseSharing("users:alice, bob,alice")).to.deep.equal({ visibility: "users", users: ["alice", "bob"] });
    for (const text of ["users:", "users", "friends", "Public"]) {
      expect(
        message(() => parseSharing(text)),
        text,
      ).to.equal(`expects a sharing policy, private, public or users:NAME[,NAME]..., got '${text}'`);
    }
  });
});
