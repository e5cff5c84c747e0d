import { expect } from "chai";
import { ManualClock } from "../../test/support/manual-clock.js";
import { type AbortableCall, AgentShuttingDown, CallTracker, DeadlineExceeded } from "./call-tracker.js";

function abortableCall(): AbortableCall {
  const controller = new AbortController();
  return { signal: controller.signal, abort: (reason) => controller.abort(reason) };
}

describe("CallTracker", () => {
  it("fires the call's own signal when its deadline passes, and forgets the timer once the call ends", () => {
    const clock = new ManualClock();
    const tracker = new CallTracker(clock);
    const call = abortableCall();
    const tracked = tracker.begin(call, clock.now() + 1_000);
    expect(tracked.signal).to.equal(call.signal);
    clock.advance(999);
    expect(call.signal.aborted).to.equal(false);
    clock.advance(1);
    expect(call.signal.reason).to.be.instanceOf(DeadlineExceeded);

    const ended = tracker.begin(abortableCall(), clock.now() + 1_000);
    ended.end();
    expect(clock.pendingTimers).to.equal(0);
    expect(ended.signal.aborted).to.equal(false);
  });

  it("aborts a call whose deadline has already passed at once", () => {
    const clock = new ManualClock();
    const tracked = new CallTracker(clock).begin(abortableCall(), clock.now() - 1);
    expect(tracked.signal.reason).to.be.instanceOf(DeadlineExceeded);
  });

  it("keeps the first reason: a client's cancel is not overwritten by a later deadline or shutdown", () => {
    const clock = new ManualClock();
    const tracker = new CallTracker(clock);
    const call = abortableCall();
    tracker.begin(call, clock.now() + 1_000);
    const cancelled = new Error("client left");
    call.abort(cancelled);
    clock.advance(1_000);
    tracker.abortAll(new AgentShuttingDown("stop"));
    expect(call.signal.reason).to.equal(cancelled);
  });

  it("counts calls, aborts those still running on shutdown, and wakes idle waiters when the last one ends", async () => {
    const tracker = new CallTracker(new ManualClock());
    const first = tracker.begin(abortableCall(), undefined);
    const second = tracker.begin(abortableCall(), undefined);
    expect(tracker.size).to.equal(2);
    let idle = false;
    const waiting = tracker.whenIdle().then(() => (idle = true));
    first.end();
    first.end();
    tracker.abortAll(new AgentShuttingDown("the agent shut down"));
    expect(first.signal.aborted).to.equal(false);
    expect(second.signal.reason).to.be.instanceOf(AgentShuttingDown);
    await Promise.resolve();
    expect(idle).to.equal(false);
    second.end();
    await waiting;
    expect([idle, tracker.size]).to.deep.equal([true, 0]);
  });
});
