import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer as createNetServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ConnectionOptions, connect, createServer as createTlsServer, rootCertificates } from "node:tls";
import { expect } from "chai";
import { refusal, refusalMessage } from "../../test/support/config-errors.js";
import { testCertificates } from "../../test/support/test-certificates.js";
import { readServerTls, tlsFailureHint, trustedCas } from "./tls-files.js";

describe("TLS files", () => {
  const certs = testCertificates();
  let dir: string;
  const file = (name: string, content: string) => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "infermesh-tls-files-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  describe("readServerTls", () => {
    it("reads a certificate chain and its key, and nothing when neither is given", () => {
      expect(readServerTls(certs.certFile, certs.keyFile)).to.deep.equal({ cert: certs.cert, key: certs.key });
      expect(readServerTls(undefined, undefined)).to.equal(undefined);
    });

    it("refuses one file without the other, naming the setting that is missing", () => {
      const keyOnly = refusal(() => readServerTls(undefined, certs.keyFile));
      expect([keyOnly.setting, keyOnly.message]).to.deep.equal([
        "--tls-cert",
        "--tls-key is given without --tls-cert; give both, or neither",
      ]);
      const certOnly = refusal(() =>
        readServerTls(certs.certFile, undefined, { cert: "INFERMESH_X_TLS_CERT", key: "INFERMESH_X_TLS_KEY" }),
      );
      expect([certOnly.setting, certOnly.message]).to.deep.equal([
        "INFERMESH_X_TLS_KEY",
        "INFERMESH_X_TLS_CERT is given without INFERMESH_X_TLS_KEY; give both, or neither",
      ]);
    });

    it("names the file that cannot be read", () => {
      const missing = join(dir, "missing.pem");
      expect(refusalMessage(() => readServerTls(missing, certs.keyFile))).to.equal(`--tls-cert cannot read '${missing}': no such file`);
      expect(refusalMessage(() => readServerTls(certs.certFile, dir))).to.equal(`--tls-key cannot read '${dir}': it is a folder`);
    });

    it("refuses files that are not PEM, and a certificate and key given the wrong way round", () => {
      const der = file("cert.der", "0\x82\x01\x00not pem at all");
      expect(refusalMessage(() => readServerTls(der, certs.keyFile))).to.equal(
        `--tls-cert expects a PEM certificate chain (-----BEGIN CERTIFICATE-----), found none in '${der}'`,
      );
      expect(refusalMessage(() => readServerTls(certs.keyFile, certs.certFile))).to.equal(
        `--tls-cert '${certs.keyFile}' holds a private key, not a certificate; are --tls-cert and --tls-key swapped?`,
      );
      expect(refusalMessage(() => readServerTls(certs.certFile, certs.certFile))).to.equal(
        `--tls-key expects a PEM private key (-----BEGIN PRIVATE KEY-----), found none in '${certs.certFile}' (it holds a certificate: are the certificate and key files swapped?)`,
      );
      const broken = file("broken.pem", "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n");
      expect(refusalMessage(() => readServerTls(broken, certs.keyFile))).to.match(
        new RegExp(`^--tls-cert '${broken}': its certificate does not parse: .+`),
      );
    });

    it("refuses a key that is not the certificate's, and a key locked with a passphrase", () => {
      const other = file(
        "other.key",
        generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      );
      expect(refusalMessage(() => readServerTls(certs.certFile, other))).to.equal(
        `--tls-key '${other}' is not the private key of the certificate in --tls-cert '${certs.certFile}' (CN=localhost)`,
      );
      const locked = file(
        "locked.key",
        generateKeyPairSync("ec", {
          namedCurve: "P-256",
          privateKeyEncoding: { type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "secret" },
          publicKeyEncoding: { type: "spki", format: "pem" },
        }).privateKey,
      );
      expect(refusalMessage(() => readServerTls(certs.certFile, locked))).to.equal(
        `--tls-key '${locked}' holds a key encrypted with a passphrase; give it unencrypted (openssl pkey -in KEY -out PLAIN_KEY) and readable only by this service's user`,
      );
    });
  });

  describe("trustedCas", () => {
    let extra: string | undefined;
    beforeEach(() => {
      extra = process.env["NODE_EXTRA_CA_CERTS"];
      delete process.env["NODE_EXTRA_CA_CERTS"];
    });
    afterEach(() => {
      if (extra === undefined) delete process.env["NODE_EXTRA_CA_CERTS"];
      else process.env["NODE_EXTRA_CA_CERTS"] = extra;
    });

    it("leaves Node's defaults alone without a CA file, and adds the file's CAs to Node's roots with one", () => {
      expect(trustedCas(undefined)).to.equal(undefined);
      expect(trustedCas(certs.caFile)).to.deep.equal([...rootCertificates, certs.ca.toString().trim()]);
    });

    it("keeps NODE_EXTRA_CA_CERTS's CAs, which a ca option would otherwise drop, and ignores it when unreadable", () => {
      process.env["NODE_EXTRA_CA_CERTS"] = certs.wrongCaFile;
      const withExtra = trustedCas(certs.caFile);
      expect(withExtra?.slice(rootCertificates.length)).to.deep.equal([
        readFileSync(certs.wrongCaFile, "utf8").trim(),
        certs.ca.toString().trim(),
      ]);
      process.env["NODE_EXTRA_CA_CERTS"] = join(dir, "missing.pem");
      expect(trustedCas(certs.caFile)?.length).to.equal(rootCertificates.length + 1);
    });

    it("refuses a CA file that cannot be read or holds no certificate, naming the setting", () => {
      const missing = join(dir, "missing.pem");
      expect(refusalMessage(() => trustedCas(missing))).to.equal(`--ca-file cannot read '${missing}': no such file`);
      const empty = file("empty.pem", "\n");
      const refused = refusal(() => trustedCas(empty, "INFERMESH_AGENT_CA_FILE"));
      expect([refused.setting, refused.message]).to.deep.equal([
        "INFERMESH_AGENT_CA_FILE",
        `INFERMESH_AGENT_CA_FILE expects PEM certificates (-----BEGIN CERTIFICATE-----), found none in '${empty}'`,
      ]);
    });
  });

  describe("tlsFailureHint", () => {
    let tlsServer: Server;
    let plainServer: Server;
    let tlsPort: number;
    let plainPort: number;
    const plainSockets = new Set<Socket>();

    before(async () => {
      tlsServer = createTlsServer({ cert: certs.cert, key: certs.key }, (socket) => socket.end());
      plainServer = createNetServer((socket) => {
        // A TLS client that gives up on a reply that is not TLS leaves the connection open here.
        plainSockets.add(socket.end("HTTP/1.1 400 Bad Request\r\n\r\n"));
      });
      tlsPort = await listen(tlsServer);
      plainPort = await listen(plainServer);
    });
    after(async () => {
      for (const socket of plainSockets) socket.destroy();
      await Promise.all([close(tlsServer), close(plainServer)]);
    });

    it("sends a client that does not trust the server's CA to --ca-file, and a client with it gets through", async () => {
      const untrusted = await handshake({ port: tlsPort, host: "127.0.0.1" });
      expect(tlsFailureHint(untrusted)).to.equal(
        "the server's TLS certificate is not signed by a certificate authority this process trusts (UNABLE_TO_VERIFY_LEAF_SIGNATURE): give that CA's certificate with --ca-file FILE (or in NODE_EXTRA_CA_CERTS)",
      );
      expect(await handshake({ port: tlsPort, host: "127.0.0.1", ca: trustedCas(certs.wrongCaFile) as string[] })).to.have.property(
        "code",
        "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
      );
      expect(await handshake({ port: tlsPort, host: "127.0.0.1", ca: trustedCas(certs.caFile) as string[] })).to.equal(undefined);
    });

    it("says which name a certificate is for, and that a plain server does not speak TLS", async () => {
      const wrongName = await handshake({ port: tlsPort, host: "127.0.0.1", servername: "example.com", ca: certs.ca });
      expect(tlsFailureHint(wrongName)).to.equal(
        "the server's TLS certificate is not for 'example.com' (it is for DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1) (ERR_TLS_CERT_ALTNAME_INVALID): use a host name the certificate names, or give the server a certificate for this one",
      );
      const plain = await handshake({ port: plainPort, host: "127.0.0.1" });
      expect(tlsFailureHint(plain)).to.equal(
        "the server did not answer in TLS (ERR_SSL_WRONG_VERSION_NUMBER, wrong version number): it serves plain HTTP, so use an http:// URL, or give the server --tls-cert and --tls-key",
      );
    });

    it("finds the TLS error among the causes a client wraps it in, or in the words of a flattened message", () => {
      const expired = Object.assign(new Error("certificate has expired"), { code: "CERT_HAS_EXPIRED" });
      const sentence =
        "the server's TLS certificate has expired (CERT_HAS_EXPIRED): the server needs a renewed certificate, unless this machine's clock is wrong";
      expect(tlsFailureHint(new TypeError("fetch failed", { cause: expired }))).to.equal(sentence);
      expect(tlsFailureHint(new AggregateError([new Error("first"), expired]))).to.equal(sentence);
      expect(tlsFailureHint(new Error("14 UNAVAILABLE: No connection established. Last error: Error: self-signed certificate"))).to.equal(
        "the server's TLS certificate is self-signed (DEPTH_ZERO_SELF_SIGNED_CERT): give that certificate itself with --ca-file FILE, or give the server a certificate signed by a CA",
      );
      expect(tlsFailureHint(Object.assign(new Error("write EPROTO ...:wrong version number:..."), { code: "EPROTO" }))).to.match(
        /^the server did not answer in TLS \(ERR_SSL_WRONG_VERSION_NUMBER\)/,
      );
    });

    it("has nothing to say about errors that are not TLS errors", () => {
      expect(tlsFailureHint(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }))).to.equal(undefined);
      expect(tlsFailureHint(new Error("boom", { cause: "not an error" }))).to.equal(undefined);
      expect(tlsFailureHint("a string")).to.equal(undefined);
      expect(tlsFailureHint(undefined)).to.equal(undefined);
    });
  });
});

/** handshake connects with TLS and resolves the handshake's error, or undefined once it succeeds. */
function handshake(options: ConnectionOptions): Promise<Error | undefined> {
  return new Promise((resolve) => {
    const socket = connect(options, () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once("error", resolve);
  });
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
