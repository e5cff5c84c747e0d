import { parseDialAddress, parseWholeNumber } from "../../services/shared/config-values.js";
import type { CommandOutput, RunnableCommand } from "./command.js";
import { type FlagSpecs, parseFlags, requireString } from "./flags.js";
import { DEFAULT_GATEWAY_LISTEN } from "./gateway-command.js";
import { prometheusScrapeConfig, type ScrapeTargets } from "./scrape-config.js";

/** DEFAULT_SCRAPE_INTERVAL_SECONDS is Prometheus' own default scrape interval. */
export const DEFAULT_SCRAPE_INTERVAL_SECONDS = 15;

/** METRICS_CONFIG_FLAGS are `infermesh metrics-config`'s flags. */
export const METRICS_CONFIG_FLAGS: FlagSpecs = {
  gateway: {
    type: "string",
    multiple: true,
    value: "HOST:PORT",
    description: `a gateway's HTTP address, which serves /metrics (${DEFAULT_GATEWAY_LISTEN}, as \`infermesh dev\`, when no target is given)`,
    env: "INFERMESH_METRICS_CONFIG_GATEWAY",
  },
  registry: {
    type: "string",
    multiple: true,
    value: "HOST:PORT",
    description: "a registry's --metrics-listen address",
    env: "INFERMESH_METRICS_CONFIG_REGISTRY",
  },
  agent: {
    type: "string",
    multiple: true,
    value: "HOST:PORT",
    description: "an agent's --metrics-listen address",
    env: "INFERMESH_METRICS_CONFIG_AGENT",
  },
  "scrape-interval": {
    type: "string",
    default: String(DEFAULT_SCRAPE_INTERVAL_SECONDS),
    value: "SECONDS",
    description: "seconds between two scrapes",
    env: "INFERMESH_METRICS_CONFIG_SCRAPE_INTERVAL",
  },
};

/** MetricsConfig is `infermesh metrics-config`'s configuration, parsed once. */
export interface MetricsConfig {
  readonly targets: ScrapeTargets;
  readonly scrapeIntervalSeconds: number;
}

/** parseMetricsConfig turns flags and their variables into a frozen MetricsConfig or throws a ConfigError. */
export function parseMetricsConfig(argv: readonly string[], env: NodeJS.ProcessEnv): MetricsConfig {
  const flags = parseFlags(METRICS_CONFIG_FLAGS, argv, env);
  const addresses = (name: string) => flags.strings(name).map((value) => parseDialAddress(flags.setting(name), value));
  const given = { gateway: addresses("gateway"), registry: addresses("registry"), agent: addresses("agent") };
  const none = given.gateway.length + given.registry.length + given.agent.length === 0;
  return Object.freeze({
    targets: none ? { ...given, gateway: [DEFAULT_GATEWAY_LISTEN] } : given,
    scrapeIntervalSeconds: parseWholeNumber(flags.setting("scrape-interval"), requireString(flags, "scrape-interval"), 1, 3600, "seconds"),
  });
}

/** runMetricsConfig prints a Prometheus scrape configuration for the given services on stdout. */
export async function runMetricsConfig(argv: readonly string[], env: NodeJS.ProcessEnv, output: CommandOutput): Promise<void> {
  const config = parseMetricsConfig(argv, env);
  output.stdout(prometheusScrapeConfig(config.targets, config.scrapeIntervalSeconds));
}

/** METRICS_CONFIG_COMMAND is `infermesh metrics-config`. */
export const METRICS_CONFIG_COMMAND: RunnableCommand = {
  name: "metrics-config",
  summary: "print a Prometheus scrape configuration for the services' /metrics",
  synopsis: "metrics-config [--gateway HOST:PORT]... [--registry HOST:PORT]... [--agent HOST:PORT]... [--scrape-interval SECONDS]",
  flags: METRICS_CONFIG_FLAGS,
  run: runMetricsConfig,
};
