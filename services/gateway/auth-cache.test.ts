import { create } from "@bufbuild/protobuf";
import { expect } from "chai";
import { type Principal, PrincipalSchema } from "../../gen/infermesh/v1/registry_pb.js";
import { ManualClock } from "../../test/support/manual-clock.js";
import { AuthCache } from "./auth-cache.js";

const alice = create(PrincipalSchema, { userId: "u1", userName: "alice", keyId: "k1" });

function cacheWith(answer: () => Promise<Principal | undefined>) {
  const clock = new ManualClock();
  let calls = 0;
  const cache = new AuthCache({
    clock,
    ttlMs: 2_000,
    negativeTtlMs: 1_000,
    staleIfErrorMs: 60_000,
    authenticate: () => {
      calls++;
      return answer();
    },
  });
  return { cache, clock, calls: () => calls };
}

describe("AuthCache", () => {
  it("asks the registry once per TTL for a valid key", async () => {
    const { cache, clock, calls } = cacheWith(async () => alice);
    expect(await cache.principal("k")).to.equal(alice);
    clock.advance(1_999);
    expect(await cache.principal("k")).to.equal(alice);
    expect(calls()).to.equal(1);
    clock.advance(1);
    await cache.principal("k");
    expect(calls()).to.equal(2);
  });

  it("shares one registry call between concurrent misses", async () => {
    const { cache, calls } = cacheWith(async () => alice);
    const answers = await Promise.all([cache.principal("k"), cache.principal("k"), cache.principal("k")]);
    expect(answers).to.deep.equal([alice, alice, alice]);
    expect(calls()).to.equal(1);
  });

  it("remembers a refusal for the negative TTL only", async () => {
    let valid = false;
    const { cache, clock } = cacheWith(async () => (valid ? alice : undefined));
    expect(await cache.principal("k")).to.equal(undefined);
    valid = true;
    expect(await cache.principal("k")).to.equal(undefined);
    clock.advance(1_000);
    expect(await cache.principal("k")).to.equal(alice);
  });

  it("keeps a recently valid key working while the registry is unreachable, but not a refused or unknown one", async () => {
    let reachable = true;
    let valid = true;
    const { cache, clock } = cacheWith(async () => {
      if (!reachable) throw new Error("registry unreachable");
      return valid ? alice : undefined;
    });
    await cache.principal("good");
    valid = false;
    await cache.principal("bad");
    reachable = false;
    clock.advance(30_000);
    expect(await cache.principal("good")).to.equal(alice);
    let refused: unknown;
    await Promise.resolve(cache.principal("bad")).catch((e: unknown) => (refused = e));
    expect(String(refused)).to.contain("unreachable");
    let unknown: unknown;
    await Promise.resolve(cache.principal("never-seen")).catch((e: unknown) => (unknown = e));
    expect(String(unknown)).to.contain("unreachable");
    clock.advance(30_001);
    let expired: unknown;
    await Promise.resolve(cache.principal("good")).catch((e: unknown) => (expired = e));
    expect(String(expired), "stale-if-error is bounded").to.contain("unreachable");
  });

  it("answers a valid key at once just past its TTL while it refreshes, so a frozen registry stalls nobody", async () => {
    let frozen = false;
    let valid = true;
    let timeOut: (error: Error) => void = () => {};
    const { cache, clock, calls } = cacheWith(() =>
      frozen ? new Promise<never>((_, reject) => (timeOut = reject)) : Promise.resolve(valid ? alice : undefined),
    );
    await cache.principal("k");
    frozen = true;
    clock.advance(2_500);
    expect(cache.principal("k"), "answered synchronously").to.equal(alice);
    expect(calls()).to.equal(2);
    timeOut(new Error("registry call timed out"));
    await new Promise((resolve) => setImmediate(resolve));
    frozen = false;
    valid = false;
    clock.advance(4_100);
    expect(await cache.principal("k"), "past TTL + revalidation window the answer waits for the registry").to.equal(undefined);
  });
});
