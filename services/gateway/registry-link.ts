import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { AccountService } from "../../gen/infermesh/v1/accounts_pb.js";
import { type Principal, RegistryService } from "../../gen/infermesh/v1/registry_pb.js";
import type { Logger } from "../shared/logger.js";
import { RegistryReplicas } from "./registry-replicas.js";
import type { RoutingTable } from "./routing-table.js";

const WATCH_BACKOFF_START_MS = 100;
const WATCH_BACKOFF_MAX_MS = 5_000;
const AUTHENTICATE_TIMEOUT_MS = 2_000;
/**
 * WATCH_FIRST_ANSWER_TIMEOUT_MS bounds the wait for a new watch's snapshot, which a registry sends at once: a replica
 * whose host is gone may leave the connection attempt unanswered for minutes, before any keepalive PING can run.
 */
const WATCH_FIRST_ANSWER_TIMEOUT_MS = 5_000;

/** RegistryLink is the gateway's connection to the registry: the provider watch and key checks. */
export interface RegistryLink {
  /** ready resolves once the first snapshot is in the table. */
  readonly ready: Promise<void>;
  /** connected is true while the watch stream is up. */
  readonly connected: boolean;
  /** registryUrl is the base URL of the registry replica the link uses now. */
  readonly registryUrl: string;
  /** registry is the link's RegistryService client, for the gateway's other calls to the registry. */
  readonly registry: Client<typeof RegistryService>;
  /** accounts is the link's AccountService client. */
  readonly accounts: Client<typeof AccountService>;
  /** meshHeaders are the headers every call the gateway makes on its own authority carries. */
  readonly meshHeaders: Readonly<Record<string, string>>;
  authenticate(apiKey: string): Promise<Principal | undefined>;
  /** resolveSession resolves a session id to its user, undefined when it is not valid. */
  resolveSession(sessionId: string): Promise<Principal | undefined>;
  close(): void;
}

/** RegistryLinkOptions configures a RegistryLink. */
export interface RegistryLinkOptions {
  /** registries are the registry replicas' base URLs, "http://host:port". */
  readonly registries: readonly string[];
  readonly meshToken: string;
  readonly table: RoutingTable;
  readonly log: Logger;
  /** ca is what an https:// registry's certificate must chain to; Node's defaults when undefined. */
  readonly ca?: readonly string[] | undefined;
}

/**
 * REGISTRY_KEEPALIVE pings the registry's sessions often enough that a replica that froze (its sockets open, nothing
 * answering) is noticed within three seconds; the watch stream keeps the current replica's session open, and an open
 * session is pinged whenever it has been silent for the interval.
 */
const REGISTRY_KEEPALIVE = { pingIntervalMs: 1_000, pingTimeoutMs: 2_000 };

/**
 * connectRegistry keeps the routing table in step with the registry's WatchProviders stream. The link uses one
 * replica at a time: when the stream breaks it moves to the next replica at once, and only when every replica failed
 * in turn does it wait, with exponential backoff. Meanwhile the table keeps routing on what it knew; the next
 * snapshot replaces the table whole. The unary calls made on the link's clients follow it (RegistryReplicas).
 */
export function connectRegistry(options: RegistryLinkOptions): RegistryLink {
  const replicas = new RegistryReplicas({
    urls: options.registries,
    keepalive: REGISTRY_KEEPALIVE,
    ...(options.ca ? { tls: { ca: [...options.ca] } } : {}),
    log: options.log,
  });
  const client = createClient(RegistryService, replicas.transport);
  const accounts = createClient(AccountService, replicas.transport);
  const headers = { authorization: `Bearer ${options.meshToken}` };
  const controller = new AbortController();
  let connected = false;
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (markReady = resolve));

  void (async () => {
    let backoffMs = WATCH_BACKOFF_START_MS;
    let failures = 0;
    while (!controller.signal.aborted) {
      const index = replicas.current;
      const registry = replicas.url(index);
      // A watch follows the link: when a failed call moves the link to another replica, the watch moves with it.
      const moved = new AbortController();
      const stopFollowing = replicas.onMove(() => {
        if (replicas.current !== index) moved.abort();
      });
      const silent = new AbortController();
      const firstAnswer = setTimeout(() => silent.abort(), WATCH_FIRST_ANSWER_TIMEOUT_MS);
      const attempt = AbortSignal.any([controller.signal, moved.signal, silent.signal]);
      let reason: string | undefined;
      try {
        const watch = createClient(RegistryService, replicas.transportOf(index)).watchProviders(
          { includeOffline: true },
          { headers, signal: attempt },
        );
        for await (const response of watch) {
          clearTimeout(firstAnswer);
          options.table.apply(response);
          if (!connected) {
            connected = true;
            failures = 0;
            backoffMs = WATCH_BACKOFF_START_MS;
            options.log.info({ registry }, "registry watch connected");
            markReady();
          }
        }
        if (!attempt.aborted) reason = "the watch ended";
      } catch (error) {
        if (!attempt.aborted) {
          reason = error instanceof ConnectError ? error.rawMessage : String(error);
          if (error instanceof ConnectError && error.code === Code.Unauthenticated) {
            options.log.error("the registry refused the mesh token");
          }
        }
      } finally {
        clearTimeout(firstAnswer);
        stopFollowing();
      }
      connected = false;
      if (controller.signal.aborted) break;
      if (silent.signal.aborted) reason = `no snapshot within ${WATCH_FIRST_ANSWER_TIMEOUT_MS} ms`;
      if (reason === undefined) continue;
      // Only when a whole round of replicas failed does the watch wait before the next.
      const roundFailed = ++failures % replicas.count === 0;
      const retryInMs = roundFailed ? backoffMs : 0;
      options.log.warn({ registry, reason, retryInMs }, "registry watch failed; reconnecting");
      replicas.moveOff(index, reason);
      if (roundFailed) {
        await sleep(backoffMs, controller.signal);
        backoffMs = Math.min(backoffMs * 2, WATCH_BACKOFF_MAX_MS);
      }
    }
  })();

  return {
    ready,
    get connected() {
      return connected;
    },
    get registryUrl() {
      return replicas.url();
    },
    registry: client,
    accounts,
    meshHeaders: headers,
    authenticate: (apiKey) => refusedAsUndefined(client.authenticate({ apiKey }, { headers, timeoutMs: AUTHENTICATE_TIMEOUT_MS })),
    resolveSession: (sessionId) =>
      refusedAsUndefined(accounts.resolveSession({ sessionId }, { headers, timeoutMs: AUTHENTICATE_TIMEOUT_MS })),
    close: () => {
      controller.abort();
      replicas.close();
    },
  };
}

/** refusedAsUndefined reads a credential check: its principal, undefined when refused; other failures reject. */
async function refusedAsUndefined(check: Promise<{ principal?: Principal | undefined }>): Promise<Principal | undefined> {
  try {
    return (await check).principal;
  } catch (error) {
    if (error instanceof ConnectError && error.code === Code.Unauthenticated) return undefined;
    throw error;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
