import { scryptSync } from "node:crypto";
import { expect } from "chai";
import { checkPasswordRule, hashPassword, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, verifyPassword } from "./passwords.js";
import { WeakPasswordError } from "./store-errors.js";

/** HASH_SHAPE is the documented encoding with today's parameters, a 16-byte salt and a 32-byte hash. */
const HASH_SHAPE = /^scrypt\$32768\$8\$1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/;

/** encodeWith hashes password with chosen parameters, as a hash from an older or newer infermesh would be. */
function encodeWith(password: string, cost: number, blockSize: number, parallelization: number): string {
  const salt = Buffer.from("0123456789abcdef");
  const hash = scryptSync(password, salt, 32, { cost, blockSize, parallelization, maxmem: 64 * 1024 * 1024 });
  return `scrypt$${cost}$${blockSize}$${parallelization}$${salt.toString("base64")}$${hash.toString("base64")}`;
}

/** elapsedMs is how long action took, in milliseconds. */
async function elapsedMs(action: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await action();
  return performance.now() - start;
}

describe("passwords", () => {
  it("hashes to the self-describing scrypt encoding with a fresh salt each time", async () => {
    const first = await hashPassword("correct horse");
    const second = await hashPassword("correct horse");
    expect(first).to.match(HASH_SHAPE);
    expect(second).to.match(HASH_SHAPE);
    expect(first.split("$")[4]).to.not.equal(second.split("$")[4]);
    expect(first).to.not.include("correct horse");
  });

  it("verifies a password against its own hash only", async () => {
    const hash = await hashPassword("correct horse");
    expect(await verifyPassword("correct horse", hash)).to.equal(true);
    expect(await verifyPassword("correct horsE", hash)).to.equal(false);
    expect(await verifyPassword("correct horse ", hash)).to.equal(false);
    expect(await verifyPassword("", hash)).to.equal(false);
  });

  it("reads the parameters from the stored hash, so that they can change later", async () => {
    const older = encodeWith("correct horse", 2 ** 10, 4, 2);
    expect(await verifyPassword("correct horse", older)).to.equal(true);
    expect(await verifyPassword("wrong horse", older)).to.equal(false);
  });

  it("refuses missing, malformed and oversized hashes without throwing", async () => {
    const good = await hashPassword("correct horse");
    const [, , , , salt, hash] = good.split("$");
    const bad = [
      undefined,
      "",
      "scrypt",
      good.replace("scrypt$", "bcrypt$"),
      good.replace("$32768$", "$32767$"),
      good.replace("$32768$", "$0$"),
      `scrypt$1048576$8$1$${salt}$${hash}`,
      `scrypt$32768$8$1$${salt}$`,
      `scrypt$32768$8$1$$${hash}`,
      `${good}$`,
      `${good}\n`,
    ];
    for (const encoded of bad) {
      expect(await verifyPassword("correct horse", encoded), JSON.stringify(encoded)).to.equal(false);
    }
  });

  it("checks an unknown account's password in about the time of a real check", async () => {
    const hash = await hashPassword("correct horse");
    const real = await elapsedMs(() => verifyPassword("wrong horse", hash));
    const dummy = await elapsedMs(() => verifyPassword("wrong horse", undefined));
    // A skipped scrypt run takes well under a millisecond; a run takes tens of milliseconds.
    expect(dummy).to.be.greaterThan(real * 0.3);
  });

  it("keeps the event loop turning while it hashes", async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    try {
      await hashPassword("correct horse");
      await verifyPassword("correct horse", undefined);
    } finally {
      clearInterval(timer);
    }
    expect(ticks).to.be.greaterThan(2);
  });

  it("requires 8 to 1024 characters, counted as code points after NFC normalization", async () => {
    const weak = ["", "1234567", "a".repeat(PASSWORD_MAX_LENGTH + 1), "e\u0301".repeat(7), "😀".repeat(PASSWORD_MAX_LENGTH + 1)];
    for (const password of weak) {
      expect(() => checkPasswordRule(password), JSON.stringify(password.slice(0, 20)))
        .to.throw(WeakPasswordError)
        .with.property("message", `a password must be ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters long`);
    }
    let caught: unknown;
    try {
      await hashPassword("1234567");
    } catch (error) {
      caught = error;
    }
    expect(caught).to.be.instanceOf(WeakPasswordError);
    for (const password of [
      "12345678",
      "a".repeat(PASSWORD_MAX_LENGTH),
      "😀".repeat(8),
      "😀".repeat(PASSWORD_MAX_LENGTH),
      "e\u0301".repeat(8),
    ]) {
      expect(() => checkPasswordRule(password), JSON.stringify(password.slice(0, 20))).to.not.throw();
    }
  });

  it("matches a password typed in either Unicode normal form", async () => {
    const hash = await hashPassword("caf\u00e9 au lait");
    expect(await verifyPassword("cafe\u0301 au lait", hash)).to.equal(true);
  });

  it("refuses a password too long to have been set without hashing it", async () => {
    const hash = await hashPassword("a".repeat(PASSWORD_MAX_LENGTH));
    expect(await verifyPassword("a".repeat(PASSWORD_MAX_LENGTH), hash)).to.equal(true);
    const huge = "a".repeat(10_000_000);
    const took = await elapsedMs(() => verifyPassword(huge, hash));
    expect(await verifyPassword(huge, hash)).to.equal(false);
    expect(took).to.be.lessThan(20);
  });
});
