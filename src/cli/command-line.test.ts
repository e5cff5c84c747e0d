import { expect } from "chai";
import { ConfigError } from "../../services/shared/config-error.js";
import { type Command, type CommandGroup, commandName, isCommandGroup } from "./command.js";
import { commandHelp } from "./command-help.js";
import { runCommandLine } from "./command-line.js";
import { INFERMESH } from "./infermesh-commands.js";
import { SHARED_VARIABLES } from "./shared-flags.js";

interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function run(root: CommandGroup, argv: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  let stdout = "";
  let stderr = "";
  const code = await runCommandLine(root, argv, env, { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text) });
  return { code, stdout, stderr };
}

/** allPaths lists every command under root, each as its path from root (root itself included). */
function allPaths(root: Command, path: readonly Command[] = [root]): Command[][] {
  const here = [...path];
  return isCommandGroup(root) ? [here, ...root.subcommands.flatMap((sub) => allPaths(sub, [...path, sub]))] : [here];
}

const words = (path: readonly Command[]) => path.slice(1).map((command) => command.name);

describe("the infermesh command line", () => {
  it("answers --help, -h and `help` on every command and subcommand with its help on stdout, exit 0", async () => {
    const paths = allPaths(INFERMESH);
    expect(paths.map((path) => commandName(path))).to.include.members([
      "infermesh",
      "infermesh keys",
      "infermesh keys create",
      "infermesh agent",
    ]);
    for (const path of paths) {
      const help = commandHelp(path);
      expect(help, commandName(path)).to.match(new RegExp(`^usage: ${commandName(path)}[ \n]`));
      const asked = [
        [...words(path), "--help"],
        [...words(path), "-h"],
        ["help", ...words(path)],
      ];
      for (const argv of asked) {
        expect(await run(INFERMESH, argv), argv.join(" ")).to.deep.equal({ code: 0, stdout: help, stderr: "" });
      }
    }
  });

  it("prints every flag of a command with its environment variable in --help", async () => {
    for (const path of allPaths(INFERMESH)) {
      const command = path.at(-1) as Command;
      if (isCommandGroup(command)) continue;
      const { stdout } = await run(INFERMESH, [...words(path), "--help"]);
      for (const [name, spec] of Object.entries(command.flags)) {
        expect(stdout, `${commandName(path)} --${name}`).to.match(
          new RegExp(`\\n  --${name}( [^\\n]+)?\\n[^\\n]+\\n      env ${spec.env}\\n`),
        );
      }
    }
  });

  it("lists the commands of a group, alone or asked for help, and answers help before reading a bad flag", async () => {
    const keys = await run(INFERMESH, ["keys"]);
    expect(keys.code).to.equal(0);
    expect(keys.stdout)
      .to.match(/^usage: infermesh keys <command>/)
      .and.to.match(/\n {2}create {2}/)
      .and.to.match(/\n {2}revoke {2}/);
    expect((await run(INFERMESH, [])).stdout).to.equal(commandHelp([INFERMESH]));
    expect((await run(INFERMESH, ["keys", "help", "create"])).stdout).to.equal((await run(INFERMESH, ["keys", "create", "--help"])).stdout);
    expect(await run(INFERMESH, ["registry", "--bogus", "--help"])).to.include({ code: 0, stderr: "" });
  });

  it("suggests the nearest command for an unknown command or subcommand, exit 2, one line", async () => {
    expect(await run(INFERMESH, ["registy"])).to.deep.equal({
      code: 2,
      stdout: "",
      stderr: "infermesh: unknown command 'registy'; did you mean registry?\n",
    });
    expect(await run(INFERMESH, ["keys", "craete"])).to.deep.equal({
      code: 2,
      stdout: "",
      stderr: "infermesh keys: unknown command 'craete'; did you mean create?\n",
    });
    expect((await run(INFERMESH, ["frobnicate"])).stderr).to.equal(
      "infermesh: unknown command 'frobnicate'; `infermesh --help` lists the commands\n",
    );
    expect((await run(INFERMESH, ["help", "keys", "revok"])).stderr).to.equal(
      "infermesh keys: unknown command 'revok'; did you mean revoke?\n",
    );
  });

  it("suggests the nearest flag for an unknown flag, exit 2, before running anything", async () => {
    expect(await run(INFERMESH, ["registry", "--listn", "127.0.0.1:0"])).to.deep.equal({
      code: 2,
      stdout: "",
      stderr: "infermesh registry: unknown flag --listn; did you mean --listen?\n",
    });
    expect((await run(INFERMESH, ["keys", "list", "--al"])).stderr).to.equal(
      "infermesh keys list: unknown flag --al; did you mean --all?\n",
    );
    expect((await run(INFERMESH, ["metrics-config", "--bogus"])).stderr).to.equal(
      "infermesh metrics-config: unknown flag --bogus; --help lists the flags\n",
    );
  });

  it("exits 2 on a ConfigError and 1 on any other failure, with the first line of the message, and passes what follows '--' on", async () => {
    const seen: (readonly string[])[] = [];
    const fails = (error: Error) => async (argv: readonly string[]) => {
      seen.push(argv);
      throw error;
    };
    const root: CommandGroup = {
      name: "tool",
      summary: "a test tool",
      subcommands: [
        { name: "bad", summary: "bad config", synopsis: "bad", flags: {}, run: fails(new ConfigError("--x", "--x expects y\nmore")) },
        {
          name: "broken",
          summary: "fails",
          synopsis: "broken",
          flags: {},
          run: fails(new Error("cannot listen on h:1: address already in use\nstack")),
        },
      ],
    };
    expect(await run(root, ["bad"])).to.deep.equal({ code: 2, stdout: "", stderr: "tool bad: --x expects y\n" });
    expect(await run(root, ["broken", "--", "--help"])).to.deep.equal({
      code: 1,
      stdout: "",
      stderr: "tool broken: cannot listen on h:1: address already in use\n",
    });
    expect(seen).to.deep.equal([[], ["--", "--help"]]);
  });

  it("gives each flag a variable of its command, INFERMESH_<COMMAND>_<FLAG>, unless it is one of the shared few", () => {
    const byVariable = new Map<string, Set<string>>();
    for (const path of allPaths(INFERMESH)) {
      const command = path.at(-1) as Command;
      if (isCommandGroup(command)) continue;
      const prefix = `INFERMESH_${(path[1] as Command).name.replaceAll("-", "_").toUpperCase()}_`;
      for (const [name, spec] of Object.entries(command.flags)) {
        const own = `${prefix}${name.replaceAll("-", "_").toUpperCase()}`;
        expect(SHARED_VARIABLES.includes(spec.env) || spec.env === own, `${commandName(path)} --${name}: ${spec.env}`).to.equal(true);
        byVariable.set(spec.env, new Set([...(byVariable.get(spec.env) ?? []), `${commandName(path.slice(0, 2))} --${name}`]));
      }
    }
    for (const [variable, flags] of byVariable) {
      if (!SHARED_VARIABLES.includes(variable)) expect([...flags], variable).to.have.length(1);
    }
    expect(
      Object.fromEntries([...byVariable].filter(([variable]) => SHARED_VARIABLES.includes(variable)).map(([v, f]) => [v, [...f].sort()])),
    ).to.deep.equal({
      INFERMESH_DB: [
        "infermesh keys --db",
        "infermesh migrate --db",
        "infermesh registry --db",
        "infermesh usage --db",
        "infermesh users --db",
      ],
      INFERMESH_MESH_TOKEN: ["infermesh gateway --mesh-token", "infermesh registry --mesh-token"],
      INFERMESH_MESH_TOKEN_FILE: ["infermesh gateway --mesh-token-file", "infermesh registry --mesh-token-file"],
      INFERMESH_REDIS: ["infermesh gateway --redis", "infermesh registry --redis"],
      INFERMESH_API_KEY: ["infermesh agent --api-key", "infermesh providers --api-key", "infermesh usage --api-key"],
      INFERMESH_API_KEY_FILE: ["infermesh agent --api-key-file", "infermesh providers --api-key-file", "infermesh usage --api-key-file"],
      INFERMESH_REGISTRY: ["infermesh gateway --registry"],
      INFERMESH_MESH: ["infermesh agent --mesh", "infermesh providers --mesh", "infermesh usage --mesh"],
      INFERMESH_PUBLIC_URL: ["infermesh users --url"],
      INFERMESH_CA_FILE: [
        "infermesh agent --ca-file",
        "infermesh gateway --ca-file",
        "infermesh providers --ca-file",
        "infermesh usage --ca-file",
      ],
      INFERMESH_LOG_LEVEL: [
        "infermesh agent --log-level",
        "infermesh dev --log-level",
        "infermesh gateway --log-level",
        "infermesh registry --log-level",
      ],
    });
  });
});
