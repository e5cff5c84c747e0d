import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * TestCertificates are a throwaway PKI for tests of TLS: a CA, a server certificate it signed for localhost,
 * 127.0.0.1 and ::1, and a second CA that signed nothing here, for a client that trusts the wrong authority.
 */
export interface TestCertificates {
  readonly dir: string;
  /** caFile is the CA's certificate (PEM): what a client passes as --ca-file. */
  readonly caFile: string;
  /** certFile is the server's certificate (PEM), signed by the CA. */
  readonly certFile: string;
  /** keyFile is the server certificate's private key (PEM, unencrypted). */
  readonly keyFile: string;
  /** wrongCaFile is an unrelated CA's certificate (PEM). */
  readonly wrongCaFile: string;
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** VALIDITY_DAYS is how long the certificates are valid: enough for any test run, short enough to be no risk. */
const VALIDITY_DAYS = "3";

/** REQUEST_CONFIG keeps openssl away from the system's openssl.cnf, whose defaults vary between distributions. */
const REQUEST_CONFIG = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
`;

const SERVER_EXTENSIONS = `basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
`;

let made: TestCertificates | undefined;

/**
 * testCertificates makes the test PKI with the openssl command line in a temp dir, once per process, and removes
 * the dir when the process exits. Keys are EC P-256: quick to make, and what current servers use.
 */
export function testCertificates(): TestCertificates {
  if (made !== undefined) return made;
  const dir = mkdtempSync(join(tmpdir(), "infermesh-tls-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const path = (name: string) => join(dir, name);
  writeFileSync(path("openssl.cnf"), REQUEST_CONFIG);
  writeFileSync(path("server.ext"), SERVER_EXTENSIONS);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc"];
  const selfSignedCa = (name: string, subject: string) =>
    openssl(
      "req",
      "-x509",
      "-config",
      "openssl.cnf",
      "-extensions",
      "ca",
      ...newKey,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
      "-days",
      VALIDITY_DAYS,
      "-subj",
      subject,
    );
  selfSignedCa("ca", "/CN=infermesh test CA");
  selfSignedCa("wrong-ca", "/CN=infermesh unrelated test CA");
  openssl("req", "-new", "-config", "openssl.cnf", ...newKey, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost");
  openssl(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-set_serial",
    `0x${randomBytes(8).toString("hex")}`,
    "-days",
    VALIDITY_DAYS,
    "-extfile",
    "server.ext",
    "-out",
    "server.pem",
  );
  made = Object.freeze({
    dir,
    caFile: path("ca.pem"),
    certFile: path("server.pem"),
    keyFile: path("server.key"),
    wrongCaFile: path("wrong-ca.pem"),
    ca: readFileSync(path("ca.pem")),
    cert: readFileSync(path("server.pem")),
    key: readFileSync(path("server.key")),
  });
  return made;
}

/**
 * cleartextStatus is what a plain-HTTP request to url gets: its status, or "refused" when the port hangs up on it, as
 * a port serving TLS does.
 */
export function cleartextStatus(url: string): Promise<number | "refused"> {
  return fetch(url).then(
    (response) => response.status,
    () => "refused" as const,
  );
}
