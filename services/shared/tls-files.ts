import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import { ConfigError } from "./config-error.js";

/**
 * The mesh's listeners serve TLS from a PEM certificate chain and key named on the command line, and its clients
 * trust Node's root certificates, NODE_EXTRA_CA_CERTS and a CA file of their own. This module reads those files once
 * at startup, refusing what a TLS handshake would later fail on, and puts handshake failures into words.
 */

/** ServerTls is what a listener serves TLS with: a PEM certificate chain, leaf first, and its private key. */
export interface ServerTls {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** DEFAULT_TLS_SETTINGS name the flags a server's certificate and key come from, for messages. */
const DEFAULT_TLS_SETTINGS = { cert: "--tls-cert", key: "--tls-key" } as const;
/** DEFAULT_CA_SETTING names the flag a client's CA file comes from, for messages. */
const DEFAULT_CA_SETTING = "--ca-file";

const CERTIFICATE_PEM = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/;
const CERTIFICATE_PEMS = new RegExp(CERTIFICATE_PEM.source, "g");
const PRIVATE_KEY_PEM = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;
const ENCRYPTED_KEY_PEM = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/;

/** READ_ERRORS say in words why the common file errors happened. */
const READ_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: "no such file",
  EACCES: "permission denied",
  EISDIR: "it is a folder",
};

/**
 * readServerTls reads a PEM certificate chain and key; throws ConfigError(setting, message) naming the file and what
 * is wrong (missing, unreadable, not PEM, key does not match cert). Returns undefined when both are undefined; one
 * without the other is a ConfigError.
 */
export function readServerTls(
  certFile: string | undefined,
  keyFile: string | undefined,
  settings: { cert: string; key: string } = DEFAULT_TLS_SETTINGS,
): ServerTls | undefined {
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined)
    throw new ConfigError(settings.cert, `${settings.key} is given without ${settings.cert}; give both, or neither`);
  if (keyFile === undefined)
    throw new ConfigError(settings.key, `${settings.cert} is given without ${settings.key}; give both, or neither`);
  const cert = readSettingFile(settings.cert, certFile);
  const certText = cert.toString("utf8");
  if (!CERTIFICATE_PEM.test(certText) && PRIVATE_KEY_PEM.test(certText)) {
    throw new ConfigError(
      settings.cert,
      `${settings.cert} '${certFile}' holds a private key, not a certificate; are ${settings.cert} and ${settings.key} swapped?`,
    );
  }
  const leaf = new X509Certificate(parseCertificates(settings.cert, certFile, certText, "a PEM certificate chain")[0]);
  const key = readSettingFile(settings.key, keyFile);
  const privateKey = parsePrivateKey(settings.key, keyFile, key.toString("utf8"));
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new ConfigError(
      settings.key,
      `${settings.key} '${keyFile}' is not the private key of the certificate in ${settings.cert} '${certFile}' (${oneLine(leaf.subject)})`,
    );
  }
  return Object.freeze({ cert, key });
}

/**
 * trustedCas is the `ca` option for TLS clients: undefined (Node's defaults, which already include
 * NODE_EXTRA_CA_CERTS) when caFile is undefined; else Node's root certificates + NODE_EXTRA_CA_CERTS's file (if set
 * and readable) + caFile's certificates. ConfigError when caFile cannot be read or holds no PEM certificate.
 */
export function trustedCas(caFile: string | undefined, setting: string = DEFAULT_CA_SETTING): string[] | undefined {
  if (caFile === undefined) return undefined;
  const own = parseCertificates(setting, caFile, readSettingFile(setting, caFile).toString("utf8"), "PEM certificates");
  // A `ca` option replaces Node's whole trust store, so what Node would have trusted comes along. Node itself warns at
  // startup when NODE_EXTRA_CA_CERTS cannot be read; a second warning here would say nothing new.
  return [...rootCertificates, ...extraCaCertificates(), ...own];
}

/**
 * tlsFailureHint turns a TLS handshake error (e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE, SELF_SIGNED_CERT_IN_CHAIN,
 * DEPTH_ZERO_SELF_SIGNED_CERT, CERT_HAS_EXPIRED, ERR_TLS_CERT_ALTNAME_INVALID, EPROTO wrong version number) into one
 * clear sentence for humans, mentioning --ca-file where a CA is the likely fix; undefined for errors that are not TLS
 * errors.
 */
export function tlsFailureHint(error: unknown): string | undefined {
  const chain = errorChain(error);
  for (const link of chain) {
    const code = typeof link.code === "string" ? link.code : undefined;
    const hint = code === undefined ? undefined : hintForCode(code, link);
    if (hint !== undefined) return hint;
  }
  // Clients that flatten errors into text (grpc-js puts the last error into a status's details) keep only OpenSSL's
  // and Node's wording.
  for (const link of chain) {
    const match = MESSAGE_CODES.find(([pattern]) => pattern.test(link.message));
    if (match !== undefined) return hintForCode(match[1], link);
  }
  return undefined;
}

/** UNTRUSTED_ISSUER is the advice for every certificate that does not lead to a trusted CA. */
const UNTRUSTED_ISSUER = "give that CA's certificate with --ca-file FILE (or in NODE_EXTRA_CA_CERTS)";

/** hintForCode is the sentence for an error code of OpenSSL's certificate checks, Node's TLS or OpenSSL's record layer. */
function hintForCode(code: string, error: ChainLink): string | undefined {
  switch (code) {
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "UNABLE_TO_GET_ISSUER_CERT":
    case "CERT_UNTRUSTED":
      return `the server's TLS certificate is not signed by a certificate authority this process trusts (${code}): ${UNTRUSTED_ISSUER}`;
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
      return (
        `the server's TLS certificate was issued by a CA this process does not know (${code}): ${UNTRUSTED_ISSUER}, ` +
        "or have the server send its intermediate certificates with its own (the full chain in its certificate file)"
      );
    case "SELF_SIGNED_CERT_IN_CHAIN":
      return `the server's TLS certificate chain ends in a CA this process does not trust (${code}): ${UNTRUSTED_ISSUER}`;
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
      return `the server's TLS certificate is self-signed (${code}): give that certificate itself with --ca-file FILE, or give the server a certificate signed by a CA`;
    case "CERT_HAS_EXPIRED":
      return `the server's TLS certificate has expired (${code}): the server needs a renewed certificate, unless this machine's clock is wrong`;
    case "CERT_NOT_YET_VALID":
      return `the server's TLS certificate is not valid yet (${code}): check this machine's clock and the server's`;
    case "CERT_REVOKED":
      return `the server's TLS certificate has been revoked (${code}): the server needs a new certificate`;
    case "ERR_TLS_CERT_ALTNAME_INVALID": {
      const host = typeof error.host === "string" ? `'${error.host}'` : "the host in the URL";
      const names = typeof error.cert?.subjectaltname === "string" ? ` (it is for ${error.cert.subjectaltname})` : "";
      return `the server's TLS certificate is not for ${host}${names} (${code}): use a host name the certificate names, or give the server a certificate for this one`;
    }
    case "ERR_SSL_WRONG_VERSION_NUMBER":
    case "ERR_SSL_PACKET_LENGTH_TOO_LONG":
    case "ERR_SSL_HTTP_REQUEST":
      return `the server did not answer in TLS (${describeSsl(code, error)}): it serves plain HTTP, so use an http:// URL, or give the server --tls-cert and --tls-key`;
    case "EPROTO":
      return /wrong version number|packet length too long/.test(error.message)
        ? hintForCode("ERR_SSL_WRONG_VERSION_NUMBER", error)
        : `the TLS handshake failed (${oneLine(error.message)})`;
    case "ERR_SSL_UNSUPPORTED_PROTOCOL":
    case "ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION":
    case "ERR_SSL_NO_PROTOCOLS_AVAILABLE":
      return `the client and the server have no TLS version in common (${code}): both must allow TLS 1.2 or 1.3`;
    case "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA":
    case "ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE":
    case "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED":
      return `the server refused this client's TLS certificate, or asked for one it did not get (${code})`;
    case "ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE":
      return `the server refused the TLS handshake (${code}): the two have no cipher or certificate type in common`;
    case "ERR_TLS_HANDSHAKE_TIMEOUT":
      return `the TLS handshake did not finish in time (${code}): is the address a TLS server?`;
    default:
      return undefined;
  }
}

/** MESSAGE_CODES map the wording OpenSSL and Node give each failure to its code, for errors that kept only words. */
const MESSAGE_CODES: ReadonlyArray<readonly [RegExp, string]> = [
  [/unable to verify the first certificate/, "UNABLE_TO_VERIFY_LEAF_SIGNATURE"],
  [/unable to get local issuer certificate/, "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"],
  [/unable to get issuer certificate/, "UNABLE_TO_GET_ISSUER_CERT"],
  [/self[- ]signed certificate in certificate chain/, "SELF_SIGNED_CERT_IN_CHAIN"],
  [/self[- ]signed certificate/, "DEPTH_ZERO_SELF_SIGNED_CERT"],
  [/certificate has expired/, "CERT_HAS_EXPIRED"],
  [/certificate is not yet valid/, "CERT_NOT_YET_VALID"],
  [/does not match certificate's altnames/, "ERR_TLS_CERT_ALTNAME_INVALID"],
  [/wrong version number/, "ERR_SSL_WRONG_VERSION_NUMBER"],
  [/packet length too long/, "ERR_SSL_PACKET_LENGTH_TOO_LONG"],
];

/** ChainLink is an error of a cause chain, with the fields Node's TLS errors carry. */
interface ChainLink {
  readonly message: string;
  readonly code?: unknown;
  readonly reason?: unknown;
  readonly host?: unknown;
  readonly cert?: { readonly subjectaltname?: unknown } | undefined;
}

/** errorChain is an error, its causes and an AggregateError's errors (as undici's fetch gives them), each once. */
function errorChain(error: unknown): ChainLink[] {
  const seen = new Set<unknown>();
  const chain: ChainLink[] = [];
  const visit = (value: unknown) => {
    if (!(value instanceof Error) || seen.has(value)) return;
    seen.add(value);
    chain.push(value as ChainLink);
    visit(value.cause);
    if (value instanceof AggregateError) for (const inner of value.errors) visit(inner);
  };
  visit(error);
  return chain;
}

function describeSsl(code: string, error: ChainLink): string {
  return typeof error.reason === "string" ? `${code}, ${error.reason}` : code;
}

/** readSettingFile reads a file named by a setting, or throws a ConfigError saying why it could not. */
function readSettingFile(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === undefined ? String(error) : (READ_ERRORS[code] ?? code);
    throw new ConfigError(setting, `${setting} cannot read '${path}': ${reason}`);
  }
}

/** parseCertificates returns the PEM certificates of a file, leaf first, or throws a ConfigError when it holds none or a bad one. */
function parseCertificates(setting: string, path: string, text: string, expected: string): [string, ...string[]] {
  const blocks = text.match(CERTIFICATE_PEMS) ?? [];
  if (blocks.length === 0) {
    throw new ConfigError(setting, `${setting} expects ${expected} (-----BEGIN CERTIFICATE-----), found none in '${path}'`);
  }
  for (const [index, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (error) {
      const which = blocks.length === 1 ? "its certificate" : `certificate ${index + 1} of ${blocks.length}`;
      throw new ConfigError(setting, `${setting} '${path}': ${which} does not parse: ${oneLine(errorMessage(error))}`);
    }
  }
  return blocks as [string, ...string[]];
}

/** parsePrivateKey reads an unencrypted PEM private key, or throws a ConfigError saying what the file holds instead. */
function parsePrivateKey(setting: string, path: string, text: string): KeyObject {
  if (ENCRYPTED_KEY_PEM.test(text)) {
    throw new ConfigError(
      setting,
      `${setting} '${path}' holds a key encrypted with a passphrase; give it unencrypted (openssl pkey -in KEY -out PLAIN_KEY) and readable only by this service's user`,
    );
  }
  if (!PRIVATE_KEY_PEM.test(text)) {
    const swapped = CERTIFICATE_PEM.test(text) ? " (it holds a certificate: are the certificate and key files swapped?)" : "";
    throw new ConfigError(setting, `${setting} expects a PEM private key (-----BEGIN PRIVATE KEY-----), found none in '${path}'${swapped}`);
  }
  try {
    return createPrivateKey(text);
  } catch (error) {
    throw new ConfigError(setting, `${setting} '${path}': its private key does not parse: ${oneLine(errorMessage(error))}`);
  }
}

/** extraCaCertificates are the certificates of NODE_EXTRA_CA_CERTS's file; none when it is unset or unreadable. */
function extraCaCertificates(): string[] {
  const path = process.env["NODE_EXTRA_CA_CERTS"];
  if (path === undefined || path === "") return [];
  try {
    return readFileSync(path, "utf8").match(CERTIFICATE_PEMS) ?? [];
  } catch {
    return [];
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function oneLine(text: string | undefined): string {
  return (text ?? "").trim().replace(/\s*\n\s*/g, ", ");
}
