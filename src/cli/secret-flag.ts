import { readFileSync } from "node:fs";
import { ConfigError } from "../../services/shared/config-error.js";
import { type ParsedFlags, UsageError } from "./flags.js";

/** ReadTextFile reads a whole file as UTF-8; commands read through it so that tests can hand them files. */
export type ReadTextFile = (path: string) => string;

/** readTextFile is ReadTextFile on the real file system. */
export const readTextFile: ReadTextFile = (path) => readFileSync(path, "utf8");

/** READ_ERRORS say in words why the common file errors happened. */
const READ_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: "no such file",
  EACCES: "permission denied",
  EISDIR: "it is a folder",
};

/** Secret is a secret's value and the setting it came from, for messages about it. */
export interface Secret {
  readonly value: string;
  readonly setting: string;
}

/**
 * readSecret reads a secret given either as the flag `name` itself or as a file named by `name-file`, so that it
 * never has to appear on a command line, which `ps` shows to every user of the machine. The command line wins over
 * the environment, as for any flag; both forms at one level are refused, since which one was meant is a guess. The
 * file's content is trimmed (a trailing newline is no part of a key); an unreadable or empty file, or one of several
 * lines, stops the command with the file's name. Undefined when neither form is given.
 */
export function readSecret(flags: ParsedFlags, name: string, readFile: ReadTextFile): Secret | undefined {
  const fileFlag = `${name}-file`;
  const direct = flags.given(name);
  const file = flags.given(fileFlag);
  if (direct !== undefined && direct === file) {
    const both = `${flags.setting(name)} and ${flags.setting(fileFlag)}`;
    throw new UsageError(flags.setting(fileFlag), `${both} are both given; give one of them`);
  }
  if (file === undefined || direct === "argv") {
    const value = flags.string(name);
    return value === undefined || value.trim() === "" ? undefined : { value, setting: flags.setting(name) };
  }
  const where = flags.setting(fileFlag);
  const path = flags.string(fileFlag) as string;
  let text: string;
  try {
    text = readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === undefined ? String(error) : (READ_ERRORS[code] ?? code);
    throw new ConfigError(where, `${where} cannot read '${path}': ${reason}`);
  }
  const secret = text.trim();
  if (secret === "") throw new ConfigError(where, `${where} names an empty file, '${path}'`);
  if (/[\r\n]/.test(secret)) {
    throw new ConfigError(where, `${where} expects a file holding the secret alone on one line, got several lines in '${path}'`);
  }
  return { value: secret, setting: where };
}
