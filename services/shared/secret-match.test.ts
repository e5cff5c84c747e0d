import { expect } from "chai";
import { secretMatcher } from "./secret-match.js";

describe("secretMatcher", () => {
  it("accepts the secret, also again and again, and refuses guesses of every other length and content", () => {
    const secret = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5";
    const matches = secretMatcher(secret);
    expect([matches(secret), matches(`${secret}`), matches(secret.slice(0))]).to.deep.equal([true, true, true]);
    for (const guess of ["", secret.slice(0, -1), `${secret}x`, `${secret.slice(0, -1)}A`, secret.toLowerCase(), ` ${secret}`]) {
      expect(matches(guess), guess).to.equal(false);
    }
    expect(matches(secret)).to.equal(true);
  });
});
