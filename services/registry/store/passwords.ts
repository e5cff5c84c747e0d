import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from "node:crypto";
import { WeakPasswordError } from "./store-errors.js";

/** PASSWORD_MIN_LENGTH is the fewest characters (Unicode code points) a password may have. */
export const PASSWORD_MIN_LENGTH = 8;

/** PASSWORD_MAX_LENGTH is the most characters a password may have; it bounds the work one sign-in attempt costs. */
export const PASSWORD_MAX_LENGTH = 1024;

/** SCRYPT_PARAMETERS are the costs new hashes use (N = 2^15, r = 8, p = 1); stored hashes carry their own. */
const SCRYPT_PARAMETERS: ScryptParameters = { cost: 2 ** 15, blockSize: 8, parallelization: 1 };

/**
 * SCRYPT_MAXMEM is the memory one hash may use: 64 MiB. scrypt needs about 128 · N · r bytes, 32 MiB for the
 * parameters above, just over Node's default limit of 32 MiB.
 */
const SCRYPT_MAXMEM = 64 * 1024 * 1024;

/** SALT_BYTES is the size of each hash's random salt. */
const SALT_BYTES = 16;

/** HASH_BYTES is the size of the derived key stored. */
const HASH_BYTES = 32;

/** ENCODED_PATTERN is the strict shape of an encoded hash: `scrypt$N$r$p$saltB64$hashB64`. */
const ENCODED_PATTERN = /^scrypt\$([1-9][0-9]{0,9})\$([1-9][0-9]{0,3})\$([1-9][0-9]{0,3})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

/** ScryptParameters are scrypt's cost parameters, named as node:crypto names them. */
interface ScryptParameters {
  readonly cost: number;
  readonly blockSize: number;
  readonly parallelization: number;
}

/** DecodedPasswordHash is an encoded hash taken apart. */
interface DecodedPasswordHash {
  readonly parameters: ScryptParameters;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

/**
 * DUMMY_PASSWORD_HASH is what a password is checked against when an account has none, or no account has the name,
 * so that the check costs the same scrypt run and its timing does not tell which names exist. verifyPassword never
 * accepts a match against it.
 */
const DUMMY_PASSWORD_HASH: DecodedPasswordHash = {
  parameters: SCRYPT_PARAMETERS,
  salt: Buffer.alloc(SALT_BYTES),
  hash: Buffer.alloc(HASH_BYTES),
};

/**
 * checkPasswordRule throws WeakPasswordError unless password has PASSWORD_MIN_LENGTH to PASSWORD_MAX_LENGTH
 * characters, counted after NFC normalization as hashPassword counts them.
 */
export function checkPasswordRule(password: string): void {
  const length = passwordLength(password);
  if (length < PASSWORD_MIN_LENGTH || length > PASSWORD_MAX_LENGTH) {
    throw new WeakPasswordError(PASSWORD_MIN_LENGTH, PASSWORD_MAX_LENGTH);
  }
}

/**
 * hashPassword derives a self-describing hash `scrypt$N$r$p$saltB64$hashB64` of password with a fresh random salt,
 * after checking it against checkPasswordRule. The derivation runs on libuv's thread pool, not the event loop.
 */
export async function hashPassword(password: string): Promise<string> {
  checkPasswordRule(password);
  const salt = randomBytes(SALT_BYTES);
  const hash = await deriveKey(password, salt, SCRYPT_PARAMETERS, HASH_BYTES);
  return encodePasswordHash(SCRYPT_PARAMETERS, salt, hash);
}

/**
 * verifyPassword tells whether password is the one encodedHash was made from. An undefined or malformed encodedHash
 * is checked against DUMMY_PASSWORD_HASH and fails, in about the time a real check takes.
 */
export async function verifyPassword(password: string, encodedHash: string | undefined): Promise<boolean> {
  // No stored password is this long, and refusing it at once tells nothing about any account.
  if (typeof password !== "string" || passwordLength(password) > PASSWORD_MAX_LENGTH) {
    return false;
  }
  const decoded = encodedHash === undefined ? undefined : decodePasswordHash(encodedHash);
  const target = decoded ?? DUMMY_PASSWORD_HASH;
  const derived = await deriveKey(password, target.salt, target.parameters, target.hash.length);
  const matches = timingSafeEqual(derived, target.hash);
  return matches && decoded !== undefined;
}

/** encodePasswordHash writes the stored form of a hash, naming its parameters so that they can change later. */
function encodePasswordHash(parameters: ScryptParameters, salt: Buffer, hash: Buffer): string {
  const { cost, blockSize, parallelization } = parameters;
  return `scrypt$${cost}$${blockSize}$${parallelization}$${salt.toString("base64")}$${hash.toString("base64")}`;
}

/**
 * decodePasswordHash parses an encoded hash, or returns undefined when it is malformed or asks for parameters
 * beyond SCRYPT_MAXMEM, so that a damaged row cannot make a sign-in attempt exhaust memory.
 */
function decodePasswordHash(encodedHash: string): DecodedPasswordHash | undefined {
  const match = ENCODED_PATTERN.exec(encodedHash);
  if (match === null) {
    return undefined;
  }
  const [, costText, blockSizeText, parallelizationText, saltText, hashText] = match;
  const parameters = { cost: Number(costText), blockSize: Number(blockSizeText), parallelization: Number(parallelizationText) };
  const salt = Buffer.from(saltText ?? "", "base64");
  const hash = Buffer.from(hashText ?? "", "base64");
  const isPowerOfTwo = parameters.cost > 1 && (parameters.cost & (parameters.cost - 1)) === 0;
  if (!isPowerOfTwo || scryptMemory(parameters) > SCRYPT_MAXMEM || salt.length < 8 || hash.length < 16 || hash.length > 64) {
    return undefined;
  }
  return { parameters, salt, hash };
}

/** scryptMemory is what OpenSSL's scrypt allocates for parameters, the figure it checks against maxmem. */
function scryptMemory({ cost, blockSize, parallelization }: ScryptParameters): number {
  return 128 * blockSize * (cost + 2) + 128 * blockSize * parallelization;
}

/** deriveKey runs the asynchronous scrypt of node:crypto over the NFC form of password. */
function deriveKey(password: string, salt: Buffer, parameters: ScryptParameters, keyLength: number): Promise<Buffer> {
  const options: ScryptOptions = { ...parameters, maxmem: SCRYPT_MAXMEM };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize("NFC"), salt, keyLength, options, (error, key) => (error === null ? resolve(key) : reject(error)));
  });
}

/**
 * passwordLength counts password's code points after NFC normalization, so that "é" typed either way counts once.
 * A string over twice PASSWORD_MAX_LENGTH UTF-16 units counts as its UTF-16 length, too long, without being normalized.
 */
function passwordLength(password: string): number {
  if (password.length > PASSWORD_MAX_LENGTH * 2) {
    return password.length;
  }
  return Array.from(password.normalize("NFC")).length;
}
