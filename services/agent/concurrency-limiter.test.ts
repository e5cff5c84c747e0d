import { expect } from "chai";
import { ConcurrencyLimiter, QueueFullError, type Release } from "./concurrency-limiter.js";

describe("ConcurrencyLimiter", () => {
  it("admits up to its limit, queues up to its queue size, then refuses at once", async () => {
    const limiter = new ConcurrencyLimiter(2, 1);
    const first = await limiter.acquire();
    await limiter.acquire();
    const queued = limiter.acquire();
    expect([limiter.inFlight, limiter.queued]).to.deep.equal([2, 1]);
    const refused = await limiter.acquire().catch((error: unknown) => error);
    expect(refused).to.be.instanceOf(QueueFullError);
    first();
    first();
    const third = await queued;
    expect([limiter.inFlight, limiter.queued]).to.deep.equal([2, 0]);
    third();
  });

  it("serves waiters first come, first served", async () => {
    const limiter = new ConcurrencyLimiter(1, 3);
    const holder = await limiter.acquire();
    const order: number[] = [];
    const waiting = [1, 2, 3].map((n) =>
      limiter.acquire().then((release) => {
        order.push(n);
        return release;
      }),
    );
    holder();
    for (const next of waiting) (await next)();
    expect(order).to.deep.equal([1, 2, 3]);
    expect([limiter.inFlight, limiter.queued]).to.deep.equal([0, 0]);
  });

  it("takes a waiter whose signal aborts out of the queue and rejects it with the signal's reason", async () => {
    const limiter = new ConcurrencyLimiter(1, 1);
    const holder = await limiter.acquire();
    const controller = new AbortController();
    const waiting = limiter.acquire(controller.signal);
    controller.abort(new Error("client left"));
    expect(((await waiting.catch((error: unknown) => error)) as Error).message).to.equal("client left");
    expect(limiter.queued).to.equal(0);
    const next: Promise<Release> = limiter.acquire();
    holder();
    (await next)();
    expect(limiter.inFlight).to.equal(0);
  });

  it("rejects an already aborted signal without taking a slot", async () => {
    const limiter = new ConcurrencyLimiter(1, 0);
    const error = await limiter.acquire(AbortSignal.abort(new Error("gone"))).catch((e: unknown) => e);
    expect((error as Error).message).to.equal("gone");
    expect(limiter.inFlight).to.equal(0);
  });
});
