import { ConfigError } from "./config-error.js";
import { parseHostPort } from "./host-port.js";
import { LOG_LEVELS } from "./logger.js";

// Each parser takes `where`, the setting as the user wrote it ("--listen", "INFERMESH_AGENT_LISTEN", a file's
// field), so that the one line a bad value stops startup with points at what to fix, in the setting's own unit.

/** MAX_MS is the longest duration a setting takes: a day, in milliseconds. */
export const MAX_MS = 24 * 3600 * 1000;

/** listInWords writes choices as people do: "a, b or c". */
export function listInWords(items: readonly string[], conjunction: "or" | "and" = "or"): string {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} ${conjunction} ${items.at(-1)}`;
}

/**
 * parseBaseUrl checks an http(s) base URL and normalises it: no trailing slash and no trailing "/v1", since users
 * often paste the OpenAI base URL and the callers append "/v1/..." themselves.
 */
export function parseBaseUrl(where: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(where, `${where} expects an http:// or https:// URL, got '${value}'`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(where, `${where} expects an http:// or https:// URL, got '${value}'`);
  }
  // The value is not echoed: a user name and password in it are secrets.
  if (url.username !== "" || url.password !== "") {
    throw new ConfigError(where, `${where} expects a URL without a user name or password`);
  }
  if (url.search !== "" || url.hash !== "") {
    throw new ConfigError(where, `${where} expects a base URL without a query or fragment, got '${value}'`);
  }
  const path = url.pathname.replace(/\/+$/, "").replace(/\/v1$/, "");
  return `${url.origin}${path}`;
}

/** parseRegistryUrl accepts "host:port" or "http(s)://host:port" and returns the registry's base URL. */
export function parseRegistryUrl(where: string, value: string): string {
  if (/^https?:\/\//.test(value)) {
    const url = parseBaseUrl(where, value);
    if (new URL(url).pathname !== "/") {
      throw new ConfigError(where, `${where} expects HOST:PORT or http(s)://HOST:PORT without a path, got '${value}'`);
    }
    return url;
  }
  return `http://${parseDialAddress(where, value)}`;
}

/** parseRedisUrl accepts a redis:// or rediss:// (TLS) URL, as Redis and Valkey clients take it. */
export function parseRedisUrl(where: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(where, `${where} expects redis://[USER:PASSWORD@]HOST:PORT[/DB], got '${value}'`);
  }
  if ((url.protocol !== "redis:" && url.protocol !== "rediss:") || url.hostname === "") {
    throw new ConfigError(where, `${where} expects redis://[USER:PASSWORD@]HOST:PORT[/DB] or rediss://…, got '${value}'`);
  }
  if (!/^\/?\d*$/.test(url.pathname)) {
    throw new ConfigError(where, `${where} takes a database number as its path (redis://HOST:PORT/0), got '${url.pathname}'`);
  }
  return value;
}

/** parseDialAddress parses a "host:port" to connect to, where port 0 (any free port) makes no sense. */
export function parseDialAddress(where: string, value: string): string {
  const { host, port } = parseHostPort(where, value, 1);
  return `${host}:${port}`;
}

/**
 * parseWholeNumber reads a whole number within [min, max] from a flag's text or a config file's number; unit is
 * what it counts, in the plural ("requests", "milliseconds").
 */
export function parseWholeNumber(where: string, value: unknown, min: number, max: number, unit: string): number {
  const number = typeof value === "number" ? value : typeof value === "string" && /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(number) || number < min || number > max) {
    throw new ConfigError(where, `${where} expects a whole number of ${unit} from ${min} to ${max}, got '${String(value)}'`);
  }
  return number;
}

/** parseMs reads a duration as a whole number of milliseconds within [min, max]. */
export function parseMs(where: string, value: unknown, min = 1, max = MAX_MS): number {
  return parseWholeNumber(where, value, min, max, "milliseconds");
}

/** parsePort reads a bare port number; min is 0 where any free port will do, else 1. */
export function parsePort(where: string, value: unknown, min: 0 | 1 = 0): number {
  const number = typeof value === "number" ? value : typeof value === "string" && /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(number) || number < min || number > 65535) {
    throw new ConfigError(where, `${where} expects a port from ${min} to 65535, got '${String(value)}'`);
  }
  return number;
}

/** parseLogLevel accepts one of pino's levels. */
export function parseLogLevel(where: string, value: string): string {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) {
    throw new ConfigError(where, `${where} expects one of ${listInWords(LOG_LEVELS)}, got '${value}'`);
  }
  return value;
}

/** parseNonEmpty refuses an empty or blank value. */
export function parseNonEmpty(where: string, value: string): string {
  if (value.trim() === "") throw new ConfigError(where, `${where} must not be empty`);
  return value;
}
