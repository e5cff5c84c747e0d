import { expect } from "chai";
import { ManualClock } from "../../test/support/manual-clock.js";
import { LoginLimiter } from "./login-limiter.js";

describe("LoginLimiter", () => {
  const limits = { windowMs: 60_000, perAddress: 5, perUserName: 3 };

  it("locks a user name after its failures, from any address, until its window ends", () => {
    const clock = new ManualClock();
    const limiter = new LoginLimiter(clock, limits);
    for (let i = 0; i < 3; i++) {
      expect(limiter.retryAfterSeconds(`10.0.0.${i}`, "Alice")).to.equal(0);
      limiter.failed(`10.0.0.${i}`, "Alice");
    }
    expect(limiter.retryAfterSeconds("10.0.0.9", "alice"), "names compare without case").to.equal(60);
    clock.advance(59_500);
    expect(limiter.retryAfterSeconds("10.0.0.9", "alice")).to.equal(1);
    clock.advance(500);
    expect(limiter.retryAfterSeconds("10.0.0.9", "alice")).to.equal(0);
  });

  it("locks an address after its failures, whatever names it tries, and leaves other addresses be", () => {
    const clock = new ManualClock();
    const limiter = new LoginLimiter(clock, limits);
    for (let i = 0; i < 5; i++) limiter.failed("10.0.0.1", `name-${i}`);
    expect(limiter.retryAfterSeconds("10.0.0.1", "someone-else")).to.equal(60);
    expect(limiter.retryAfterSeconds("10.0.0.2", "someone-else")).to.equal(0);
  });

  it("counts failures that name no user (sign-in links) against the address alone, with the address's other failures", () => {
    const clock = new ManualClock();
    const limiter = new LoginLimiter(clock, limits);
    for (let i = 0; i < 3; i++) limiter.failed("10.0.0.1");
    expect(limiter.retryAfterSeconds("10.0.0.1")).to.equal(0);
    expect(limiter.retryAfterSeconds("10.0.0.2", "alice"), "no name was charged").to.equal(0);
    limiter.failed("10.0.0.1", "alice");
    limiter.failed("10.0.0.1");
    expect(limiter.retryAfterSeconds("10.0.0.1")).to.equal(60);
    expect(limiter.retryAfterSeconds("10.0.0.1", "bob"), "a password sign-in from there waits too").to.equal(60);
    expect(limiter.retryAfterSeconds("10.0.0.2")).to.equal(0);
  });

  it("forgets a name's failures when its owner signs in", () => {
    const limiter = new LoginLimiter(new ManualClock(), limits);
    limiter.failed("10.0.0.1", "bob");
    limiter.failed("10.0.0.2", "bob");
    limiter.succeeded("bob");
    limiter.failed("10.0.0.3", "bob");
    limiter.failed("10.0.0.3", "bob");
    expect(limiter.retryAfterSeconds("10.0.0.4", "bob")).to.equal(0);
  });
});
