import { createAgent } from "../../services/agent/agent.js";
import type { DiscoveredServer } from "../../services/agent/local-servers.js";
import { createLogger } from "../../services/shared/logger.js";
import { packageRoot } from "../../services/shared/package-root.js";
import { collectProcessMetrics } from "../../services/shared/process-metrics.js";
import { AGENT_FLAGS, discoverAgentConfig } from "./agent-flags.js";
import type { RunnableCommand } from "./command.js";
import { onShutdownSignal } from "./shutdown.js";

/**
 * runAgent starts an agent beside local model servers: it dials the mesh (--mesh) and serves the calls that come down
 * its link until SIGTERM or SIGINT, then drains: new calls are refused, calls in flight get the grace period, the link
 * closes (the mesh takes the provider offline at once), and the process exits 0. A mesh that refuses the agent at
 * start (its key, its provider id, the TLS handshake) stops it with LinkRefused's one line and exit code 1; one that
 * cannot be reached yet is dialled again until it can.
 */
export async function runAgent(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  let found: readonly DiscoveredServer[] = [];
  const config = await discoverAgentConfig(argv, env, { onFound: (servers) => (found = servers) });
  const log = createLogger("agent", config.logLevel);
  if (found.length > 0)
    log.info({ found: found.map(({ type, url, engine, models }) => ({ type, url, engine, models })) }, "local model servers found");
  const agent = createAgent({ config, log, version: packageRoot()?.version ?? "dev" });
  collectProcessMetrics(agent.metrics.registry);
  try {
    await agent.listen();
  } catch (error) {
    await agent.close();
    throw error;
  }
  await onShutdownSignal(log);
  await agent.close();
  log.flush();
}

/** AGENT_COMMAND is `infermesh agent`. */
export const AGENT_COMMAND: RunnableCommand = {
  name: "agent",
  summary: "serve local model servers (llama-server, Ollama, vLLM, ...) to the mesh",
  synopsis: "agent --mesh URL --api-key-file FILE --upstream [TYPE=][KIND+]URL[#MODEL]... [flags]",
  flags: AGENT_FLAGS,
  run: runAgent,
};
