import { expect } from "chai";
import { UNPREFIXED_EXPORTS as EXPORTED, refusalMessage as message } from "../../test/support/config-errors.js";
import { testCertificates } from "../../test/support/test-certificates.js";
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

  it("serves TLS with --tls-cert and --tls-key or their variables, and plaintext with neither", () => {
    const certs = testCertificates();
    expect(parseRegistryConfig([], EXPORTED).tls).to.equal(undefined);
    const tls = { cert: certs.cert, key: certs.key };
    expect(parseRegistryConfig(["--tls-cert", certs.certFile, "--tls-key", certs.keyFile], EXPORTED).tls).to.deep.equal(tls);
    const env = { ...EXPORTED, INFERMESH_REGISTRY_TLS_CERT: certs.certFile, INFERMESH_REGISTRY_TLS_KEY: certs.keyFile };
    expect(parseRegistryConfig([], env).tls).to.deep.equal(tls);
  });

  it("refuses a certificate without its key, naming the flag or variable as given", () => {
    const certs = testCertificates();
    expect(message(() => parseRegistryConfig(["--tls-cert", certs.certFile], EXPORTED))).to.equal(
      "--tls-cert is given without --tls-key; give both, or neither",
    );
    expect(message(() => parseRegistryConfig([], { ...EXPORTED, INFERMESH_REGISTRY_TLS_KEY: certs.keyFile }))).to.equal(
      "INFERMESH_REGISTRY_TLS_KEY is given without --tls-cert; give both, or neither",
    );
    expect(message(() => parseRegistryConfig(["--tls-cert", certs.keyFile, "--tls-key", certs.keyFile], EXPORTED))).to.equal(
      `--tls-cert '${certs.keyFile}' holds a private key, not a certificate; are --tls-cert and --tls-key swapped?`,
    );
  });
});
