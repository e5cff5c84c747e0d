import { type Command, type CommandGroup, commandName, isCommandGroup, type RunnableCommand } from "./command.js";
import { placeholder } from "./flags.js";

/** commandHelp is what `--help` prints for the last command of path: its synopsis, then its flags or subcommands. */
export function commandHelp(path: readonly Command[]): string {
  const command = path.at(-1);
  if (command === undefined) throw new Error("commandHelp needs a command");
  return isCommandGroup(command) ? groupHelp(path, command) : runnableHelp(command);
}

function runnableHelp(command: RunnableCommand): string {
  const flags = Object.entries(command.flags).map(([name, spec]) => {
    const value = spec.type === "string" ? ` ${placeholder(name, spec)}` : "";
    const repeat = spec.multiple ? " (repeatable; in the variable, separated by commas)" : "";
    const dflt = spec.default === undefined || spec.default === "" ? "" : ` (default ${spec.default})`;
    return `  --${name}${value}\n      ${spec.description}${dflt}${repeat}\n      env ${spec.env}`;
  });
  flags.push("  -h, --help\n      print this help");
  return [
    `usage: infermesh ${command.synopsis}`,
    "",
    sentence(command.summary),
    "",
    "flags (each also read from the environment variable shown, the command line winning):",
    ...flags,
    "",
  ].join("\n");
}

function groupHelp(path: readonly Command[], group: CommandGroup): string {
  const name = commandName(path);
  const width = Math.max(...group.subcommands.map((command) => command.name.length));
  return [
    `usage: ${name} <command> [flags]`,
    "",
    sentence(group.summary),
    "",
    "commands:",
    ...group.subcommands.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`),
    "",
    `\`${name} <command> --help\` (or \`${name} help <command>\`) shows a command's flags and their environment variables.`,
    "",
  ].join("\n");
}

/** sentence turns a summary, written to sit in a list, into a sentence of its own. */
function sentence(summary: string): string {
  return `${summary.charAt(0).toUpperCase()}${summary.slice(1)}.`;
}
