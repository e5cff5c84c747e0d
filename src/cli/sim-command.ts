import { createSimulator, type FailureMode, type ModelKind, type SimulatedModel, type SimulatorOptions } from "../../services/sim/simulator.js";
import { createLogger } from "../../services/shared/logger.js";
import { parseFlags, parseHostPort, parseWholeNumber, requireString, usageText, UsageError, type FlagSpecs } from "./flags.js";
import { onShutdownSignal } from "./shutdown.js";

/** DEFAULT_SIM_LISTEN is the simulator's address unless told otherwise (llama-server's own default port). */
export const DEFAULT_SIM_LISTEN = "127.0.0.1:8090";

/** SIM_FLAGS are `infermesh sim`'s flags. */
export const SIM_FLAGS: FlagSpecs = {
  listen: { type: "string", default: DEFAULT_SIM_LISTEN, description: "HTTP listen address HOST:PORT" },
  model: { type: "string", multiple: true, description: "a model to serve, [KIND=]ID with KIND llm, stt, image or tts (repeatable; default sim-llama)" },
  "tokens-per-second": { type: "string", description: "tokens per second per stream (0: as fast as possible)" },
  "ttft-ms": { type: "string", description: "time to first token in milliseconds" },
  "completion-tokens": { type: "string", description: "reply length in tokens when a request sets no max_tokens" },
  fail: { type: "string", description: "inject a failure into every request: status, stall or drop" },
  "fail-status": { type: "string", description: "HTTP status of --fail status" },
  "fail-after-tokens": { type: "string", description: "tokens produced before the failure strikes" },
  "api-key": { type: "string", description: "require this Bearer key, like llama-server's --api-key" },
  help: { type: "boolean", description: "print this help" },
};

const FAILURE_MODES: readonly FailureMode[] = ["status", "stall", "drop"];

/** parseSimulatorOptions maps `infermesh sim` flags to SimulatorOptions. */
export function parseSimulatorOptions(argv: readonly string[], env: NodeJS.ProcessEnv): SimulatorOptions {
  const flags = parseFlags(SIM_FLAGS, argv, env);
  const count = (name: string, max = 1_000_000, unit = "tokens") => {
    const value = flags.string(name);
    return value === undefined ? undefined : parseWholeNumber(name, value, 0, max, unit);
  };
  const fail = flags.string("fail");
  if (fail !== undefined && !(FAILURE_MODES as readonly string[]).includes(fail)) {
    throw new UsageError(`--fail expects one of ${FAILURE_MODES.join(", ")}, got '${fail}'`);
  }
  const models = flags.strings("model");
  const tokensPerSecond = count("tokens-per-second", 1_000_000, "tokens per second");
  const ttftMs = count("ttft-ms", 600_000, "milliseconds");
  const completionTokens = count("completion-tokens");
  const failStatus = count("fail-status", 599, "HTTP status");
  const failAfter = count("fail-after-tokens");
  const apiKey = flags.string("api-key");
  return {
    ...(models.length > 0 ? { models: models.map(parseSimulatedModel) } : {}),
    ...(tokensPerSecond === undefined ? {} : { tokensPerSecond }),
    ...(ttftMs === undefined ? {} : { timeToFirstTokenMs: ttftMs }),
    ...(completionTokens === undefined ? {} : { completionTokens }),
    ...(apiKey ? { apiKey } : {}),
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
}

/** parseSimulatedModel reads `[KIND=]ID`, as `--model stt=sim-whisper`. */
export function parseSimulatedModel(value: string): SimulatedModel {
  const match = /^(?:(llm|stt|image|tts)=)?([^=\s]+)$/.exec(value);
  if (!match) throw new UsageError(`--model expects [KIND=]ID with KIND llm, stt, image or tts, got '${value}'`);
  return { id: match[2] as string, kind: (match[1] ?? "llm") as ModelKind };
}

/** runSim serves the llama-server simulator (a demo and test fixture) until SIGTERM or SIGINT. */
export async function runSim(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  if (parseFlags(SIM_FLAGS, argv, env).boolean("help")) {
    process.stdout.write(usageText("infermesh sim [flags]   (a llama-server simulator: a fixture for demos and tests)", SIM_FLAGS));
    return;
  }
  const listen = parseHostPort("--listen", requireString(parseFlags(SIM_FLAGS, argv, env), "listen"));
  const simulator = createSimulator(parseSimulatorOptions(argv, env));
  const log = createLogger("sim");
  const { url } = await simulator.listen(listen.port, listen.host);
  log.info({ url, models: simulator.config.models.map((m) => m.id) }, "simulator ready");
  await onShutdownSignal(log);
  await simulator.close();
  log.flush();
}
