import { expect } from "chai";
import { ConfigError } from "../../services/shared/config-error.js";

/** refusal runs what must refuse its configuration and returns the ConfigError it threw. */
export function refusal(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

/** refusalMessage is the one line a refused configuration prints. */
export function refusalMessage(run: () => unknown): string {
  return refusal(run).message;
}

/** fakeFiles reads files from contents by path; any other path fails as a missing file does (ENOENT). */
export function fakeFiles(contents: Readonly<Record<string, string>>): (path: string) => string {
  return (path) => {
    const text = contents[path];
    if (text === undefined) throw Object.assign(new Error("no such file"), { code: "ENOENT" });
    return text;
  };
}

/** MESH_TOKEN_FOR_FLAGS is a mesh token long enough for the registry's and gateway's flags. */
export const MESH_TOKEN_FOR_FLAGS = "mesh-token-0123456789abcdef";

/**
 * UNPREFIXED_EXPORTS are variables a shell may have exported for another command: a command that reads its own
 * INFERMESH_<COMMAND>_* variables must ignore them.
 */
export const UNPREFIXED_EXPORTS: Readonly<Record<string, string>> = {
  INFERMESH_MESH_TOKEN: MESH_TOKEN_FOR_FLAGS,
  INFERMESH_LISTEN: "0.0.0.0:1",
  INFERMESH_GRPC_LISTEN: "0.0.0.0:2",
  INFERMESH_METRICS_LISTEN: "0.0.0.0:3",
};
