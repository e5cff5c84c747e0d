import { parseArgs } from "node:util";
import { LOG_LEVELS } from "../../services/shared/logger.js";

/** UsageError is a command line that cannot run: the message names the flag and what it expects. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** FlagSpec describes one flag; every flag can also come from INFERMESH_<NAME> (dashes as underscores). */
export interface FlagSpec {
  readonly type: "string" | "boolean";
  readonly multiple?: boolean;
  readonly default?: string;
  readonly description: string;
}

/** FlagSpecs is a command's flags by long name. */
export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

/** ParsedFlags are a command's flag values and positional arguments, flags first, then environment, then defaults. */
export interface ParsedFlags {
  string(name: string): string | undefined;
  strings(name: string): string[];
  boolean(name: string): boolean;
  readonly positionals: readonly string[];
}

/** envName is the environment variable that stands in for a flag. */
export function envName(flag: string): string {
  return `INFERMESH_${flag.replaceAll("-", "_").toUpperCase()}`;
}

/** parseFlags parses argv against specs, falling back to INFERMESH_* variables in env, then to defaults. */
export function parseFlags(
  specs: FlagSpecs,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  allowPositionals = false,
): ParsedFlags {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: Object.fromEntries(
        Object.entries(specs).map(([name, spec]) => [name, { type: spec.type, multiple: spec.multiple ?? false }]),
      ),
      allowPositionals,
      strict: true,
    });
  } catch (error) {
    throw new UsageError((error as Error).message.split("\n")[0] ?? String(error));
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  const lookup = (name: string): string | boolean | string[] | undefined => {
    if (!(name in specs)) throw new Error(`flag --${name} is not declared`);
    const fromArgv = values[name];
    if (fromArgv !== undefined) return fromArgv;
    const fromEnv = env[envName(name)];
    if (fromEnv !== undefined && fromEnv !== "") {
      if (specs[name]?.type === "boolean") return /^(1|true|yes|on)$/i.test(fromEnv);
      return specs[name]?.multiple ? fromEnv.split(",").map((s) => s.trim()).filter(Boolean) : fromEnv;
    }
    return specs[name]?.default;
  };
  return {
    positionals: parsed.positionals,
    string: (name) => {
      const value = lookup(name);
      return Array.isArray(value) ? value.at(-1) : typeof value === "string" ? value : undefined;
    },
    strings: (name) => {
      const value = lookup(name);
      return Array.isArray(value) ? value : typeof value === "string" ? [value] : [];
    },
    boolean: (name) => lookup(name) === true,
  };
}

/** requireString returns a flag's value or throws a UsageError that names the flag and its variable. */
export function requireString(flags: ParsedFlags, name: string): string {
  const value = flags.string(name);
  if (value === undefined || value === "") throw new UsageError(`--${name} (or ${envName(name)}) is required`);
  return value;
}

/** HostPort is a parsed "host:port" listen address. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** parseHostPort parses "host:port" (IPv6 hosts in brackets; port 0 means any free port); where names the flag. */
export function parseHostPort(where: string, value: string): HostPort {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  const port = Number(match?.[2]);
  if (!match || port > 65535) throw new UsageError(`${where} expects HOST:PORT (port 0-65535), got '${value}'`);
  return { host: match[1] as string, port };
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
    throw new UsageError(`${where} expects an http:// or https:// URL, got '${value}'`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`${where} expects an http:// or https:// URL, got '${value}'`);
  }
  if (url.username !== "" || url.password !== "" || url.search !== "" || url.hash !== "") {
    throw new UsageError(`${where} expects a base URL without credentials, query or fragment, got '${value}' (use api_key)`);
  }
  const path = url.pathname.replace(/\/+$/, "").replace(/\/v1$/, "");
  return `${url.origin}${path}`;
}

/** parseRegistryUrl accepts "host:port" or "http(s)://host:port" and returns the registry's base URL. */
export function parseRegistryUrl(where: string, value: string): string {
  if (/^https?:\/\//.test(value)) {
    const url = parseBaseUrl(where, value);
    if (new URL(url).pathname !== "/") throw new UsageError(`${where} expects HOST:PORT or http(s)://HOST:PORT, got '${value}'`);
    return url;
  }
  const { host, port } = parseHostPort(where, value);
  if (port === 0) throw new UsageError(`${where} expects a port from 1 to 65535, got '${value}'`);
  return `http://${host}:${port}`;
}

/** formatHostPort writes a HostPort back as "host:port". */
export function formatHostPort({ host, port }: HostPort): string {
  return `${host}:${port}`;
}

/** parseWholeNumber parses a whole number within [min, max]; the error names the flag and the unit. */
export function parseWholeNumber(flag: string, value: string, min: number, max: number, unit: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${flag} expects a whole number of ${unit} from ${min} to ${max}, got '${value}'`);
  }
  return n;
}

/** parseMs parses a whole number of milliseconds within [min, max]. */
export function parseMs(flag: string, value: string, min = 1, max = 24 * 3600 * 1000): number {
  return parseWholeNumber(flag, value, min, max, "milliseconds");
}

/** usageText renders a command's flags for --help. */
export function usageText(synopsis: string, specs: FlagSpecs): string {
  const lines = Object.entries(specs).map(([name, spec]) => {
    const arg = spec.type === "string" ? ` ${name.toUpperCase().replaceAll("-", "_")}` : "";
    const dflt = spec.default === undefined ? "" : ` (default ${spec.default})`;
    return `  --${name}${arg}\n      ${spec.description}${dflt}; env ${envName(name)}`;
  });
  return `usage: ${synopsis}\n\n${lines.join("\n")}\n`;
}

/** parseLogLevel accepts one of pino's levels. */
export function parseLogLevel(value: string): string {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) {
    throw new UsageError(`--log-level expects one of ${LOG_LEVELS.join(", ")}, got '${value}'`);
  }
  return value;
}
