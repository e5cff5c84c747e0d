import type { Client } from "@connectrpc/connect";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { AccountService } from "../../gen/infermesh/v1/accounts_pb.js";
import { type Provider, ProviderState, Visibility } from "../../gen/infermesh/v1/registry_pb.js";
import { serviceTypeName } from "../shared/inference-catalog.js";
import { CONTROL_PLANE_TIMEOUT_MS } from "./account-routes.js";
import { PROVIDER_PAUSE_SCHEMA, PROVIDER_SHARING_SCHEMA, PROVIDERS_LIST_SCHEMA } from "./api-schemas.js";
import { controlPlaneRoute, fromControlPlane } from "./registry-errors.js";
import type { JsonBody } from "./request-validation.js";
import type { RoutingTable } from "./routing-table.js";

/** ProviderRoutesOptions are what the provider routes work with. */
export interface ProviderRoutesOptions {
  readonly accounts: Client<typeof AccountService>;
  readonly meshHeaders: Readonly<Record<string, string>>;
  /** table is this gateway's routing table: a change is applied to it before the answer, for the next call here. */
  readonly table: RoutingTable;
}

/** SharingBody is PUT /api/providers/{id}/sharing's body. */
interface SharingBody {
  readonly visibility: "private" | "users" | "public";
  readonly users?: readonly string[];
}

const VISIBILITIES = { private: Visibility.PRIVATE, users: Visibility.USERS, public: Visibility.PUBLIC } as const;

/**
 * providerRoutes serve an owner's view of their providers and the owner's switches: pause and resume (the kill
 * switch), and sharing. A provider that is not the caller's is a 404, as one that does not exist.
 */
export async function providerRoutes(app: FastifyInstance, options: ProviderRoutesOptions): Promise<void> {
  const call = { headers: options.meshHeaders, timeoutMs: CONTROL_PLANE_TIMEOUT_MS };
  const { accounts } = options;

  app.get(
    "/api/providers",
    { schema: PROVIDERS_LIST_SCHEMA },
    controlPlaneRoute(async (request) => {
      const { providers } = await accounts.listOwnProviders({ userId: request.principal.userId }, call);
      return { object: "list", data: providers.map(providerEntry) };
    }),
  );

  for (const [action, paused] of [
    ["pause", true],
    ["resume", false],
  ] as const) {
    app.post(
      `/api/providers/:id/${action}`,
      { schema: PROVIDER_PAUSE_SCHEMA },
      controlPlaneRoute(async (request: FastifyRequest<{ Params: { id: string } }>) => {
        const change = { userId: request.principal.userId, providerId: request.params.id, paused };
        return answer((await accounts.setProviderPaused(change, call)).provider);
      }),
    );
  }

  app.put(
    "/api/providers/:id/sharing",
    { schema: PROVIDER_SHARING_SCHEMA },
    controlPlaneRoute(async (request: FastifyRequest<{ Params: { id: string }; Body: JsonBody & { json: SharingBody } }>) => {
      const { visibility, users = [] } = request.body.json;
      const sharing = { visibility: VISIBILITIES[visibility], allowedUsers: visibility === "users" ? [...users] : [] };
      const change = { userId: request.principal.userId, providerId: request.params.id, sharing };
      return answer((await accounts.setProviderSharing(change, call)).provider);
    }),
  );

  /** answer applies the change to this gateway's table at once (the registry's watch brings it to the others). */
  function answer(provider: Provider | undefined) {
    if (!provider) throw fromControlPlane(new Error("the registry answered without the provider"));
    options.table.applyOwnerChange(provider);
    return providerEntry(provider);
  }
}

/** providerStatus is one word for a provider's state as its owner sees it. */
export function providerStatus(provider: Provider): "online" | "offline" | "paused" | "draining" {
  if (provider.paused) return "paused";
  if (!provider.online) return "offline";
  return provider.state === ProviderState.DRAINING ? "draining" : "online";
}

function providerEntry(provider: Provider) {
  const visibility = provider.sharing?.visibility;
  return {
    id: provider.id,
    name: provider.name,
    status: providerStatus(provider),
    online: provider.online,
    paused: provider.paused,
    last_seen: provider.lastHeartbeatTime ? Number(provider.lastHeartbeatTime.seconds) : null,
    sharing: {
      visibility: visibility === Visibility.PUBLIC ? "public" : visibility === Visibility.USERS ? "users" : "private",
      users: provider.sharing?.allowedUsers ?? [],
    },
    models: provider.models.map((model) => ({
      id: model.id,
      service_type: serviceTypeName(model.serviceType),
      supported_features: model.supportedFeatures,
      context_length: model.contextLength === 0 ? null : model.contextLength,
    })),
    load: {
      in_flight: provider.load?.inFlight ?? 0,
      max_concurrency: provider.load?.maxConcurrency ?? 0,
      queued: provider.load?.queued ?? 0,
    },
    version: provider.version,
  };
}
