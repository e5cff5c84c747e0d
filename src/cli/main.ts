import * as grpc from "@grpc/grpc-js";
import { runAgent } from "./agent-command.js";
import { UsageError } from "./flags.js";
import { runDev } from "./dev-command.js";
import { runGateway } from "./gateway-command.js";
import { runKeys } from "./keys-command.js";
import { runMetricsConfig } from "./metrics-config-command.js";
import { runRegistry } from "./registry-command.js";
import { runSim } from "./sim-command.js";

/** COMMANDS are infermesh's subcommands. */
const COMMANDS: Readonly<Record<string, (argv: readonly string[], env: NodeJS.ProcessEnv) => Promise<void>>> = {
  dev: runDev,
  registry: runRegistry,
  gateway: runGateway,
  sim: runSim,
  keys: runKeys,
  agent: runAgent,
  "metrics-config": runMetricsConfig,
};

const USAGE = `infermesh: an open inference network with an OpenAI-compatible gateway.

usage: infermesh <command> [flags]   (every flag also as an INFERMESH_* variable; --help on each command)

commands:
  dev        the whole mesh on loopback: registry, gateway, an agent and a model-server simulator
  registry   the control plane: providers, heartbeats, API keys (gRPC)
  gateway    the OpenAI-compatible HTTP API (and InferenceService over gRPC)
  keys       create, list and revoke API keys in the registry's database
  agent      serve local model servers (llama-server, Ollama, vLLM, ...) to the mesh
  sim        a llama-server simulator: a fixture for demos, tests and benchmarks
  metrics-config  print a Prometheus scrape configuration for the services' /metrics
`;

/**
 * main runs one subcommand. A failure to start is one line on stderr naming the command, and a non-zero exit:
 * 2 for a bad command line, 1 for anything else.
 */
async function main(argv: readonly string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    process.stdout.write(USAGE);
    return;
  }
  const run = COMMANDS[command];
  if (!run) {
    process.stderr.write(`infermesh: unknown command '${command}'\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  try {
    await run(rest, process.env);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`infermesh ${command}: ${message.split("\n")[0]}\n`);
    process.exitCode = error instanceof UsageError ? 2 : 1;
  }
}

// grpc-js writes its own diagnostics to stderr; the services report failures themselves, once, in JSON.
grpc.setLogVerbosity(grpc.logVerbosity.NONE);
await main(process.argv.slice(2));
