import { expect } from "chai";
import { UsageError } from "./flags.js";
import { parseMetricsConfig } from "./metrics-config-command.js";
import { prometheusScrapeConfig } from "./scrape-config.js";

describe("infermesh metrics-config", () => {
  it("writes one scrape job per service that has targets", () => {
    const config = prometheusScrapeConfig({ gateway: ["10.0.0.1:8080"], registry: [], agent: ["10.0.0.2:9100", "[::1]:9100"] }, 5);
    expect(config).to.equal(
      [
        "# Prometheus scrape configuration for infermesh, printed by `infermesh metrics-config`.",
        "# Use it as prometheus.yml (prometheus --config.file=FILE), or copy its jobs under your scrape_configs.",
        "scrape_configs:",
        "  - job_name: infermesh-gateway",
        "    scrape_interval: 5s",
        "    metrics_path: /metrics",
        "    static_configs:",
        '      - targets: ["10.0.0.1:8080"]',
        "  - job_name: infermesh-agent",
        "    scrape_interval: 5s",
        "    metrics_path: /metrics",
        "    static_configs:",
        '      - targets: ["10.0.0.2:9100", "[::1]:9100"]',
        "",
      ].join("\n"),
    );
  });

  it("scrapes `infermesh dev`'s gateway when no target is given, and reads targets from INFERMESH_* variables", () => {
    expect(parseMetricsConfig([], {})).to.deep.equal({
      targets: { gateway: ["127.0.0.1:8080"], registry: [], agent: [] },
      scrapeIntervalSeconds: 15,
    });
    expect(parseMetricsConfig([], { INFERMESH_AGENT: "a:1, b:2" }).targets).to.deep.equal({ gateway: [], registry: [], agent: ["a:1", "b:2"] });
  });

  it("refuses a target that is not HOST:PORT, port 0 and a bad interval, naming the flag", () => {
    expect(() => parseMetricsConfig(["--registry", "nohost"], {})).to.throw(UsageError, /--registry expects HOST:PORT/);
    expect(() => parseMetricsConfig(["--agent", "a:0"], {})).to.throw(UsageError, /--agent expects a port from 1 to 65535/);
    expect(() => parseMetricsConfig(["--scrape-interval", "1m"], {})).to.throw(UsageError, /scrape-interval/);
  });
});
