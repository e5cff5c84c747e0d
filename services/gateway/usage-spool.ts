import { randomUUID } from "node:crypto";
import { closeSync, openSync, readdirSync, readFileSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { ConfigError } from "../shared/config-error.js";
import { isObject } from "../shared/json-object.js";
import type { Logger } from "../shared/logger.js";
import type { UsageRecordData } from "../shared/usage-record.js";

/** UsageSpoolOptions configure a UsageSpool. */
export interface UsageSpoolOptions {
  /** path names the spool: segments are PATH.1, PATH.2, ... beside it, and PATH.lock holds the owner's pid. */
  readonly path: string;
  readonly log: Logger;
  /** pid is the process the lock is taken for; isAlive tells whether a lock's pid still runs. Tests replace them. */
  readonly pid?: number;
  readonly isAlive?: (pid: number) => boolean;
}

/** Segment is one spool file: its records that are still to be settled, and whether records may still join it. */
interface Segment {
  readonly file: string;
  pending: number;
  /** fd is open while the segment is the current one; a sealed segment is deleted once nothing in it is pending. */
  fd: number | undefined;
}

/**
 * UsageSpool keeps a gateway's unsent usage records on disk, so that a gateway killed (SIGKILL) before it sent them
 * sends them when it starts again on the same path. Each record is appended to the current segment, one JSON line
 * written synchronously: once write() returns the line is in the OS page cache, which outlives the process but not a
 * power loss (there is no fsync). rotate() seals the current segment (the recorder does when it closes a batch), and
 * a sealed segment is deleted as soon as every record in it is settled: stored, refused for good or dropped.
 * Segments left by a predecessor are read on open (a torn last line is skipped) and their records handed out once by
 * takeLeftovers(), under their own ids, so that one stored before the kill is stored once. One process at a time
 * may use a path: PATH.lock names it.
 */
export class UsageSpool {
  readonly #path: string;
  readonly #log: Logger;
  readonly #lockText: string;
  #seq = 0;
  #current: Segment | undefined;
  readonly #segmentOf = new Map<UsageRecordData, Segment>();
  #leftovers: UsageRecordData[] = [];
  #failing = false;
  #closed = false;

  /** constructor takes the lock and reads the segments left on the path; it throws a ConfigError when another process holds it. */
  constructor(options: UsageSpoolOptions) {
    const pid = options.pid ?? process.pid;
    this.#path = options.path;
    this.#log = options.log;
    this.#lockText = `${pid} ${randomUUID()}\n`;
    takeLock(`${options.path}.lock`, this.#lockText, pid, options.isAlive ?? isAlive);
    this.#load();
  }

  /** path is the spool's path, as given. */
  get path(): string {
    return this.#path;
  }

  /** pending is the number of records written to the spool and not settled yet. */
  get pending(): number {
    return this.#segmentOf.size;
  }

  /** takeLeftovers returns the records a predecessor left unsent, oldest first, the first time it is called. */
  takeLeftovers(): UsageRecordData[] {
    const leftovers = this.#leftovers;
    this.#leftovers = [];
    return leftovers;
  }

  /**
   * append writes one record to the current segment before it returns. A record that cannot be written (disk full)
   * is still sent, as without a spool; the failure is logged once until a write succeeds again.
   */
  append(record: UsageRecordData): void {
    if (this.#closed) return;
    let segment = this.#current;
    try {
      if (segment === undefined) {
        const file = `${this.#path}.${++this.#seq}`;
        segment = { file, pending: 0, fd: openSync(file, "a") };
        this.#current = segment;
      }
      writeAll(segment.fd as number, Buffer.from(`${JSON.stringify(record)}\n`));
    } catch (error) {
      if (!this.#failing) this.#log.error({ err: error, spool: this.#path }, "cannot write a usage record to the spool");
      this.#failing = true;
      return;
    }
    if (this.#failing) this.#log.info({ spool: this.#path }, "usage records are written to the spool again");
    this.#failing = false;
    segment.pending++;
    this.#segmentOf.set(record, segment);
  }

  /** rotate seals the current segment: records appended after go to a new one. */
  rotate(): void {
    const segment = this.#current;
    if (segment === undefined) return;
    this.#current = undefined;
    this.#seal(segment);
  }

  /** settle forgets records that need no sending any more, deleting each sealed segment left with none pending. */
  settle(records: readonly UsageRecordData[]): void {
    for (const record of records) {
      const segment = this.#segmentOf.get(record);
      if (segment === undefined) continue;
      this.#segmentOf.delete(record);
      segment.pending--;
      if (segment.pending === 0 && segment.fd === undefined) this.#delete(segment.file);
    }
  }

  /**
   * close seals the current segment and gives the lock up. Segments with records still pending stay for the next
   * gateway on this path; a record settled later still deletes its segment when it was the last one pending.
   */
  close(): void {
    if (this.#closed) return;
    this.rotate();
    this.#closed = true;
    const lock = `${this.#path}.lock`;
    try {
      if (readFileSync(lock, "utf8") === this.#lockText) unlinkSync(lock);
    } catch (error) {
      this.#log.warn({ err: error, lock }, "cannot release the usage spool's lock");
    }
  }

  #seal(segment: Segment): void {
    if (segment.fd !== undefined) {
      try {
        closeSync(segment.fd);
      } catch {
        // The lines are written already; a failed close loses nothing.
      }
      segment.fd = undefined;
    }
    if (segment.pending === 0) this.#delete(segment.file);
  }

  #delete(file: string): void {
    try {
      unlinkSync(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") this.#log.warn({ err: error, file }, "cannot delete a usage spool segment");
    }
  }

  /** #load reads the segments on the path, oldest first, and numbers new ones after them. */
  #load(): void {
    const dir = dirname(this.#path);
    const prefix = `${basename(this.#path)}.`;
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch (error) {
      throw new ConfigError("usageSpool", `the usage spool's folder ${dir} cannot be read: ${(error as Error).message}`);
    }
    const seqs = names
      .filter((name) => name.startsWith(prefix) && /^[1-9][0-9]*$/.test(name.slice(prefix.length)))
      .map((name) => Number(name.slice(prefix.length)))
      .filter(Number.isSafeInteger)
      .sort((a, b) => a - b);
    let skipped = 0;
    for (const seq of seqs) {
      const file = join(dir, `${prefix}${seq}`);
      const segment: Segment = { file, pending: 0, fd: undefined };
      for (const line of readFileSync(file, "utf8").split("\n")) {
        if (line === "") continue;
        const record = parseRecord(line);
        if (record === undefined) {
          skipped++;
          continue;
        }
        segment.pending++;
        this.#segmentOf.set(record, segment);
        this.#leftovers.push(record);
      }
      if (segment.pending === 0) this.#delete(file);
      this.#seq = seq;
    }
    if (this.#leftovers.length > 0 || skipped > 0) {
      this.#log.info(
        { spool: this.#path, records: this.#leftovers.length, skippedLines: skipped },
        "usage records left unsent by a previous gateway will be sent first",
      );
    }
  }
}

/** takeLock creates the lock file, or takes over one whose process is gone (or is this one: a restarted container). */
function takeLock(lock: string, text: string, pid: number, alive: (pid: number) => boolean): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lock, text, { flag: "wx" });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new ConfigError("usageSpool", `cannot create the usage spool's lock ${lock}: ${(error as Error).message}`);
      }
    }
    let holder = Number.NaN;
    try {
      holder = Number.parseInt(readFileSync(lock, "utf8"), 10);
    } catch {
      // Gone meanwhile, or unreadable: try once more to create it.
    }
    if (Number.isSafeInteger(holder) && holder > 0 && holder !== pid && alive(holder)) {
      throw new ConfigError("usageSpool", `the usage spool ${lock.slice(0, -".lock".length)} is in use by process ${holder}`);
    }
    try {
      unlinkSync(lock);
    } catch {
      // Another process took it over first: creating it again tells.
    }
  }
  throw new ConfigError("usageSpool", `the usage spool's lock ${lock} was taken by another process`);
}

/** isAlive tells whether a process with this pid runs (EPERM: it runs, under another user). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function writeAll(fd: number, bytes: Buffer): void {
  for (let offset = 0; offset < bytes.length; ) offset += writeSync(fd, bytes, offset);
}

const STRING_FIELDS = ["id", "userId", "keyId", "providerId", "providerOwnerId", "providerName", "model", "operation"] as const;
const NUMBER_FIELDS = ["timeMs", "status", "promptTokens", "completionTokens", "audioSeconds", "images", "ttfbMs", "durationMs"] as const;

/** parseRecord reads one spool line, or undefined for a line that is not a whole record (torn by a kill mid-write). */
function parseRecord(line: string): UsageRecordData | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!isObject(value)) return undefined;
  const fields = value;
  if (!STRING_FIELDS.every((name) => typeof fields[name] === "string")) return undefined;
  if (!NUMBER_FIELDS.every((name) => typeof fields[name] === "number")) return undefined;
  if (fields.id === "") return undefined;
  return Object.fromEntries([...STRING_FIELDS, ...NUMBER_FIELDS].map((name) => [name, fields[name]])) as unknown as UsageRecordData;
}
