import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { AccountService } from "../../gen/infermesh/v1/accounts_pb.js";
import { RegistryService } from "../../gen/infermesh/v1/registry_pb.js";
import { createRegistryTransport, type RegistryClientTls, type RegistryKeepalive } from "../shared/grpc/registry-client.js";
import type { Logger } from "../shared/logger.js";
import { causedBy, neverConnected } from "../shared/socket-errors.js";

/**
 * RETRYABLE_METHODS are the registry's unary methods that may run twice with the effect of once: reads, checks, and
 * writes that set a value or are keyed (a heartbeat refreshes a record, RecordUsage skips record ids it already
 * stored). A call of any of them that fails because its replica is gone goes again on the next replica.
 */
const RETRYABLE_METHODS: ReadonlySet<DescMethod> = new Set<DescMethod>([
  RegistryService.method.heartbeat,
  RegistryService.method.deregister,
  RegistryService.method.listProviders,
  RegistryService.method.authenticate,
  RegistryService.method.listApiKeys,
  AccountService.method.listUsers,
  AccountService.method.checkPassword,
  AccountService.method.resolveSession,
  AccountService.method.recordUsage,
  AccountService.method.queryUsage,
  AccountService.method.listOwnProviders,
  AccountService.method.setProviderPaused,
  AccountService.method.setProviderSharing,
]);

/**
 * CONNECTION_LOST are the socket and HTTP/2 session errors of a connection the replica reset or closed under a call:
 * it is going away (a replica that stops cuts its sessions).
 */
const CONNECTION_LOST = new Set(["ECONNRESET", "EPIPE", "ERR_HTTP2_SESSION_ERROR", "ERR_HTTP2_GOAWAY_SESSION"]);

/** RegistryReplicasOptions configure RegistryReplicas. */
export interface RegistryReplicasOptions {
  /** urls are the replicas' base URLs, at least one; the first is current at the start. */
  readonly urls: readonly string[];
  readonly keepalive: RegistryKeepalive;
  readonly tls?: RegistryClientTls;
  readonly log: Logger;
}

/**
 * RegistryReplicas is a gateway's view of the registry's replicas: one of them is current and takes every call, on
 * its own HTTP/2 session; when it fails the link moves to the next, round robin. Its transport sends each unary call
 * to the current replica and moves the link when the call says that replica is gone or frozen, so clients made on it
 * follow the link without knowing of the replicas.
 */
export class RegistryReplicas {
  readonly #options: RegistryReplicasOptions;
  readonly #transports: { readonly transport: Transport; close(): void }[];
  readonly #onMove = new Set<() => void>();
  #current = 0;

  constructor(options: RegistryReplicasOptions) {
    if (options.urls.length === 0) throw new Error("RegistryReplicas needs at least one registry URL");
    this.#options = options;
    this.#transports = options.urls.map((url) => createRegistryTransport(url, options.keepalive, options.tls));
  }

  /** count is how many replicas there are. */
  get count(): number {
    return this.#options.urls.length;
  }

  /** current is the index of the replica that takes calls now. */
  get current(): number {
    return this.#current;
  }

  /** url is a replica's base URL: the current one's by default. */
  url(index = this.#current): string {
    return this.#options.urls[index] ?? "";
  }

  /** transportOf is the transport to one replica, for a call that must stay on it (the provider watch). */
  transportOf(index: number): Transport {
    const replica = this.#transports[index];
    if (!replica) throw new RangeError(`no registry replica ${index}`);
    return replica.transport;
  }

  /**
   * moveOff makes the next replica current when the given one, which failed, still is: calls that fail together
   * move the link once. It tells whether the link moved.
   */
  moveOff(index: number, reason: string): boolean {
    if (index !== this.#current || this.count === 1) return false;
    this.#current = (index + 1) % this.count;
    this.#options.log.warn({ from: this.url(index), to: this.url(), reason }, `registry replica unreachable; moving to ${this.url()}`);
    for (const listener of this.#onMove) listener();
    return true;
  }

  /** onMove calls listener each time the link moves to another replica; the returned function stops it. */
  onMove(listener: () => void): () => void {
    this.#onMove.add(listener);
    return () => this.#onMove.delete(listener);
  }

  /**
   * transport sends unary calls to the current replica. A call that fails UNAVAILABLE moves the link on, and goes
   * once more on the new replica when it is one of RETRYABLE_METHODS or never reached a server; a call that fails
   * DEADLINE_EXCEEDED (a frozen replica answers nothing) moves the link on but is not sent again: it may have been
   * done. Streams go to the current replica and their failures are the caller's to read.
   */
  readonly transport: Transport = {
    unary: (method, signal, timeoutMs, header, input, contextValues) => {
      const startedAt = Date.now();
      const send = (index: number, timeout: number | undefined) =>
        this.transportOf(index).unary(method, signal, timeout, header, input, contextValues);
      const first = this.#current;
      return send(first, timeoutMs).catch((error: unknown) => {
        // A deadline that had passed before the call went out says nothing of the replica.
        const failure = timeoutMs !== undefined && timeoutMs <= 0 ? undefined : replicaFailure(error, signal);
        if (failure === undefined || !this.#moveOffOrFollow(first, failure.reason)) throw error;
        if (failure.code !== Code.Unavailable || !(RETRYABLE_METHODS.has(method) || neverConnected(error))) throw error;
        const left = timeoutMs === undefined ? undefined : timeoutMs - (Date.now() - startedAt);
        if (left !== undefined && left <= 0) throw error;
        return send(this.#current, left);
      });
    },
    stream: (method, signal, timeoutMs, header, input, contextValues) =>
      this.transportOf(this.#current).stream(method, signal, timeoutMs, header, input, contextValues),
  };

  /** moveOffOrFollow moves the link off a failed replica, and tells whether the link is now on another one. */
  #moveOffOrFollow(index: number, reason: string): boolean {
    this.moveOff(index, reason);
    return this.#current !== index;
  }

  /** close ends every replica's session. */
  close(): void {
    this.#onMove.clear();
    for (const replica of this.#transports) replica.close();
  }
}

/**
 * replicaFailure reads a failed call: UNAVAILABLE (refused, a keepalive PING unanswered), a connection the replica
 * reset or closed under the call, or DEADLINE_EXCEEDED say the replica is gone or frozen; a call its caller cancelled,
 * or any answer the replica gave, says nothing of it. A call cut by a lost connection counts as UNAVAILABLE.
 */
function replicaFailure(error: unknown, signal: AbortSignal | undefined): { code: Code; reason: string } | undefined {
  if (signal?.aborted || !(error instanceof ConnectError)) return undefined;
  if (error.code === Code.Unavailable || error.code === Code.DeadlineExceeded) return { code: error.code, reason: error.rawMessage };
  if (causedBy(error, CONNECTION_LOST)) return { code: Code.Unavailable, reason: error.rawMessage };
  return undefined;
}
