import { expect } from "chai";
import { ConfigError } from "../../services/shared/config-error.js";
import { parseRegistryConfig } from "./registry-command.js";

const MESH = "mesh-token-0123456789abcdef";

function message(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected a ConfigError");
}

const EXPORTED = {
  INFERMESH_MESH_TOKEN: MESH,
  INFERMESH_LISTEN: "0.0.0.0:1",
  INFERMESH_GRPC_LISTEN: "0.0.0.0:2",
  INFERMESH_METRICS_LISTEN: "0.0.0.0:3",
};

describe("infermesh registry's flags", () => {
  it("reads INFERMESH_REGISTRY_* variables, never an unprefixed INFERMESH_LISTEN", () => {
    expect(parseRegistryConfig([], EXPORTED)).to.deep.include({ listen: { host: "127.0.0.1", port: 7700 }, metricsListen: undefined });
    const config = parseRegistryConfig([], { ...EXPORTED, INFERMESH_REGISTRY_LISTEN: "127.0.0.1:0", INFERMESH_REGISTRY_TTL_MS: "60000" });
    expect(config).to.deep.include({ listen: { host: "127.0.0.1", port: 0 }, ttlMs: 60_000 });
  });

  it("says what a bad value is in its unit, naming the flag", () => {
    expect(message(() => parseRegistryConfig(["--heartbeat-interval-ms", "soon"], EXPORTED))).to.equal(
      "--heartbeat-interval-ms expects a whole number of milliseconds from 50 to 86400000, got 'soon'",
    );
    expect(message(() => parseRegistryConfig(["--ttl-ms", "10"], EXPORTED))).to.equal(
      "--ttl-ms expects a whole number of milliseconds from 10000 to 86400000, got '10'",
    );
  });
});
