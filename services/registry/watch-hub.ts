import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { type Provider, ProviderSchema, type WatchProvidersResponseSchema } from "../../gen/infermesh/v1/registry_pb.js";
import type { ProviderChangeEvent } from "./provider-table.js";

type WatchEvent = MessageInitShape<typeof WatchProvidersResponseSchema>;

/**
 * WatchView decides what one watcher may see of a provider: the provider as it should be sent, or undefined when
 * the watcher may not see it at all. Gateways (mesh token) see everything; a user sees what they may route to.
 */
export type WatchView = (provider: Provider) => Provider | undefined;

/**
 * WatchHub fans provider changes out to watchers. Each watcher gets a snapshot, then changes. A watcher that reads
 * slowly never makes the registry buffer without bound: its pending changes are coalesced per provider, so it always
 * catches up to the latest state with at most one queued change per provider.
 */
export class WatchHub {
  readonly #watchers = new Set<Watcher>();
  #closed = false;

  /** size is the number of connected watchers. */
  get size(): number {
    return this.#watchers.size;
  }

  /** publish hands a change to every watcher. */
  publish(event: ProviderChangeEvent): void {
    for (const watcher of this.#watchers) watcher.offer(event);
  }

  /**
   * watch yields a snapshot of the online providers the view admits, then each change, until signal aborts or the
   * hub closes.
   */
  async *watch(online: readonly Provider[], view: WatchView, signal: AbortSignal): AsyncGenerator<WatchEvent> {
    if (this.#closed || signal.aborted) return;
    const watcher = new Watcher(view);
    this.#watchers.add(watcher);
    const stop = () => watcher.close();
    signal.addEventListener("abort", stop, { once: true });
    try {
      yield { event: { case: "snapshot", value: { providers: watcher.snapshot(online) } } };
      for (;;) {
        const change = await watcher.next();
        if (!change) return;
        yield { event: { case: "change", value: change } };
      }
    } finally {
      signal.removeEventListener("abort", stop);
      this.#watchers.delete(watcher);
    }
  }

  /** close ends every watch stream; later watch calls end at once. */
  close(): void {
    this.#closed = true;
    for (const watcher of this.#watchers) watcher.close();
  }
}

class Watcher {
  readonly #view: WatchView;
  /** #visible holds the ids this watcher believes online, so a provider that leaves its view is sent as offline. */
  readonly #visible = new Set<string>();
  readonly #pending = new Map<string, ProviderChangeEvent>();
  #wake: (() => void) | undefined;
  #closed = false;

  constructor(view: WatchView) {
    this.#view = view;
  }

  snapshot(online: readonly Provider[]): Provider[] {
    const providers: Provider[] = [];
    for (const provider of online) {
      const seen = this.#view(provider);
      if (!seen) continue;
      providers.push(seen);
      this.#visible.add(provider.id);
    }
    return providers;
  }

  offer(event: ProviderChangeEvent): void {
    if (this.#closed) return;
    const seen = this.#view(event.provider);
    const id = event.provider.id;
    let outgoing: ProviderChangeEvent;
    if (seen && event.provider.online) {
      this.#visible.add(id);
      outgoing = seen === event.provider ? event : { provider: seen, cause: event.cause };
    } else {
      if (!this.#visible.delete(id)) return;
      outgoing = { provider: seen ?? redacted(event.provider), cause: event.cause };
    }
    // Delete first so the coalesced change moves to the back of the queue, keeping per-watcher order causal.
    this.#pending.delete(id);
    this.#pending.set(id, outgoing);
    this.#wake?.();
  }

  async next(): Promise<ProviderChangeEvent | undefined> {
    while (!this.#closed) {
      const first = this.#pending.entries().next();
      if (!first.done) {
        const [id, change] = first.value;
        this.#pending.delete(id);
        return change;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
    return undefined;
  }

  close(): void {
    this.#closed = true;
    this.#wake?.();
  }
}

/** redacted keeps only a provider's identity, for telling a watcher that something it may no longer see is gone. */
function redacted(provider: Provider): Provider {
  return create(ProviderSchema, { id: provider.id, name: provider.name, online: false });
}
