import { createHash } from "node:crypto";
import { expect } from "chai";
import { generateSessionId, hashSessionId, parseSessionId, sessionIdMatches, sessionKeyId } from "./session-id.js";

/** SESSION_ID_SHAPE is the documented format: `ims_`, a 16-hex public id, `_`, 43 base64url characters. */
const SESSION_ID_SHAPE = /^ims_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/;

describe("session-id", () => {
  it("generates ids of the documented shape whose public id is the one returned", () => {
    const { sessionId, publicId } = generateSessionId();
    expect(sessionId).to.match(SESSION_ID_SHAPE);
    expect(sessionId.startsWith(`ims_${publicId}_`)).to.equal(true);
    expect(Buffer.from(sessionId.slice(4 + 16 + 1), "base64url")).to.have.length(32);
    expect(parseSessionId(sessionId)).to.deep.equal({ publicId });
    expect(sessionKeyId(publicId)).to.equal(`session:${publicId}`);
  });

  it("generates unique ids", () => {
    const ids = new Set<string>();
    const publicIds = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const { sessionId, publicId } = generateSessionId();
      ids.add(sessionId);
      publicIds.add(publicId);
    }
    expect(ids.size).to.equal(2000);
    expect(publicIds.size).to.equal(2000);
  });

  it("rejects ids of any other shape without throwing", () => {
    const { sessionId, publicId } = generateSessionId();
    const secret = sessionId.slice(4 + 16 + 1);
    const bad = [
      "",
      "ims_",
      `${sessionId}A`,
      sessionId.slice(0, -1),
      `${sessionId}${"A".repeat(1_000_000)}`,
      `im_${publicId}_${secret}`,
      `im__${publicId}_${secret}`,
      `IMS_${publicId}_${secret}`,
      `ims_${"g".repeat(16)}_${secret}`,
      `ims_${publicId}-${secret}`,
      `ims_${publicId}_${secret.slice(0, -1)}=`,
      ` ${sessionId}`.slice(0, sessionId.length),
      `${sessionId.slice(1)}\n`,
    ];
    for (const candidate of bad) {
      expect(parseSessionId(candidate), JSON.stringify(candidate.slice(0, 80))).to.equal(undefined);
    }
  });

  it("hashes the whole id with SHA-256 and matches it against its own hash only", () => {
    const { sessionId } = generateSessionId();
    const hash = hashSessionId(sessionId);
    expect(hash).to.deep.equal(createHash("sha256").update(sessionId).digest());
    expect(sessionIdMatches(sessionId, hash)).to.equal(true);
    expect(sessionIdMatches(generateSessionId().sessionId, hash)).to.equal(false);
    expect(sessionIdMatches(sessionId, hash.subarray(0, 31))).to.equal(false);
    expect(sessionIdMatches(sessionId, new Uint8Array(0))).to.equal(false);
  });
});
