/** ScrapeTargets are the /metrics addresses ("host:port") of a mesh's services, by service. */
export interface ScrapeTargets {
  /** gateway are gateways' HTTP addresses: they serve /metrics beside the OpenAI API. */
  readonly gateway: readonly string[];
  /** registry are registries' --metrics-listen addresses. */
  readonly registry: readonly string[];
  /** agent are agents' --metrics-listen addresses. */
  readonly agent: readonly string[];
}

/**
 * prometheusScrapeConfig writes a Prometheus configuration with one scrape job per service (`infermesh-gateway`,
 * `infermesh-registry`, `infermesh-agent`), usable as a whole prometheus.yml or merged into one. Jobs without targets
 * are left out.
 */
export function prometheusScrapeConfig(targets: ScrapeTargets, scrapeIntervalSeconds: number): string {
  const lines = [
    "# Prometheus scrape configuration for infermesh, printed by `infermesh metrics-config`.",
    "# Use it as prometheus.yml (prometheus --config.file=FILE), or copy its jobs under your scrape_configs.",
    "scrape_configs:",
  ];
  for (const service of ["gateway", "registry", "agent"] as const) {
    if (targets[service].length === 0) continue;
    lines.push(
      `  - job_name: infermesh-${service}`,
      `    scrape_interval: ${scrapeIntervalSeconds}s`,
      "    metrics_path: /metrics",
      "    static_configs:",
      `      - targets: [${targets[service].map((target) => JSON.stringify(target)).join(", ")}]`,
    );
  }
  return `${lines.join("\n")}\n`;
}
