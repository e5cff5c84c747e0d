import { type Client, Code, ConnectError } from "@connectrpc/connect";
import type { AccountService } from "../../gen/infermesh/v1/accounts_pb.js";
import type { Principal, RegistryService } from "../../gen/infermesh/v1/registry_pb.js";
import { createRegistryClient } from "../shared/grpc/registry-client.js";
import type { Logger } from "../shared/logger.js";
import type { RoutingTable } from "./routing-table.js";

const WATCH_BACKOFF_START_MS = 100;
const WATCH_BACKOFF_MAX_MS = 5_000;
const AUTHENTICATE_TIMEOUT_MS = 2_000;

/** RegistryLink is the gateway's connection to the registry: the provider watch and key checks. */
export interface RegistryLink {
  /** ready resolves once the first snapshot is in the table. */
  readonly ready: Promise<void>;
  /** connected is true while the watch stream is up. */
  readonly connected: boolean;
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
 * connectRegistry keeps the routing table in step with the registry's WatchProviders stream. When the stream
 * breaks, the table keeps routing on what it knew and the watch reconnects with exponential backoff; the next
 * snapshot replaces the table whole.
 */
export function connectRegistry(options: RegistryLinkOptions): RegistryLink {
  const { client, accounts, close } = createRegistryClient(
    options.registries[0] ?? "",
    { pingIntervalMs: 10_000, pingTimeoutMs: 5_000 },
    options.ca ? { ca: [...options.ca] } : {},
  );
  const headers = { authorization: `Bearer ${options.meshToken}` };
  const controller = new AbortController();
  let connected = false;
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (markReady = resolve));

  void (async () => {
    let backoffMs = WATCH_BACKOFF_START_MS;
    while (!controller.signal.aborted) {
      try {
        const watch = client.watchProviders({ includeOffline: true }, { headers, signal: controller.signal });
        for await (const response of watch) {
          options.table.apply(response);
          if (!connected) {
            connected = true;
            backoffMs = WATCH_BACKOFF_START_MS;
            options.log.info({ registry: options.registries[0] }, "registry watch connected");
            markReady();
          }
        }
        if (!controller.signal.aborted) options.log.warn("registry watch ended; reconnecting");
      } catch (error) {
        if (controller.signal.aborted) break;
        const reason = error instanceof ConnectError ? error.rawMessage : String(error);
        options.log.warn({ registry: options.registries[0], reason, retryInMs: backoffMs }, "registry watch failed");
        if (error instanceof ConnectError && error.code === Code.Unauthenticated) {
          options.log.error("the registry refused the mesh token");
        }
      }
      connected = false;
      await sleep(backoffMs, controller.signal);
      backoffMs = Math.min(backoffMs * 2, WATCH_BACKOFF_MAX_MS);
    }
  })();

  return {
    ready,
    get connected() {
      return connected;
    },
    registry: client,
    accounts,
    meshHeaders: headers,
    authenticate: (apiKey) => refusedAsUndefined(client.authenticate({ apiKey }, { headers, timeoutMs: AUTHENTICATE_TIMEOUT_MS })),
    resolveSession: (sessionId) =>
      refusedAsUndefined(accounts.resolveSession({ sessionId }, { headers, timeoutMs: AUTHENTICATE_TIMEOUT_MS })),
    close: () => {
      controller.abort();
      close();
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
