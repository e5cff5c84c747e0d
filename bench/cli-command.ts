/**
 * cli-command says how the bench and the fault suite run `infermesh`: from the TypeScript sources through tsx, from
 * the repository's fresh build, or from the working tree compiled into a folder of the run's own.
 */
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { access, copyFile, symlink } from "node:fs/promises";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

/** REPO_DIR is the repository the bench and the fault suite belong to. */
export const REPO_DIR = fileURLToPath(new URL("../", import.meta.url));
/** SOURCE_FOLDERS are the folders the build is compiled from. */
const SOURCE_FOLDERS = ["gen", "services", "src"];

/** CliCommand is how `infermesh` is started: `node ...execArgv script`. */
export interface CliCommand {
  readonly execArgv: readonly string[];
  readonly script: string;
  /** env is added to the environment of each process run with it. */
  readonly env: Readonly<Record<string, string>>;
  /** description says where the code comes from, for reports. */
  readonly description: string;
}

/**
 * SOURCE_CLI runs infermesh's CLI from its sources through tsx, with the repository's tsconfig whatever the working
 * directory (tsx's loader and source maps cost a little at run time, mostly when errors are created).
 */
export const SOURCE_CLI: CliCommand = {
  execArgv: ["--import", import.meta.resolve("tsx")],
  script: join(REPO_DIR, "src", "cli", "main.ts"),
  env: { TSX_TSCONFIG_PATH: join(REPO_DIR, "tsconfig.json") },
  description: "TypeScript sources through tsx",
};

/** BUILT_CLI runs the repository's own build (`npm run build`, which `npm ci` runs), as production does. */
export const BUILT_CLI: CliCommand = {
  execArgv: [],
  script: join(REPO_DIR, "dist", "src", "cli", "main.js"),
  env: {},
  description: "compiled build (dist/ is fresh)",
};

/**
 * freshestCli is BUILT_CLI when the build is at least as new as every source file it is compiled from, since it starts
 * in half the CPU time; otherwise SOURCE_CLI. Either way it is the same code.
 */
export function freshestCli(): CliCommand {
  return isBuildFresh(REPO_DIR) ? BUILT_CLI : SOURCE_CLI;
}

/** isBuildFresh tells whether root's dist/ holds a .js at least as new as each source .ts it is compiled from. */
export function isBuildFresh(root: string): boolean {
  const stale = (dir: string): boolean =>
    readdirSync(dir, { withFileTypes: true }).some((item) => {
      const path = join(dir, item.name);
      if (item.isDirectory()) return item.name !== "test-support" && stale(path);
      if (!item.name.endsWith(".ts") || item.name.endsWith(".test.ts") || item.name.endsWith(".d.ts")) return false;
      const built = join(root, "dist", relative(root, path).replace(/\.ts$/, ".js"));
      try {
        return statSync(built).mtimeMs < statSync(path).mtimeMs;
      } catch {
        return true;
      }
    });
  try {
    return !SOURCE_FOLDERS.some((folder) => stale(join(root, folder)));
  } catch {
    return false;
  }
}

/**
 * compileCli compiles the working tree (tsconfig.build.json) into dir with tsc, beside a link to the repository's
 * node_modules and a copy of its package.json, so that the build resolves its dependencies and loads as ESM; the
 * repository's own dist/ is left alone. Type errors do not stop it (tsc still emits); a missing output does.
 */
export async function compileCli(dir: string): Promise<CliCommand> {
  const outDir = join(dir, "dist");
  const tsc = join(REPO_DIR, "node_modules", "typescript", "bin", "tsc");
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [tsc, "-p", join(REPO_DIR, "tsconfig.build.json"), "--outDir", outDir, "--sourceMap", "false"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let text = "";
    child.stdout.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
    child.once("error", reject);
    child.once("exit", () => resolve(text));
  });
  await symlink(join(REPO_DIR, "node_modules"), join(dir, "node_modules"), "dir");
  await copyFile(join(REPO_DIR, "package.json"), join(dir, "package.json"));
  const script = join(outDir, "src", "cli", "main.js");
  try {
    await access(script);
  } catch {
    throw new Error(`compiling the CLI with tsc produced no ${script}:\n${output.trim()}`);
  }
  const errors = output.split("\n").filter((line) => line.includes("error TS")).length;
  return {
    execArgv: [],
    script,
    env: {},
    description: `compiled with tsc${errors > 0 ? ` (${errors} type errors in the working tree, emitted anyway)` : ""}`,
  };
}
