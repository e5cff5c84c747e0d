import { expect } from "chai";
import { ConfigError } from "../../services/shared/config-error.js";
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

  it("scrapes `infermesh dev`'s gateway when no target is given, and reads targets from INFERMESH_METRICS_CONFIG_* variables", () => {
    expect(parseMetricsConfig([], {})).to.deep.equal({
      targets: { gateway: ["127.0.0.1:8080"], registry: [], agent: [] },
      scrapeIntervalSeconds: 15,
    });
    expect(parseMetricsConfig([], { INFERMESH_METRICS_CONFIG_AGENT: "a:1, b:2" }).targets).to.deep.equal({
      gateway: [],
      registry: [],
      agent: ["a:1", "b:2"],
    });
  });

  it("ignores the variables other commands read: an exported INFERMESH_REGISTRY URL, INFERMESH_AGENT, INFERMESH_GATEWAY", () => {
    const exported = {
      INFERMESH_REGISTRY: "http://127.0.0.1:7700",
      INFERMESH_AGENT: "a:1",
      INFERMESH_GATEWAY: "g:1",
      INFERMESH_LISTEN: "0.0.0.0:1",
    };
    expect(parseMetricsConfig([], exported)).to.deep.equal(parseMetricsConfig([], {}));
  });

  it("refuses a target that is not HOST:PORT, port 0 and a bad interval, naming the flag or its variable", () => {
    expect(() => parseMetricsConfig(["--registry", "nohost"], {})).to.throw(ConfigError, /--registry expects HOST:PORT/);
    expect(() => parseMetricsConfig(["--agent", "a:0"], {})).to.throw(ConfigError, /--agent expects a port from 1 to 65535/);
    expect(() => parseMetricsConfig(["--scrape-interval", "1m"], {})).to.throw(ConfigError, /scrape-interval/);
    expect(() => parseMetricsConfig([], { INFERMESH_METRICS_CONFIG_REGISTRY: "http://127.0.0.1:7700" })).to.throw(
      ConfigError,
      "INFERMESH_METRICS_CONFIG_REGISTRY expects HOST:PORT with a port from 1 to 65535, got 'http://127.0.0.1:7700'",
    );
    expect(() => parseMetricsConfig(["--scrape-interval", "0"], {})).to.throw(
      ConfigError,
      "--scrape-interval expects a whole number of seconds from 1 to 3600, got '0'",
    );
  });
});
