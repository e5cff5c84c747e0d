import { ConfigError } from "../../services/shared/config-error.js";
import { listInWords, parseWholeNumber } from "../../services/shared/config-values.js";
import { type HostPort, parseHostPort } from "../../services/shared/host-port.js";
import { createLogger } from "../../services/shared/logger.js";
import {
  createSimulator,
  type FailureMode,
  type ModelKind,
  type SimulatedModel,
  type SimulatedProtocol,
  type SimulatorOptions,
} from "../../services/sim/simulator.js";
import { MODEL_KINDS, SIMULATED_PROTOCOLS } from "../../services/sim/simulator-options.js";
import type { RunnableCommand } from "./command.js";
import { type FlagSpecs, parseFlags, requireString } from "./flags.js";
import { type ReadTextFile, readSecret, readTextFile } from "./secret-flag.js";
import { onShutdownSignal } from "./shutdown.js";

/** DEFAULT_SIM_LISTEN is the simulator's address unless told otherwise. */
export const DEFAULT_SIM_LISTEN = "127.0.0.1:8090";

const FAILURE_MODES: readonly FailureMode[] = ["status", "stall", "drop"];

/**
 * SIM_FLAGS are `infermesh sim`'s flags. Every variable carries SIM: the simulator's --api-key in particular is a
 * key it demands, like llama-server's, never the user's own infermesh key that INFERMESH_API_KEY holds.
 */
export const SIM_FLAGS: FlagSpecs = {
  listen: {
    type: "string",
    default: DEFAULT_SIM_LISTEN,
    value: "HOST:PORT",
    description: "HTTP listen address",
    env: "INFERMESH_SIM_LISTEN",
  },
  model: {
    type: "string",
    multiple: true,
    value: "[KIND=]ID",
    description: `a model to serve, KIND ${listInWords(MODEL_KINDS)} (default llm; without --model, sim-llama)`,
    env: "INFERMESH_SIM_MODEL",
  },
  "tokens-per-second": {
    type: "string",
    value: "N",
    description: "tokens per second per stream (0: as fast as possible)",
    env: "INFERMESH_SIM_TOKENS_PER_SECOND",
  },
  "ttft-ms": { type: "string", value: "MS", description: "time to first token, in milliseconds", env: "INFERMESH_SIM_TTFT_MS" },
  "completion-tokens": {
    type: "string",
    value: "N",
    description: "reply length in tokens when a request sets no max_tokens",
    env: "INFERMESH_SIM_COMPLETION_TOKENS",
  },
  fail: {
    type: "string",
    value: "MODE",
    description: `inject a failure into every request: ${listInWords(FAILURE_MODES)}`,
    env: "INFERMESH_SIM_FAIL",
  },
  "fail-status": {
    type: "string",
    value: "STATUS",
    description: "HTTP status of --fail status, from 400 to 599",
    env: "INFERMESH_SIM_FAIL_STATUS",
  },
  "fail-after-tokens": {
    type: "string",
    value: "N",
    description: "tokens produced before the failure strikes",
    env: "INFERMESH_SIM_FAIL_AFTER_TOKENS",
  },
  protocols: {
    type: "string",
    value: "LIST",
    description:
      `the APIs to serve besides chat and completions, comma-separated: ${listInWords(SIMULATED_PROTOCOLS, "and")} (the default); ` +
      "none answers their routes 404, as an older llama-server does",
    env: "INFERMESH_SIM_PROTOCOLS",
  },
  "api-key": {
    type: "string",
    value: "KEY",
    description: "require this Bearer key, like llama-server's --api-key (`ps` shows flags: prefer --api-key-file)",
    env: "INFERMESH_SIM_API_KEY",
  },
  "api-key-file": {
    type: "string",
    value: "FILE",
    description: "a file holding the key to require (its content trimmed)",
    env: "INFERMESH_SIM_API_KEY_FILE",
  },
};

/** SimConfig is `infermesh sim`'s configuration, parsed once. */
export interface SimConfig {
  readonly listen: HostPort;
  readonly options: SimulatorOptions;
}

/** parseSimConfig maps `infermesh sim` flags and their variables to where to listen and the SimulatorOptions. */
export function parseSimConfig(argv: readonly string[], env: NodeJS.ProcessEnv, readFile: ReadTextFile = readTextFile): SimConfig {
  const flags = parseFlags(SIM_FLAGS, argv, env);
  const count = (name: string, max: number, unit: string) => {
    const value = flags.string(name);
    return value === undefined ? undefined : parseWholeNumber(flags.setting(name), value, 0, max, unit);
  };
  const fail = flags.string("fail");
  if (fail !== undefined && !(FAILURE_MODES as readonly string[]).includes(fail)) {
    const where = flags.setting("fail");
    throw new ConfigError(where, `${where} expects ${listInWords(FAILURE_MODES)}, got '${fail}'`);
  }
  const listen = parseHostPort(flags.setting("listen"), requireString(flags, "listen"));
  const models = flags.strings("model").map((value) => parseSimulatedModel(flags.setting("model"), value));
  const tokensPerSecond = count("tokens-per-second", 1_000_000, "tokens per second");
  const ttftMs = count("ttft-ms", 600_000, "milliseconds");
  const completionTokens = count("completion-tokens", 1_000_000, "tokens");
  const failStatus = httpErrorStatus(flags.setting("fail-status"), flags.string("fail-status"));
  const failAfter = count("fail-after-tokens", 1_000_000, "tokens");
  const apiKey = readSecret(flags, "api-key", readFile)?.value;
  const protocolList = flags.string("protocols");
  const protocols = protocolList === undefined ? undefined : parseProtocols(flags.setting("protocols"), protocolList);
  const options: SimulatorOptions = {
    ...(models.length > 0 ? { models } : {}),
    ...(protocols === undefined ? {} : { protocols }),
    ...(tokensPerSecond === undefined ? {} : { tokensPerSecond }),
    ...(ttftMs === undefined ? {} : { timeToFirstTokenMs: ttftMs }),
    ...(completionTokens === undefined ? {} : { completionTokens }),
    ...(apiKey === undefined ? {} : { apiKey }),
    ...(fail
      ? {
          failure: {
            mode: fail as FailureMode,
            ...(failStatus === undefined ? {} : { status: failStatus }),
            ...(failAfter === undefined ? {} : { afterTokens: failAfter }),
          },
        }
      : {}),
  };
  return Object.freeze({ listen, options });
}

/** parseSimulatedModel reads `[KIND=]ID`, as `--model stt=sim-whisper`. */
export function parseSimulatedModel(where: string, value: string): SimulatedModel {
  const match = new RegExp(`^(?:(${MODEL_KINDS.join("|")})=)?([^=\\s]+)$`).exec(value);
  if (!match) throw new ConfigError(where, `${where} expects [KIND=]ID with KIND ${listInWords(MODEL_KINDS)}, got '${value}'`);
  return { id: match[2] as string, kind: (match[1] ?? "llm") as ModelKind };
}

/** parseProtocols reads `--protocols`: a comma-separated list of SIMULATED_PROTOCOLS, or none. */
export function parseProtocols(where: string, value: string): SimulatedProtocol[] {
  if (value.trim() === "none") return [];
  const names = value.split(",").map((name) => name.trim());
  const unknown = names.find((name) => !(SIMULATED_PROTOCOLS as readonly string[]).includes(name));
  if (unknown !== undefined) {
    throw new ConfigError(
      where,
      `${where} expects a comma-separated list of ${listInWords(SIMULATED_PROTOCOLS, "and")}, or none, got '${value}'`,
    );
  }
  return names.filter((name, at) => names.indexOf(name) === at) as SimulatedProtocol[];
}

function httpErrorStatus(where: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const status = /^\d{3}$/.test(value) ? Number(value) : Number.NaN;
  if (!(status >= 400 && status <= 599))
    throw new ConfigError(where, `${where} expects an HTTP error status from 400 to 599, got '${value}'`);
  return status;
}

/** runSim serves the llama-server simulator (a demo and test fixture) until SIGTERM or SIGINT. */
export async function runSim(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  const { listen, options } = parseSimConfig(argv, env);
  const simulator = createSimulator(options);
  const log = createLogger("sim");
  const { url } = await simulator.listen(listen.port, listen.host);
  log.info({ url, models: simulator.config.models.map((m) => m.id) }, "simulator ready");
  await onShutdownSignal(log);
  await simulator.close();
  log.flush();
}

/** SIM_COMMAND is `infermesh sim`. */
export const SIM_COMMAND: RunnableCommand = {
  name: "sim",
  summary: "a llama-server simulator: a fixture for demos, tests and benchmarks",
  synopsis: "sim [--listen HOST:PORT] [--model [KIND=]ID]... [flags]",
  flags: SIM_FLAGS,
  run: runSim,
};
