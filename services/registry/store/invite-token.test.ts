import { createHash } from "node:crypto";
import { expect } from "chai";
import { generateInviteToken, hashInviteToken } from "./invite-token.js";

describe("invite-token", () => {
  it("generates 32 random bytes as unpadded base64url, hashed with SHA-256", () => {
    const token = generateInviteToken();
    expect(token).to.match(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(token, "base64url")).to.have.length(32);
    expect(hashInviteToken(token)).to.deep.equal(createHash("sha256").update(token).digest());
    expect(generateInviteToken()).to.not.equal(token);
  });

  it("refuses to hash a token of any other shape, without throwing", () => {
    const token = generateInviteToken();
    for (const candidate of [
      "",
      token.slice(0, -1),
      `${token}A`,
      `${token.slice(0, -1)}=`,
      `${token.slice(0, -1)}+`,
      "A".repeat(1_000_000),
    ]) {
      expect(hashInviteToken(candidate), JSON.stringify(candidate.slice(0, 60))).to.equal(undefined);
    }
  });
});
