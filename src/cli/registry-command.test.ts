import { expect } from "chai";
import { UNPREFIXED_EXPORTS as EXPORTED, refusalMessage as message } from "../../test/support/config-errors.js";
import { parseRegistryConfig } from "./registry-command.js";

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
