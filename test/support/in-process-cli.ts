import { runCommandLine } from "../../src/cli/command-line.js";
import { INFERMESH } from "../../src/cli/infermesh-commands.js";

/** ISO_TIME matches a time as the commands print it: ISO-8601 in UTC, to the millisecond. */
export const ISO_TIME = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`;

/** infermesh runs a command line in this process, as bin/infermesh.js would, and collects what it printed. */
export async function infermesh(argv: readonly string[], env: NodeJS.ProcessEnv = {}) {
  let stdout = "";
  let stderr = "";
  const code = await runCommandLine(INFERMESH, argv, env, { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text) });
  return { code, stdout, stderr };
}
