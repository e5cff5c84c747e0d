/**
 * provider-watch is the registry bench's watcher: a WatchProviders stream with the mesh token, as a gateway holds
 * one, that times how long each expected change takes to arrive.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  RegistryService,
  WatchProvidersRequestSchema,
  type WatchProvidersResponse,
  WatchProvidersResponseSchema,
} from "../gen/infermesh/v1/registry_pb.js";
import type { ChangeObserver } from "./heartbeat-load.js";

/** POLL_MS is how often waitUntil checks its condition. */
const POLL_MS = 10;

const WATCH_PATH = `/${RegistryService.typeName}/${RegistryService.method.watchProviders.name}`;

/** WatchResults are the expectations set since the last takeResults, those met and how long each took. */
export interface WatchResults {
  readonly expected: number;
  readonly seen: number;
  readonly latenciesMs: number[];
  /** providerIds[i] is the provider whose change took latenciesMs[i], for a bench that tells senders apart. */
  readonly providerIds: string[];
}

/** ProviderWatch is an open WatchProviders stream that matches changes by provider id and load. */
export interface ProviderWatch extends ChangeObserver {
  /** changes counts every change received. */
  readonly changes: number;
  /** offline counts the changes that took a provider offline (expiries, deregistrations). */
  readonly offline: number;
  /** pending counts expectations not met yet. */
  readonly pending: number;
  takeResults(): WatchResults;
  /** waitUntil resolves when the condition holds or timeoutMs has passed; it rejects if the stream failed. */
  waitUntil(condition: (watch: ProviderWatch) => boolean, timeoutMs: number): Promise<void>;
  close(): void;
}

/** openWatch starts WatchProviders with the mesh token and resolves once the snapshot has arrived. */
export function openWatch(client: grpc.Client, meshToken: string, timeoutMs: number): Promise<ProviderWatch> {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${meshToken}`);
  const request = toBinary(WatchProvidersRequestSchema, create(WatchProvidersRequestSchema));
  const call = client.makeServerStreamRequest(
    WATCH_PATH,
    (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
    (bytes: Buffer): WatchProvidersResponse => fromBinary(WatchProvidersResponseSchema, bytes),
    request,
    metadata,
  );
  const pendingSentAtMs = new Map<string, number>();
  let latenciesMs: number[] = [];
  let providerIds: string[] = [];
  let expected = 0;
  let changes = 0;
  let offline = 0;
  let closed = false;
  let streamError: Error | undefined;

  const watch: ProviderWatch = {
    get changes() {
      return changes;
    },
    get offline() {
      return offline;
    },
    get pending() {
      return pendingSentAtMs.size;
    },
    expect(providerId, inFlight, sentAtMs) {
      expected++;
      pendingSentAtMs.set(changeKey(providerId, inFlight), sentAtMs);
    },
    forget(providerId, inFlight) {
      if (pendingSentAtMs.delete(changeKey(providerId, inFlight))) expected--;
    },
    takeResults() {
      const results = { expected, seen: latenciesMs.length, latenciesMs, providerIds };
      expected = 0;
      latenciesMs = [];
      providerIds = [];
      pendingSentAtMs.clear();
      return results;
    },
    async waitUntil(condition, timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      while (!condition(watch) && performance.now() < deadline) {
        if (streamError) throw streamError;
        await sleep(POLL_MS);
      }
    },
    close() {
      closed = true;
      call.cancel();
    },
  };

  return new Promise((resolveWatch, rejectWatch) => {
    const timer = setTimeout(() => {
      watch.close();
      rejectWatch(new Error(`WatchProviders sent no snapshot within ${timeoutMs} ms`));
    }, timeoutMs);
    call.on("data", (response: WatchProvidersResponse) => {
      const receivedMs = performance.now();
      const { event } = response;
      if (event.case === "snapshot") {
        clearTimeout(timer);
        return resolveWatch(watch);
      }
      if (event.case !== "change" || event.value.provider === undefined) return;
      changes++;
      const provider = event.value.provider;
      if (!provider.online) offline++;
      const key = changeKey(provider.id, provider.load?.inFlight ?? 0);
      const sentAtMs = pendingSentAtMs.get(key);
      if (sentAtMs === undefined) return;
      pendingSentAtMs.delete(key);
      latenciesMs.push(receivedMs - sentAtMs);
      providerIds.push(provider.id);
    });
    call.on("error", (error: grpc.ServiceError) => {
      if (closed && error.code === grpc.status.CANCELLED) return;
      clearTimeout(timer);
      streamError = new Error(`WatchProviders failed: ${grpc.status[error.code]}: ${error.details}`);
      rejectWatch(streamError);
    });
    call.on("end", () => {
      if (!closed) streamError ??= new Error("WatchProviders ended before the bench did");
    });
  });
}

function changeKey(providerId: string, inFlight: number): string {
  return `${providerId}\u0000${inFlight}`;
}
