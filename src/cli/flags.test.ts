import { expect } from "chai";
import { ConfigError } from "../../services/shared/config-error.js";
import { type FlagSpecs, parseFlags, requireString, UsageError } from "./flags.js";

const SPECS: FlagSpecs = {
  listen: { type: "string", default: "127.0.0.1:1", value: "HOST:PORT", description: "address", env: "INFERMESH_T_LISTEN" },
  model: { type: "string", multiple: true, description: "a model", env: "INFERMESH_T_MODEL" },
  all: { type: "boolean", description: "everything", env: "INFERMESH_T_ALL" },
  "api-key": { type: "string", description: "a key", env: "INFERMESH_T_API_KEY" },
};

function thrown(run: () => unknown): Error {
  try {
    run();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected an error");
}

describe("parseFlags", () => {
  it("reads a flag from the command line, else from its own declared variable, else its default", () => {
    expect(parseFlags(SPECS, ["--listen", "h:2"], { INFERMESH_T_LISTEN: "h:3" }).string("listen")).to.equal("h:2");
    expect(parseFlags(SPECS, [], { INFERMESH_T_LISTEN: "h:3" }).string("listen")).to.equal("h:3");
    expect(parseFlags(SPECS, [], {}).string("listen")).to.equal("127.0.0.1:1");
    expect(parseFlags(SPECS, [], { INFERMESH_T_LISTEN: "" }).string("listen"), "an empty variable is unset").to.equal("127.0.0.1:1");
  });

  it("never reads a variable the flag does not declare, as INFERMESH_<FLAG> or another command's", () => {
    const flags = parseFlags(SPECS, [], {
      INFERMESH_LISTEN: "h:9",
      INFERMESH_API_KEY: "users-key",
      INFERMESH_MODEL: "m",
      INFERMESH_ALL: "1",
    });
    expect([flags.string("listen"), flags.string("api-key"), flags.strings("model"), flags.boolean("all")]).to.deep.equal([
      "127.0.0.1:1",
      undefined,
      [],
      false,
    ]);
  });

  it("tells where a value came from, and names the flag or its variable in messages accordingly", () => {
    const flags = parseFlags(SPECS, ["--model", "a"], { INFERMESH_T_LISTEN: "h:3" });
    expect([flags.given("model"), flags.given("listen"), flags.given("api-key")]).to.deep.equal(["argv", "env", undefined]);
    expect([flags.setting("model"), flags.setting("listen"), flags.setting("api-key")]).to.deep.equal([
      "--model",
      "INFERMESH_T_LISTEN",
      "--api-key",
    ]);
  });

  it("collects a repeated flag, splits its variable at commas, and lets the command line replace the variable", () => {
    expect(parseFlags(SPECS, ["--model", "a", "--model=b"], {}).strings("model")).to.deep.equal(["a", "b"]);
    expect(parseFlags(SPECS, [], { INFERMESH_T_MODEL: "a, b,,c" }).strings("model")).to.deep.equal(["a", "b", "c"]);
    expect(parseFlags(SPECS, ["--model", "x"], { INFERMESH_T_MODEL: "a,b" }).strings("model")).to.deep.equal(["x"]);
    expect(parseFlags(SPECS, ["--listen", "h:1", "--listen", "h:2"], {}).string("listen"), "the last one wins").to.equal("h:2");
  });

  it("reads a boolean variable as true or false, and refuses anything else naming the variable", () => {
    expect(parseFlags(SPECS, ["--all"], {}).boolean("all")).to.equal(true);
    expect(["1", "true", "YES", "on"].map((value) => parseFlags(SPECS, [], { INFERMESH_T_ALL: value }).boolean("all"))).to.deep.equal([
      true,
      true,
      true,
      true,
    ]);
    expect(["0", "false", "no", "Off"].map((value) => parseFlags(SPECS, [], { INFERMESH_T_ALL: value }).boolean("all"))).to.deep.equal([
      false,
      false,
      false,
      false,
    ]);
    const error = thrown(() => parseFlags(SPECS, [], { INFERMESH_T_ALL: "maybe" }).boolean("all"));
    expect(error).to.be.instanceOf(ConfigError);
    expect(error.message).to.equal("INFERMESH_T_ALL expects true or false (or 1, 0, yes, no, on, off), got 'maybe'");
  });

  it("refuses an unknown flag with the nearest declared one, or a pointer to --help when none is near", () => {
    const cases: [string[], string][] = [
      [["--listn", "h:1"], "unknown flag --listn; did you mean --listen?"],
      [["--api_key=k"], "unknown flag --api_key; did you mean --api-key?"],
      [["--modles"], "unknown flag --modles; did you mean --model?"],
      [["--hepl"], "unknown flag --hepl; did you mean --help?"],
      [["--frobnicate"], "unknown flag --frobnicate; --help lists the flags"],
      [["-x"], "unknown flag -x; --help lists the flags"],
    ];
    for (const [argv, message] of cases) {
      const error = thrown(() => parseFlags(SPECS, argv, {}));
      expect(error, argv.join(" ")).to.be.instanceOf(UsageError).and.to.be.instanceOf(ConfigError);
      expect(error.message, argv.join(" ")).to.equal(message);
    }
  });

  it("refuses a flag without its value, a value on a switch and an argument where none belongs, in plain words", () => {
    const cases: [string[], string][] = [
      [["--listen"], "--listen expects a value: --listen HOST:PORT"],
      [["--listen", "--all"], "--listen expects a value: --listen HOST:PORT (write --listen=--all if '--all' is the value)"],
      [["--all=yes"], "--all takes no value, got '--all=yes'"],
      [["stray"], "unexpected argument 'stray'"],
    ];
    for (const [argv, message] of cases) expect(thrown(() => parseFlags(SPECS, argv, {})).message, argv.join(" ")).to.equal(message);
    expect(parseFlags(SPECS, ["--api-key=-starts-with-dash"], {}).string("api-key")).to.equal("-starts-with-dash");
    expect(parseFlags(SPECS, ["KEY_ID", "--all"], {}, true).positionals).to.deep.equal(["KEY_ID"]);
  });

  it("requireString names the flag and its variable", () => {
    const error = thrown(() => requireString(parseFlags(SPECS, [], {}), "api-key"));
    expect(error).to.be.instanceOf(ConfigError);
    expect(error.message).to.equal("--api-key (or INFERMESH_T_API_KEY) is required");
  });
});
