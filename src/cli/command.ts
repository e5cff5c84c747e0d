import type { FlagSpecs } from "./flags.js";

/** CommandOutput is where a command line writes what it prints for people (stdout) and why it failed (stderr). */
export interface CommandOutput {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** RunnableCommand is an `infermesh` command that does something, as `registry` or `keys create`. */
export interface RunnableCommand {
  /** name is the word that selects the command. */
  readonly name: string;
  /** summary is its line in its group's list of commands. */
  readonly summary: string;
  /** synopsis is how it is called, after "infermesh"; --help shows it first. */
  readonly synopsis: string;
  readonly flags: FlagSpecs;
  /** run runs the command with the arguments after its name, printing to output; --help never reaches it. */
  readonly run: (argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput) => Promise<void>;
}

/** CommandGroup is a word that only selects further commands, as `keys` (and `infermesh` itself). */
export interface CommandGroup {
  readonly name: string;
  readonly summary: string;
  readonly subcommands: readonly Command[];
}

/** Command is either kind; a path of them from `infermesh` down names what a command line runs. */
export type Command = RunnableCommand | CommandGroup;

/** isCommandGroup tells a group from a command that runs. */
export function isCommandGroup(command: Command): command is CommandGroup {
  return "subcommands" in command;
}

/** commandName is a path's command as typed: "infermesh keys create". */
export function commandName(path: readonly Command[]): string {
  return path.map((command) => command.name).join(" ");
}
