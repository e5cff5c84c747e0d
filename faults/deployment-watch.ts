import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ChangeCause, RegistryService } from "../gen/infermesh/v1/registry_pb.js";

/** REWATCH_MS is the pause before a watch that failed (its replica killed or frozen) is opened again. */
const REWATCH_MS = 200;
/** SNAPSHOT_LIMIT_MS bounds the wait for a watch's snapshot: a frozen replica accepts the call and says nothing. */
const SNAPSHOT_LIMIT_MS = 3_000;

/** Departure is a provider a replica said went offline (a change, or missing from a snapshot of a watch reopened). */
export interface Departure {
  readonly replica: string;
  readonly providerId: string;
  readonly atMs: number;
  readonly cause: string;
}

/**
 * ReplicaWatch holds a WatchProviders stream on one registry replica, as a gateway does, and opens it again whenever
 * it fails: it knows which providers the replica lists online now, and every departure it heard of.
 */
export interface ReplicaWatch {
  readonly replica: string;
  /** online are the providers online in the replica's latest view, while the watch is connected; empty otherwise. */
  online(): ReadonlySet<string>;
  readonly departures: readonly Departure[];
  close(): void;
}

/** watchReplica watches replica (a registry's base URL) with the mesh token until closed; now is the suite's clock. */
export function watchReplica(name: string, baseUrl: string, meshToken: string, now: () => number): ReplicaWatch {
  const client = createClient(RegistryService, createGrpcTransport({ baseUrl }));
  const controller = new AbortController();
  const departures: Departure[] = [];
  let online = new Set<string>();
  let connected = false;
  const depart = (providerId: string, cause: string) => departures.push({ replica: name, providerId, atMs: now(), cause });
  const run = async () => {
    while (!controller.signal.aborted) {
      const attempt = new AbortController();
      const abort = () => attempt.abort();
      controller.signal.addEventListener("abort", abort);
      const silence = setTimeout(abort, SNAPSHOT_LIMIT_MS);
      try {
        const stream = client.watchProviders({}, { headers: { authorization: `Bearer ${meshToken}` }, signal: attempt.signal });
        for await (const message of stream) {
          const event = message.event;
          if (event.case === "snapshot") {
            clearTimeout(silence);
            const next = new Set(event.value.providers.filter((p) => p.online).map((p) => p.id));
            // A reopened watch that no longer lists a provider missed its departure: count it as one.
            if (connected || online.size > 0) for (const id of online) if (!next.has(id)) depart(id, "missing from a new snapshot");
            online = next;
            connected = true;
          } else if (event.case === "change" && event.value.provider) {
            const provider = event.value.provider;
            if (provider.online) online.add(provider.id);
            else if (online.delete(provider.id)) depart(provider.id, `${ChangeCause[event.value.cause] ?? event.value.cause}`);
          }
        }
      } catch {
        // The replica is gone or frozen: open the watch again, as a gateway would.
      } finally {
        clearTimeout(silence);
        controller.signal.removeEventListener("abort", abort);
      }
      connected = false;
      if (!controller.signal.aborted) await sleep(REWATCH_MS);
    }
  };
  void run();
  return {
    replica: name,
    online: () => (connected ? online : new Set()),
    departures,
    close: () => controller.abort(),
  };
}
