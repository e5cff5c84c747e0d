import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { AccountService } from "../../../gen/infermesh/v1/accounts_pb.js";
import { RegistryService } from "../../../gen/infermesh/v1/registry_pb.js";

/**
 * The mesh's clients of RegistryService (a gateway's provider watch and key checks and the heartbeats it relays, an
 * agent's heartbeats) use connect-node's gRPC transport: off the hot path, its typed promise and async-iterable
 * clients, deadlines and cancellation are worth more than the CPU its generality costs, and it speaks the same gRPC
 * as the grpc-js servers. Each caller holds one HTTP/2 session to the registry, pinged so that a registry that
 * vanished is noticed, and ended by close(): an idle session would keep the process alive.
 */

/** RegistryKeepalive is how often the session to the registry is pinged, and how long a ping may go unanswered. */
export interface RegistryKeepalive {
  readonly pingIntervalMs: number;
  readonly pingTimeoutMs: number;
}

/** RegistryClient is a RegistryService client, and an AccountService client, with the one session both run on. */
export interface RegistryClient {
  readonly client: Client<typeof RegistryService>;
  readonly accounts: Client<typeof AccountService>;
  /** close ends the session; calls still on it fail. */
  close(): void;
}

/** RegistryClientTls is how a client checks a registry's certificate when baseUrl is https://. */
export interface RegistryClientTls {
  /** ca is the certificate authorities to trust (trustedCas's answer); Node's defaults when undefined. */
  readonly ca?: string[] | undefined;
}

/** RegistryTransport is a gRPC transport to one registry, on one HTTP/2 session. */
export interface RegistryTransport {
  readonly transport: Transport;
  /** close ends the session; calls still on it fail. */
  close(): void;
}

/**
 * createRegistryTransport makes the transport a RegistryClient runs on: "http://host:port" for plaintext HTTP/2,
 * "https://host:port" for TLS, checked against tls.ca.
 */
export function createRegistryTransport(baseUrl: string, keepalive: RegistryKeepalive, tls: RegistryClientTls = {}): RegistryTransport {
  const sessions = new Http2SessionManager(baseUrl, keepalive, tls.ca === undefined ? undefined : { ca: tls.ca });
  return { transport: createGrpcTransport({ baseUrl, sessionManager: sessions }), close: () => sessions.abort() };
}

/**
 * createRegistryClient makes a RegistryService client of the registry at baseUrl: "http://host:port" for plaintext
 * HTTP/2, "https://host:port" for TLS, checked against tls.ca.
 */
export function createRegistryClient(baseUrl: string, keepalive: RegistryKeepalive, tls: RegistryClientTls = {}): RegistryClient {
  const { transport, close } = createRegistryTransport(baseUrl, keepalive, tls);
  return {
    client: createClient(RegistryService, transport),
    accounts: createClient(AccountService, transport),
    close,
  };
}
