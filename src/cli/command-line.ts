import { ConfigError } from "../../services/shared/config-error.js";
import { nearestName } from "../../services/shared/nearest-name.js";
import { type Command, type CommandGroup, type CommandOutput, commandName, isCommandGroup } from "./command.js";
import { commandHelp } from "./command-help.js";
import { UsageError } from "./flags.js";

/**
 * runCommandLine finds the command argv names under root and runs it, answering `--help`, `-h` and `help` at every
 * level with the command's help on stdout. It resolves to the exit code: 0, or after one line on stderr naming the
 * command, 2 for a command line or setting that cannot run, 1 for any other failure.
 */
export async function runCommandLine(
  root: CommandGroup,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  output: CommandOutput,
): Promise<number> {
  const path: Command[] = [root];
  let rest = argv;
  let helpAsked = false;
  try {
    let command: Command = root;
    while (isCommandGroup(command)) {
      const [word, ...after] = rest;
      if (word === undefined || word === "--help" || word === "-h") {
        output.stdout(commandHelp(path));
        return 0;
      }
      rest = after;
      if (word === "help") {
        helpAsked = true;
      } else {
        command = subcommand(command, path, word);
        path.push(command);
      }
    }
    if (helpAsked || asksForHelp(rest)) {
      output.stdout(commandHelp(path));
      return 0;
    }
    await command.run(rest, env, output);
    return 0;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    output.stderr(`${commandName(path)}: ${message.split("\n")[0]}\n`);
    return error instanceof ConfigError ? 2 : 1;
  }
}

/** asksForHelp finds --help or -h among a command's arguments, up to a "--" that ends its flags. */
function asksForHelp(argv: readonly string[]): boolean {
  for (const arg of argv) {
    if (arg === "--") return false;
    if (arg === "--help" || arg === "-h") return true;
  }
  return false;
}

function subcommand(group: CommandGroup, path: readonly Command[], word: string): Command {
  const found = group.subcommands.find((command) => command.name === word);
  if (found !== undefined) return found;
  const nearest = nearestName(
    word,
    group.subcommands.map((command) => command.name),
  );
  const hint = nearest === undefined ? `\`${commandName(path)} --help\` lists the commands` : `did you mean ${nearest}?`;
  throw new UsageError(word, `unknown command '${word}'; ${hint}`);
}
