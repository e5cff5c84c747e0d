import { join } from "node:path";
import { rootCertificates } from "node:tls";
import { expect } from "chai";
import { UNPREFIXED_EXPORTS as EXPORTED, refusalMessage as message } from "../../test/support/config-errors.js";
import { testCertificates } from "../../test/support/test-certificates.js";
import { parseGatewayConfig } from "./gateway-command.js";

describe("infermesh gateway's flags", () => {
  it("reads INFERMESH_GATEWAY_* variables and the shared INFERMESH_REGISTRY, never an unprefixed INFERMESH_LISTEN", () => {
    expect(parseGatewayConfig([], EXPORTED)).to.deep.include({
      listen: { host: "127.0.0.1", port: 8080 },
      grpcListen: { host: "127.0.0.1", port: 7702 },
      registry: ["http://127.0.0.1:7700"],
    });
    const config = parseGatewayConfig([], {
      ...EXPORTED,
      INFERMESH_GATEWAY_LISTEN: "127.0.0.1:0",
      INFERMESH_REGISTRY: "http://10.0.0.1:7700",
      INFERMESH_GATEWAY_MAX_TOKENS: "100",
    });
    expect(config).to.deep.include({ listen: { host: "127.0.0.1", port: 0 }, registry: ["http://10.0.0.1:7700"] });
    expect(config.guardrails?.maxTokens).to.equal(100);
  });

  it("takes registry replicas as a repeated --registry or a comma-separated INFERMESH_REGISTRY, and a redis:// URL", () => {
    const replicas = ["http://10.0.0.1:7700", "http://10.0.0.2:7700"];
    expect(parseGatewayConfig(["--registry", "10.0.0.1:7700", "--registry", "http://10.0.0.2:7700"], EXPORTED).registry).to.deep.equal(
      replicas,
    );
    const fromEnv = parseGatewayConfig([], {
      ...EXPORTED,
      INFERMESH_REGISTRY: "10.0.0.1:7700, 10.0.0.2:7700",
      INFERMESH_REDIS: "redis://r:6379/2",
    });
    expect(fromEnv).to.deep.include({ registry: replicas, redis: "redis://r:6379/2" });
    expect(parseGatewayConfig([], EXPORTED).redis).to.equal(undefined);
    expect(message(() => parseGatewayConfig(["--redis", "http://r:6379"], EXPORTED))).to.equal(
      "--redis expects redis://[USER:PASSWORD@]HOST:PORT[/DB] or rediss://…, got 'http://r:6379'",
    );
    expect(message(() => parseGatewayConfig(["--redis", "redis://r:6379/x"], EXPORTED))).to.equal(
      "--redis takes a database number as its path (redis://HOST:PORT/0), got '/x'",
    );
  });

  it("says what a bad value is in its unit, naming the flag or the variable", () => {
    expect(message(() => parseGatewayConfig([], { ...EXPORTED, INFERMESH_GATEWAY_BODY_LIMIT_BYTES: "1k" }))).to.equal(
      "INFERMESH_GATEWAY_BODY_LIMIT_BYTES expects a whole number of bytes from 1024 to 1073741824, got '1k'",
    );
    expect(message(() => parseGatewayConfig(["--registry", "http://r:1/path"], EXPORTED))).to.equal(
      "--registry expects HOST:PORT or http(s)://HOST:PORT without a path, got 'http://r:1/path'",
    );
    expect(message(() => parseGatewayConfig(["--registry", "r:0"], EXPORTED))).to.equal(
      "--registry expects a port from 1 to 65535, got 'r:0'",
    );
    expect(message(() => parseGatewayConfig(["--stream-timeout-ms", "0"], EXPORTED))).to.equal(
      "--stream-timeout-ms expects a whole number of milliseconds from 1 to 86400000, got '0'",
    );
  });

  it("reads --signup (default invite) and --metrics-listen (default none), or their variables, refusing other values", () => {
    expect(parseGatewayConfig([], EXPORTED)).to.deep.include({ signup: "invite", metricsListen: undefined });
    expect(parseGatewayConfig(["--signup", "open", "--metrics-listen", "10.0.0.1:9465"], EXPORTED)).to.deep.include({
      signup: "open",
      metricsListen: { host: "10.0.0.1", port: 9465 },
    });
    const fromEnv = { ...EXPORTED, INFERMESH_GATEWAY_SIGNUP: "closed", INFERMESH_GATEWAY_METRICS_LISTEN: "127.0.0.1:0" };
    expect(parseGatewayConfig([], fromEnv)).to.deep.include({ signup: "closed", metricsListen: { host: "127.0.0.1", port: 0 } });
    expect(message(() => parseGatewayConfig(["--signup", "anyone"], EXPORTED))).to.equal(
      "--signup expects open, invite or closed, got 'anyone'",
    );
    expect(message(() => parseGatewayConfig([], { ...EXPORTED, INFERMESH_GATEWAY_METRICS_LISTEN: "9465" }))).to.equal(
      "INFERMESH_GATEWAY_METRICS_LISTEN expects HOST:PORT with a port from 0 to 65535, got '9465'",
    );
  });

  it("reads --usage-spool (default none) or INFERMESH_GATEWAY_USAGE_SPOOL", () => {
    expect(parseGatewayConfig([], EXPORTED).usageSpool).to.equal(undefined);
    expect(parseGatewayConfig(["--usage-spool", "/var/lib/infermesh/usage"], EXPORTED).usageSpool).to.equal("/var/lib/infermesh/usage");
    expect(parseGatewayConfig([], { ...EXPORTED, INFERMESH_GATEWAY_USAGE_SPOOL: "/tmp/u" }).usageSpool).to.equal("/tmp/u");
  });
  it("serves TLS with --tls-cert and --tls-key or their variables, as the files' contents, and plaintext with neither", () => {
    const certs = testCertificates();
    expect(parseGatewayConfig([], EXPORTED)).to.deep.include({ tls: undefined, ca: undefined });
    const tls = { cert: certs.cert, key: certs.key };
    expect(parseGatewayConfig(["--tls-cert", certs.certFile, "--tls-key", certs.keyFile], EXPORTED).tls).to.deep.equal(tls);
    const env = { ...EXPORTED, INFERMESH_GATEWAY_TLS_CERT: certs.certFile, INFERMESH_GATEWAY_TLS_KEY: certs.keyFile };
    expect(parseGatewayConfig([], env).tls).to.deep.equal(tls);
  });

  it("refuses a certificate without its key, or a key without its certificate, naming the missing flag", () => {
    const certs = testCertificates();
    expect(message(() => parseGatewayConfig(["--tls-cert", certs.certFile], EXPORTED))).to.equal(
      "--tls-cert is given without --tls-key; give both, or neither",
    );
    expect(message(() => parseGatewayConfig(["--tls-key", certs.keyFile], EXPORTED))).to.equal(
      "--tls-key is given without --tls-cert; give both, or neither",
    );
    expect(message(() => parseGatewayConfig([], { ...EXPORTED, INFERMESH_GATEWAY_TLS_CERT: certs.certFile }))).to.equal(
      "INFERMESH_GATEWAY_TLS_CERT is given without --tls-key; give both, or neither",
    );
  });

  it("refuses a certificate, key or CA file that does not exist, naming the flag and the file", () => {
    const certs = testCertificates();
    const missing = join(certs.dir, "missing.pem");
    expect(message(() => parseGatewayConfig(["--tls-cert", missing, "--tls-key", certs.keyFile], EXPORTED))).to.equal(
      `--tls-cert cannot read '${missing}': no such file`,
    );
    expect(message(() => parseGatewayConfig(["--tls-cert", certs.certFile, "--tls-key", missing], EXPORTED))).to.equal(
      `--tls-key cannot read '${missing}': no such file`,
    );
    expect(message(() => parseGatewayConfig(["--ca-file", missing], EXPORTED))).to.equal(
      `--ca-file cannot read '${missing}': no such file`,
    );
    expect(message(() => parseGatewayConfig([], { ...EXPORTED, INFERMESH_CA_FILE: missing }))).to.equal(
      `INFERMESH_CA_FILE cannot read '${missing}': no such file`,
    );
  });

  it("trusts --ca-file's certificates besides Node's root certificates, for registries and peers over TLS", () => {
    const certs = testCertificates();
    const ca = parseGatewayConfig(["--ca-file", certs.caFile], EXPORTED).ca ?? [];
    // A ca option replaces Node's trust store: the public roots must come along, the file's CA last.
    expect(ca.slice(0, rootCertificates.length)).to.deep.equal([...rootCertificates]);
    expect(ca.at(-1)).to.equal(certs.ca.toString("utf8").trim());
    expect(parseGatewayConfig([], { ...EXPORTED, INFERMESH_CA_FILE: certs.caFile }).ca).to.deep.equal(ca);
  });
});
