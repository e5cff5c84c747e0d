import { readFileSync } from "node:fs";
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import { Agent, fetch as undiciFetch } from "undici";
import { createRegistry } from "../services/registry/registry.js";
import { createSqliteStore } from "../services/registry/store/sqlite-store.js";
import { createRegistryClient, type RegistryClient } from "../services/shared/grpc/registry-client.js";
import { readServerTls, tlsFailureHint, trustedCas } from "../services/shared/tls-files.js";
import { MESH_TOKEN, type RegistryFixture, startRegistry } from "./support/registry-fixture.js";
import { cleartextStatus, testCertificates } from "./support/test-certificates.js";

/** FAIL_FAST_MS is how long a refused handshake may take to fail a call: far below the call's own deadline. */
const FAIL_FAST_MS = 3_000;
const CALL_TIMEOUT_MS = 15_000;

describe("the registry over TLS", () => {
  const certs = testCertificates();
  const headers = { authorization: `Bearer ${MESH_TOKEN}` };
  let registry: RegistryFixture;
  const clients: RegistryClient[] = [];
  const connect = (url: string, ca: string[] | undefined) => {
    const client = createRegistryClient(url, { pingIntervalMs: 10_000, pingTimeoutMs: 5_000 }, { ca });
    clients.push(client);
    return client.client;
  };
  /** refusal runs a call that must fail, and returns its error and how long it took. */
  const refusal = async (call: () => Promise<unknown>) => {
    const started = Date.now();
    try {
      await call();
    } catch (error) {
      return { error: ConnectError.from(error), elapsedMs: Date.now() - started };
    }
    throw new Error("expected the call to fail");
  };

  before(async () => {
    registry = await startRegistry({ tls: readServerTls(certs.certFile, certs.keyFile) });
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });
  after(() => registry.stop());

  it("answers a client at https:// that trusts its CA, with the mesh token", async () => {
    const client = connect(`https://${registry.address}`, trustedCas(certs.caFile));
    const created = await client.createApiKey({ userName: "alice", label: "over tls" }, { headers, timeoutMs: CALL_TIMEOUT_MS });
    expect([created.apiKey.length > 0, created.key?.userName, created.key?.label]).to.deep.equal([true, "alice", "over tls"]);
    const listed = await client.listProviders({}, { headers, timeoutMs: CALL_TIMEOUT_MS });
    expect(listed.providers).to.deep.equal([]);
  });

  it("fails at once, with a hint naming --ca-file, for a client that trusts another CA", async () => {
    const client = connect(`https://${registry.address}`, trustedCas(certs.wrongCaFile));
    const { error, elapsedMs } = await refusal(() => client.listProviders({}, { headers, timeoutMs: CALL_TIMEOUT_MS }));
    expect(elapsedMs).to.be.below(FAIL_FAST_MS);
    expect(tlsFailureHint(error)).to.equal(
      "the server's TLS certificate is not signed by a certificate authority this process trusts (UNABLE_TO_VERIFY_LEAF_SIGNATURE): give that CA's certificate with --ca-file FILE (or in NODE_EXTRA_CA_CERTS)",
    );
  });

  it("fails at once for a client that speaks plaintext HTTP/2 to the TLS port", async () => {
    const client = connect(`http://${registry.address}`, undefined);
    const { error, elapsedMs } = await refusal(() => client.listProviders({}, { headers, timeoutMs: CALL_TIMEOUT_MS }));
    expect(elapsedMs).to.be.below(FAIL_FAST_MS);
    // The TLS port hangs up on bytes that are not a ClientHello, and connect-node reports the lost stream as
    // cancelled: a caller that treats CANCELED as its own doing must look at its URL's scheme too.
    expect([error.code, error.rawMessage]).to.deep.equal([Code.Canceled, "http/2 stream closed with error code CANCEL (0x8)"]);
    expect(tlsFailureHint(error)).to.equal(undefined);
  });

  it("serves its metrics port over TLS too", async () => {
    const store = createSqliteStore({ path: ":memory:" });
    const withMetrics = createRegistry({
      store,
      meshToken: MESH_TOKEN,
      shutdownGraceMs: 0,
      listen: { host: "127.0.0.1", port: 0 },
      tls: readServerTls(certs.certFile, certs.keyFile),
      metricsListen: { host: "127.0.0.1", port: 0 },
    });
    try {
      const port = (await withMetrics.listen()).metrics?.port;
      const scraped = await undiciFetch(`https://localhost:${port}/metrics`, {
        dispatcher: new Agent({ connect: { ca: readFileSync(certs.caFile) } }),
      });
      expect(scraped.status).to.equal(200);
      expect(await scraped.text()).to.include("infermesh_registry_");
      const plain = await cleartextStatus(`http://127.0.0.1:${port}/metrics`);
      expect(plain).to.not.equal(200);
    } finally {
      await withMetrics.close();
      await store.close();
    }
  });
});
