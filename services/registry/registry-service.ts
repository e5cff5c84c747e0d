import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Metadata } from "@grpc/grpc-js";
import {
  type ApiKey,
  ApiKeySchema,
  type HeartbeatRequest,
  type Provider,
  ProviderSchema,
  type RegistryService,
} from "../../gen/infermesh/v1/registry_pb.js";
import type { GrpcImplementation } from "../shared/grpc/server.js";
import { relayedAgentKey } from "../shared/heartbeat-relay.js";
import { canSee } from "../shared/visibility.js";
import type { Caller, CallerAuth } from "./caller-auth.js";
import { unauthenticated } from "./caller-auth.js";
import { validateHeartbeat, validateProviderId } from "./heartbeat-validation.js";
import { type ProviderSettingsCache, withAgentSharing } from "./provider-settings.js";
import { olderLink, type ProviderTable } from "./provider-table.js";
import type { RegistryMetrics } from "./registry-metrics.js";
import type { ApiKeyRecord, Principal, RegistryStore } from "./store/registry-store.js";
import { InvalidUserNameError } from "./store/sqlite-store.js";
import type { WatchHub, WatchView } from "./watch-hub.js";

/** MAX_LABEL_LENGTH bounds an API key's label, which every key listing repeats. */
export const MAX_LABEL_LENGTH = 256;

/** RegistryServiceDeps are what the RegistryService handlers work on. */
export interface RegistryServiceDeps {
  readonly store: RegistryStore;
  readonly auth: CallerAuth;
  readonly table: ProviderTable;
  readonly hub: WatchHub;
  readonly metrics: RegistryMetrics;
  readonly settings: ProviderSettingsCache;
  readonly heartbeatIntervalMs: number;
  readonly ttlMs: number;
  /** onSteadyHeartbeat hears each accepted heartbeat that changed nothing watchers see (replicas share its deadline). */
  readonly onSteadyHeartbeat?: (providerId: string) => void;
}

/**
 * createRegistryService implements RegistryService. Every handler authenticates first; a user sees and changes
 * only what is theirs, and only mesh-token callers ever see an agent's token.
 */
export function createRegistryService(deps: RegistryServiceDeps): GrpcImplementation<typeof RegistryService.method> {
  const { store, auth, table, hub, metrics, settings } = deps;
  const heartbeatInterval = durationFromMs(deps.heartbeatIntervalMs);
  const ttl = durationFromMs(deps.ttlMs);

  // A provider id never changes hands once claimed, so its owner is remembered: a steady heartbeat costs no write.
  const owners = new Map<string, string>();
  async function ownedBy(principal: Principal, providerId: string): Promise<void> {
    let owner = owners.get(providerId);
    if (owner === undefined) {
      owner = await store.claimProvider(providerId, principal.userId);
      owners.set(providerId, owner);
    }
    if (owner !== principal.userId) throw unauthenticated(`provider '${providerId}' belongs to another user`);
  }

  return {
    async heartbeat(request, { metadata }) {
      try {
        const principal = await heartbeatOwner(await auth.authenticate(metadata), metadata, request);
        validateHeartbeat(request);
        await ownedBy(principal, request.providerId);
        refuseOlderLink(table.get(request.providerId), request);
        let decided = await settings.get(request.providerId);
        const started = withAgentSharing(decided, request);
        if (started) {
          await settings.save(request.providerId, started);
          decided = started;
        }
        const { provider, changed } = table.heartbeat(principal, request, decided);
        if (!changed) deps.onSteadyHeartbeat?.(request.providerId);
        metrics.heartbeats.inc({ outcome: "accepted" });
        return changed ? { heartbeatInterval, ttl, provider } : { heartbeatInterval, ttl };
      } catch (error) {
        metrics.heartbeats.inc({ outcome: "rejected" });
        throw error;
      }
    },

    async deregister(request, { metadata }) {
      const caller = await auth.authenticate(metadata);
      validateProviderId(request.providerId);
      if (caller.kind === "user") await ownedBy(caller.principal, request.providerId);
      return { wasOnline: table.deregister(request.providerId, request.linkId) };
    },

    async listProviders(request, { metadata }) {
      const caller = await auth.authenticate(metadata);
      const view = await providerView(caller, request.visibleToUserName);
      const providers: Provider[] = [];
      for (const provider of table.providers(request.includeOffline)) {
        const seen = view(provider);
        if (seen) providers.push(seen);
      }
      return { providers };
    },

    async *watchProviders(request, { metadata, signal }) {
      const caller = await auth.authenticate(metadata);
      // Only the mesh learns of offline providers: it tells their owners when their provider went away.
      const includeOffline = request.includeOffline && caller.kind === "mesh";
      yield* hub.watch(table.providers(includeOffline), await providerView(caller, ""), signal);
    },

    async authenticate(request, { metadata }) {
      meshOnly(await auth.authenticate(metadata), "Authenticate");
      const principal = await store.authenticate(request.apiKey);
      if (!principal) throw unauthenticated("invalid or revoked API key");
      return { principal };
    },

    async createApiKey(request, { metadata }) {
      const caller = await auth.authenticate(metadata);
      if (caller.kind === "user" && caller.principal.userName !== request.userName) {
        throw new ConnectError("an API key may only create keys for its own user", Code.PermissionDenied);
      }
      if (request.label.length > MAX_LABEL_LENGTH) {
        throw new ConnectError(`invalid label: longer than ${MAX_LABEL_LENGTH} characters`, Code.InvalidArgument);
      }
      try {
        const created = await store.createApiKey(request.userName, request.label);
        return { apiKey: created.apiKey, key: apiKeyMessage(created.record) };
      } catch (error) {
        if (error instanceof InvalidUserNameError) throw new ConnectError(error.message, Code.InvalidArgument);
        throw error;
      }
    },

    async listApiKeys(request, { metadata }) {
      const caller = await auth.authenticate(metadata);
      const userName = caller.kind === "user" ? caller.principal.userName : request.userName;
      const records = await store.listApiKeys({
        includeRevoked: request.includeRevoked,
        ...(userName ? { userName } : {}),
      });
      return { keys: records.map(apiKeyMessage) };
    },

    async revokeApiKey(request, { metadata }) {
      const caller = await auth.authenticate(metadata);
      const owner = caller.kind === "user" ? caller.principal.userName : request.userName;
      if (owner) {
        const own = await store.listApiKeys({ userName: owner, includeRevoked: true });
        if (!own.some((key) => key.id === request.keyId)) throw notFoundKey(request.keyId);
      }
      const record = await store.revokeApiKey(request.keyId);
      if (!record) throw notFoundKey(request.keyId);
      return { key: apiKeyMessage(record) };
    },
  };

  /**
   * heartbeatOwner is whose provider a heartbeat reports: the caller's own, or, for a gateway relaying an attached
   * agent's heartbeat, the agent key's owner. Only such a relay may say where the agent is attached: a user who could
   * name an endpoint could make gateways dial an address of their choosing.
   */
  async function heartbeatOwner(caller: Caller, metadata: Metadata, request: HeartbeatRequest): Promise<Principal> {
    if (caller.kind === "user") {
      if (request.endpoint !== "" || request.gatewayId !== "" || request.linkId !== "") {
        throw new ConnectError(
          "endpoint, gateway_id and link_id are set by the gateway an agent attaches to, never by the agent (run `infermesh agent --mesh URL`)",
          Code.InvalidArgument,
        );
      }
      return caller.principal;
    }
    const agentKey = relayedAgentKey(metadata);
    if (agentKey === undefined) throw unauthenticated("Heartbeat takes the provider owner's API key");
    const principal = await store.authenticate(agentKey);
    if (!principal) throw unauthenticated("invalid or revoked API key");
    return principal;
  }

  async function providerView(caller: Caller, visibleToUserName: string): Promise<WatchView> {
    if (caller.kind === "user") {
      const user = caller.principal;
      return (provider) => (canSee(user, provider) ? withoutAttachment(provider) : undefined);
    }
    if (!visibleToUserName) return (provider) => provider;
    const user = await store.findUser(visibleToUserName);
    if (!user) return () => undefined;
    const viewer = { userId: user.id, userName: user.name };
    return (provider) => (canSee(viewer, provider) ? provider : undefined);
  }
}

/**
 * refuseOlderLink refuses a heartbeat that an agent process sent on a link older than the one the registry holds for
 * it: a gateway that was stalled reads it late, after the agent attached again elsewhere, and must not move the
 * provider back to a link the agent has left.
 */
function refuseOlderLink(held: Provider | undefined, request: HeartbeatRequest): void {
  if (!held?.online || request.linkId === "" || !olderLink(request, held)) return;
  throw new ConnectError(
    `a heartbeat from link ${request.linkSequence} of this agent, which has attached again since (link ${held.linkSequence})`,
    Code.FailedPrecondition,
  );
}

function meshOnly(caller: Caller, method: string): void {
  if (caller.kind !== "mesh") throw unauthenticated(`${method} takes the mesh token`);
}

/** withoutAttachment hides from users where an agent is attached: gateways' internal addresses are the mesh's business. */
function withoutAttachment(provider: Provider): Provider {
  return provider.endpoint === "" && provider.linkId === "" ? provider : create(ProviderSchema, { ...provider, endpoint: "", linkId: "" });
}

function notFoundKey(keyId: string): ConnectError {
  return new ConnectError(`no API key with id '${keyId}'`, Code.NotFound);
}

function apiKeyMessage(record: ApiKeyRecord): ApiKey {
  return create(ApiKeySchema, {
    id: record.id,
    userId: record.userId,
    userName: record.userName,
    label: record.label,
    createTime: timestampFromMs(record.createdAtMs),
    ...(record.revokedAtMs === undefined ? {} : { revokeTime: timestampFromMs(record.revokedAtMs) }),
    ...(record.lastUsedAtMs === undefined ? {} : { lastUseTime: timestampFromMs(record.lastUsedAtMs) }),
  });
}
