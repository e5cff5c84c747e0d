import { readFileSync } from "node:fs";

/** CAPTURES is where the real llama-server exchanges the simulator imitates are kept. */
const CAPTURES = new URL("../../../test/fixtures/llama-server/", import.meta.url);

/** capture reads one file of a captured exchange (`NAME.body`, `NAME.headers`, `NAME.status`) as text. */
export function capture(file: string): string {
  return readFileSync(new URL(file, CAPTURES), "utf8");
}

/** captureJson parses a captured body. */
export function captureJson(name: string): unknown {
  return JSON.parse(capture(`${name}.body`)) as unknown;
}

/** captureStatus is a captured exchange's HTTP status. */
export function captureStatus(name: string): number {
  return Number(capture(`${name}.status`).trim());
}

/** captureHeader reads one header of a captured response, by case-insensitive name. */
export function captureHeader(name: string, header: string): string | undefined {
  for (const line of capture(`${name}.headers`).split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0 && line.slice(0, colon).toLowerCase() === header.toLowerCase()) return line.slice(colon + 1).trim();
  }
  return undefined;
}

/** dig walks into parsed JSON by keys and indexes, undefined when the path does not exist. */
export function dig(value: unknown, ...path: ReadonlyArray<string | number>): unknown {
  let current = value;
  for (const step of path) {
    if (typeof current !== "object" || current === null) return undefined;
    current = (current as Readonly<Record<string | number, unknown>>)[step];
  }
  return current;
}

/** keysOf lists an object's keys in order ([] for anything else), to compare field order with a capture's. */
export function keysOf(value: unknown): string[] {
  return typeof value === "object" && value !== null ? Object.keys(value) : [];
}

/** shapeOf is a JSON value's keys in order, at every depth (arrays by their first item), to compare with a capture's. */
export function shapeOf(value: unknown): unknown {
  if (Array.isArray(value)) return value.length === 0 ? [] : [shapeOf(value[0])];
  if (value === null) return "null";
  if (typeof value !== "object") return typeof value;
  return Object.entries(value).map(([key, item]) => [key, shapeOf(item)]);
}
