import { create } from "@bufbuild/protobuf";
import { type HeartbeatRequest, type Sharing, SharingSchema, Visibility } from "../../gen/infermesh/v1/registry_pb.js";
import type { ProviderSettings, RegistryStore, SharingData } from "./store/registry-store.js";

/** DEFAULT_PROVIDER_SETTINGS are a provider's until its owner or its agent decides otherwise: running, private. */
export const DEFAULT_PROVIDER_SETTINGS: ProviderSettings = Object.freeze({ paused: false, sharing: undefined, sharingInstanceId: "" });

/**
 * OWNER_MARK prefixes the agent instance id stored with a sharing its owner set, so that the agent process running
 * then cannot undo it with its own flag, while the next process can.
 */
const OWNER_MARK = "owner:";

/** sharingMessage is a sharing policy as the contract carries it; no policy is private. */
export function sharingMessage(sharing: SharingData | undefined): Sharing {
  if (!sharing) return create(SharingSchema, { visibility: Visibility.PRIVATE });
  const visibility = { private: Visibility.PRIVATE, users: Visibility.USERS, public: Visibility.PUBLIC }[sharing.visibility];
  return create(SharingSchema, { visibility, allowedUsers: [...sharing.allowedUsers] });
}

/** sharingData reads a policy from the contract; undefined when it says nothing (UNSPECIFIED). */
export function sharingData(sharing: Sharing | undefined): SharingData | undefined {
  switch (sharing?.visibility) {
    case undefined:
    case Visibility.UNSPECIFIED:
      return undefined;
    case Visibility.PRIVATE:
      return { visibility: "private", allowedUsers: [] };
    case Visibility.PUBLIC:
      return { visibility: "public", allowedUsers: [] };
    case Visibility.USERS:
      return { visibility: "users", allowedUsers: [...new Set(sharing.allowedUsers)] };
  }
}

/**
 * withAgentSharing is the settings after a heartbeat: the sharing an agent was started with applies, unless its owner
 * set one while this very process was running (the API wins until the agent restarts with a flag of its own).
 * Returns undefined when nothing changes, so a steady heartbeat costs no write.
 */
export function withAgentSharing(settings: ProviderSettings, request: HeartbeatRequest): ProviderSettings | undefined {
  const wanted = sharingData(request.sharing);
  if (!wanted) return undefined;
  if (settings.sharingInstanceId === `${OWNER_MARK}${request.instanceId}`) return undefined;
  if (sameSharing(settings.sharing, wanted) && settings.sharingInstanceId === request.instanceId) return undefined;
  return { ...settings, sharing: wanted, sharingInstanceId: request.instanceId };
}

/** withOwnerSharing is the settings after the owner set a sharing while the agent process runningInstanceId runs. */
export function withOwnerSharing(settings: ProviderSettings, sharing: SharingData, runningInstanceId: string): ProviderSettings {
  return { ...settings, sharing, sharingInstanceId: `${OWNER_MARK}${runningInstanceId}` };
}

function sameSharing(a: SharingData | undefined, b: SharingData): boolean {
  return (
    a !== undefined &&
    a.visibility === b.visibility &&
    a.allowedUsers.length === b.allowedUsers.length &&
    a.allowedUsers.every((user, index) => b.allowedUsers[index] === user)
  );
}

/**
 * ProviderSettingsCache keeps owners' decisions in memory in front of the store: a heartbeat reads them without a
 * query, and a decision is written through. Replicas that share presence forget a provider's
 * entry whenever another replica changes the provider, so the cache does not go stale.
 */
export class ProviderSettingsCache {
  readonly #store: Pick<RegistryStore, "providerSettings" | "saveProviderSettings">;
  readonly #settings = new Map<string, ProviderSettings>();

  constructor(store: Pick<RegistryStore, "providerSettings" | "saveProviderSettings">) {
    this.#store = store;
  }

  /** get returns a provider's settings, the defaults when its owner never decided anything. */
  async get(providerId: string): Promise<ProviderSettings> {
    const known = this.#settings.get(providerId);
    if (known) return known;
    const stored = (await this.#store.providerSettings([providerId])).get(providerId) ?? DEFAULT_PROVIDER_SETTINGS;
    // A save that raced the read wins.
    const settings = this.#settings.get(providerId) ?? stored;
    this.#settings.set(providerId, settings);
    return settings;
  }

  /** forget drops what is remembered of a provider's settings: another replica changed them, and the store has them. */
  forget(providerId: string): void {
    this.#settings.delete(providerId);
  }

  /** save stores new settings and remembers them. */
  async save(providerId: string, settings: ProviderSettings): Promise<void> {
    this.#settings.set(providerId, settings);
    await this.#store.saveProviderSettings(providerId, settings);
  }
}
