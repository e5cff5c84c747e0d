import { parseFlags, parseHostPort, parseWholeNumber, requireString, UsageError, usageText, type FlagSpecs } from "./flags.js";
import { DEFAULT_GATEWAY_LISTEN } from "./gateway-command.js";
import { prometheusScrapeConfig, type ScrapeTargets } from "./scrape-config.js";

/** DEFAULT_SCRAPE_INTERVAL_SECONDS is Prometheus' own default scrape interval. */
export const DEFAULT_SCRAPE_INTERVAL_SECONDS = 15;

/** METRICS_CONFIG_FLAGS are `infermesh metrics-config`'s flags. */
export const METRICS_CONFIG_FLAGS: FlagSpecs = {
  gateway: {
    type: "string",
    multiple: true,
    description: `a gateway's HTTP address HOST:PORT, which serves /metrics (repeatable; default ${DEFAULT_GATEWAY_LISTEN} when no target is given, as \`infermesh dev\`)`,
  },
  registry: { type: "string", multiple: true, description: "a registry's --metrics-listen address HOST:PORT (repeatable)" },
  agent: { type: "string", multiple: true, description: "an agent's --metrics-listen address HOST:PORT (repeatable)" },
  "scrape-interval": { type: "string", default: String(DEFAULT_SCRAPE_INTERVAL_SECONDS), description: "seconds between two scrapes" },
  help: { type: "boolean", description: "print this help" },
};

/** MetricsConfig is `infermesh metrics-config`'s configuration, parsed once. */
export interface MetricsConfig {
  readonly targets: ScrapeTargets;
  readonly scrapeIntervalSeconds: number;
}

/** parseMetricsConfig turns flags and INFERMESH_* variables into a frozen MetricsConfig or throws a UsageError. */
export function parseMetricsConfig(argv: readonly string[], env: NodeJS.ProcessEnv): MetricsConfig {
  const flags = parseFlags(METRICS_CONFIG_FLAGS, argv, env);
  const addresses = (name: string) =>
    flags.strings(name).map((value) => {
      const { host, port } = parseHostPort(`--${name}`, value);
      if (port === 0) throw new UsageError(`--${name} expects a port from 1 to 65535, got '${value}'`);
      return `${host}:${port}`;
    });
  const given = { gateway: addresses("gateway"), registry: addresses("registry"), agent: addresses("agent") };
  const none = given.gateway.length + given.registry.length + given.agent.length === 0;
  return Object.freeze({
    targets: none ? { ...given, gateway: [DEFAULT_GATEWAY_LISTEN] } : given,
    scrapeIntervalSeconds: parseWholeNumber("scrape-interval", requireString(flags, "scrape-interval"), 1, 3600, "seconds"),
  });
}

/** runMetricsConfig prints a Prometheus scrape configuration for the given services on stdout. */
export async function runMetricsConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  if (parseFlags(METRICS_CONFIG_FLAGS, argv, env).boolean("help")) {
    process.stdout.write(usageText("infermesh metrics-config [--gateway HOST:PORT]... [--registry HOST:PORT]... [--agent HOST:PORT]...", METRICS_CONFIG_FLAGS));
    return;
  }
  const config = parseMetricsConfig(argv, env);
  process.stdout.write(prometheusScrapeConfig(config.targets, config.scrapeIntervalSeconds));
}
