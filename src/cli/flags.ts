import { parseArgs } from "node:util";
import { ConfigError } from "../../services/shared/config-error.js";
import { nearestName } from "../../services/shared/nearest-name.js";

/**
 * UsageError is a command line that cannot be read at all: an unknown flag or command, a flag without its value, an
 * argument where none belongs. It is a ConfigError, so it stops a command the same way, with exit code 2.
 */
export class UsageError extends ConfigError {
  override readonly name: string = "UsageError";
}

/** FlagSpec describes one flag of a command. */
export interface FlagSpec {
  readonly type: "string" | "boolean";
  readonly multiple?: boolean;
  readonly default?: string;
  /** value is what --help shows for the flag's value ("FILE", "HOST:PORT"); the flag's name in capitals otherwise. */
  readonly value?: string;
  readonly description: string;
  /**
   * env is the environment variable that stands in for the flag when the command line does not give it. Each flag
   * names its own: a flag that means one thing everywhere (the mesh token, the registry's database) shares one name
   * across commands; any other carries its command's name, so that a variable exported for one command never
   * reaches another.
   */
  readonly env: string;
}

/** FlagSpecs is a command's flags by long name. */
export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

/** FlagSource is where a flag's value came from: the command line or the environment. */
export type FlagSource = "argv" | "env";

/** ParsedFlags are a command's flag values and positional arguments, flags first, then environment, then defaults. */
export interface ParsedFlags {
  string(name: string): string | undefined;
  strings(name: string): string[];
  boolean(name: string): boolean;
  /** given is where the flag's value came from; undefined when neither gave it (a default, or unset). */
  given(name: string): FlagSource | undefined;
  /** setting names the flag as the user gave it, for messages: "--listen", or its variable when it came from there. */
  setting(name: string): string;
  /** spec is the flag's declaration. */
  spec(name: string): FlagSpec;
  readonly positionals: readonly string[];
}

const TRUE = /^(1|true|yes|on)$/i;
const FALSE = /^(0|false|no|off)$/i;

/**
 * parseFlags reads argv against specs, falling back to each flag's environment variable in env, then to its
 * default. Anything it cannot read is a UsageError that names the flag; an unknown one suggests the nearest
 * declared flag.
 */
export function parseFlags(specs: FlagSpecs, argv: readonly string[], env: NodeJS.ProcessEnv, allowPositionals = false): ParsedFlags {
  const { tokens } = parseArgs({
    args: [...argv],
    options: Object.fromEntries(Object.entries(specs).map(([name, spec]) => [name, { type: spec.type }])),
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  const fromArgv = new Map<string, string[]>();
  const positionals: string[] = [];
  for (const token of tokens) {
    if (token.kind === "positional") {
      if (!allowPositionals) throw new UsageError(token.value, `unexpected argument '${token.value}'`);
      positionals.push(token.value);
    } else if (token.kind === "option") {
      const spec = Object.hasOwn(specs, token.name) ? specs[token.name] : undefined;
      if (spec === undefined) throw unknownFlag(token.rawName, specs);
      const flag = `--${token.name}`;
      if (spec.type === "boolean") {
        if (token.value !== undefined) throw new UsageError(flag, `${flag} takes no value, got '${token.rawName}=${token.value}'`);
        fromArgv.set(token.name, ["true"]);
        continue;
      }
      const shown = `${flag} ${placeholder(token.name, spec)}`;
      if (token.value === undefined) throw new UsageError(flag, `${flag} expects a value: ${shown}`);
      // As node's own strict parser: a value that looks like a flag is more often a forgotten value than a value.
      if (!token.inlineValue && token.value.startsWith("-")) {
        throw new UsageError(flag, `${flag} expects a value: ${shown} (write ${flag}=${token.value} if '${token.value}' is the value)`);
      }
      fromArgv.set(token.name, [...(fromArgv.get(token.name) ?? []), token.value]);
    }
  }
  const declared = (name: string): FlagSpec => {
    const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
    if (spec === undefined) throw new Error(`flag --${name} is not declared`);
    return spec;
  };
  const fromEnv = (name: string): string | undefined => {
    const value = env[declared(name).env];
    return value === undefined || value === "" ? undefined : value;
  };
  const given = (name: string): FlagSource | undefined => (fromArgv.has(name) ? "argv" : fromEnv(name) !== undefined ? "env" : undefined);
  const setting = (name: string): string => (given(name) === "env" ? declared(name).env : `--${name}`);
  const values = (name: string): string[] => {
    const spec = declared(name);
    const argvValues = fromArgv.get(name);
    if (argvValues !== undefined) return spec.multiple ? argvValues : argvValues.slice(-1);
    const envValue = fromEnv(name);
    if (envValue !== undefined) {
      if (spec.type === "boolean") {
        if (TRUE.test(envValue)) return ["true"];
        if (FALSE.test(envValue)) return [];
        throw new ConfigError(spec.env, `${spec.env} expects true or false (or 1, 0, yes, no, on, off), got '${envValue}'`);
      }
      return spec.multiple
        ? envValue
            .split(",")
            .map((item) => item.trim())
            .filter(Boolean)
        : [envValue];
    }
    return spec.default === undefined ? [] : [spec.default];
  };
  return {
    positionals,
    string: (name) => values(name).at(-1),
    strings: values,
    boolean: (name) => declared(name).type === "boolean" && values(name).length > 0,
    given,
    setting,
    spec: declared,
  };
}

/** requireString returns a flag's value or throws a ConfigError that names the flag and its variable. */
export function requireString(flags: ParsedFlags, name: string): string {
  const value = flags.string(name);
  if (value === undefined || value === "") {
    throw new ConfigError(`--${name}`, `--${name} (or ${flags.spec(name).env}) is required`);
  }
  return value;
}

/**
 * requirePositionals returns a command's positional arguments, exactly one per name in names ("KEY_ID", "NAME"), or
 * throws a UsageError naming the first one missing (with hint, which says where to find one) or the first extra.
 */
export function requirePositionals(flags: ParsedFlags, names: readonly string[], hint: string): string[] {
  const given = flags.positionals;
  const missing = names[given.length];
  if (missing !== undefined) throw new UsageError(missing, `${/^[AEIOU]/.test(missing) ? "an" : "a"} ${missing} is required (${hint})`);
  if (given.length > names.length) {
    const wanted = names.length === 1 ? `one ${names[0]}` : names.join(" and ");
    throw new UsageError(given[names.length] as string, `takes ${wanted}, got ${given.length}: ${given.join(" ")}`);
  }
  return [...given];
}

/** placeholder is what --help and messages show for a flag's value. */
export function placeholder(name: string, spec: FlagSpec): string {
  return spec.value ?? name.toUpperCase().replaceAll("-", "_");
}

function unknownFlag(raw: string, specs: FlagSpecs): UsageError {
  const nearest = nearestName(raw.replace(/^-+/, ""), [...Object.keys(specs), "help"]);
  return new UsageError(
    raw,
    nearest === undefined ? `unknown flag ${raw}; --help lists the flags` : `unknown flag ${raw}; did you mean --${nearest}?`,
  );
}
