import * as grpc from "@grpc/grpc-js";
import { runCommandLine } from "./command-line.js";
import { INFERMESH } from "./infermesh-commands.js";

// grpc-js writes its own diagnostics to stderr; the services report failures themselves, once, in JSON.
grpc.setLogVerbosity(grpc.logVerbosity.NONE);
process.exitCode = await runCommandLine(INFERMESH, process.argv.slice(2), process.env, {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
});
