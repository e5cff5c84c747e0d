import { expect } from "chai";
import { ManualClock } from "../../test/support/manual-clock.js";
import { ProviderHealth } from "./provider-health.js";

describe("ProviderHealth", () => {
  it("opens after the threshold of failures in a row, and a success in between resets the count", () => {
    const health = new ProviderHealth({ clock: new ManualClock(), failureThreshold: 3, cooldownMs: 1_000 });
    health.failed("p");
    health.failed("p");
    health.succeeded("p");
    health.failed("p");
    health.failed("p");
    expect(health.available("p")).to.equal(true);
    health.failed("p");
    expect(health.isOpen("p")).to.equal(true);
    expect(health.available("p")).to.equal(false);
  });

  it("lets exactly one probe through after the cooldown; its success closes the circuit", () => {
    const clock = new ManualClock();
    const health = new ProviderHealth({ clock, failureThreshold: 1, cooldownMs: 1_000 });
    health.failed("p");
    clock.advance(999);
    expect(health.available("p")).to.equal(false);
    clock.advance(1);
    expect(health.available("p")).to.equal(true);
    health.acquire("p");
    expect(health.available("p"), "a second request waits for the probe").to.equal(false);
    health.succeeded("p");
    expect(health.available("p")).to.equal(true);
    expect(health.isOpen("p")).to.equal(false);
  });

  it("reopens for another cooldown when the probe fails, and a released probe frees the slot", () => {
    const clock = new ManualClock();
    const health = new ProviderHealth({ clock, failureThreshold: 1, cooldownMs: 1_000 });
    health.failed("p");
    clock.advance(1_000);
    health.acquire("p");
    health.released("p");
    expect(health.available("p")).to.equal(true);
    health.acquire("p");
    health.failed("p");
    expect(health.available("p")).to.equal(false);
    clock.advance(1_000);
    expect(health.available("p")).to.equal(true);
  });
});
