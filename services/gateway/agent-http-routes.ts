import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { HeartbeatRequestSchema, Principal, Provider, RegistryService } from "../../gen/infermesh/v1/registry_pb.js";
import { bearerToken } from "../shared/bearer.js";
import { providerIdFor } from "../shared/provider-id.js";
import { type AgentReport, parseAgentReport } from "./agent-report.js";
import {
  echoed,
  GatewayError,
  internalError,
  invalidApiKey,
  invalidRequest,
  notFound,
  permissionDenied,
  unavailable,
  upstreamFailed,
} from "./gateway-errors.js";
import type { GatewayMetrics } from "./gateway-metrics.js";
import { AGENT_HEARTBEAT_ALIAS_SCHEMA, AGENT_HEARTBEAT_SCHEMA } from "./openai-schemas.js";
import type { JsonBody } from "./request-validation.js";

/** AGENT_HEARTBEAT_PATH is inference.club's heartbeat endpoint; a heartbeat with models registers, as the gRPC one does. */
export const AGENT_HEARTBEAT_PATH = "/api/inference/agent/heartbeat/";
/** AGENT_REGISTER_PATH is inference.club's register endpoint: a heartbeat that registers even without models. */
export const AGENT_REGISTER_PATH = "/api/inference/agent/register/";
/** DEFAULT_REGISTRY_CALL_TIMEOUT_MS bounds one relayed registry call. */
export const DEFAULT_REGISTRY_CALL_TIMEOUT_MS = 5_000;

/** AgentHttpRoutesOptions are what the agent endpoints work with. */
export interface AgentHttpRoutesOptions {
  /** registry is the gateway's RegistryService client. */
  readonly registry: Client<typeof RegistryService>;
  /** authenticate resolves an API key to its user (the gateway's cached check), or undefined for a bad key. */
  readonly authenticate: (apiKey: string) => Promise<Principal | undefined>;
  readonly metrics: GatewayMetrics;
  readonly timeoutMs?: number;
}

/**
 * agentHttpRoutes serves inference.club's HTTP agent endpoints for agents that cannot speak gRPC. Each call is relayed to
 * the registry's Heartbeat RPC with the agent's own API key, so the registry authenticates the user and applies
 * ownership exactly as for a gRPC heartbeat, and the provider lands in the same state (ListProviders,
 * WatchProviders). Such an agent holds no link to the mesh, so it is listed but never routed to: the mesh dials no
 * address a user names. A heartbeat without models refreshes the provider already registered under
 * that name, as inference.club's `{name}` heartbeat does, and is a 404 when there is none.
 */
export async function agentHttpRoutes(app: FastifyInstance, options: AgentHttpRoutesOptions): Promise<void> {
  const { registry } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_REGISTRY_CALL_TIMEOUT_MS;

  const handle = (registers: boolean) => async (request: FastifyRequest<{ Body: JsonBody }>, reply: FastifyReply) => {
    try {
      const answer = await relay(request, registers);
      options.metrics.agentHeartbeats.inc({ outcome: "accepted" });
      return reply.code(200).send(answer);
    } catch (error) {
      const status = error instanceof GatewayError ? error.status : 500;
      options.metrics.agentHeartbeats.inc({ outcome: status < 500 ? "rejected" : "failed" });
      throw error;
    }
  };

  async function relay(request: FastifyRequest<{ Body: JsonBody }>, registers: boolean): Promise<object> {
    const header = request.headers.authorization;
    const apiKey = bearerToken(header);
    if (!apiKey) throw invalidApiKey(typeof header === "string" && header.length > 0);
    const principal = await options.authenticate(apiKey);
    if (!principal) throw invalidApiKey(true);
    const report = parseAgentReport(request.body.json);
    const providerId = report.id ?? providerIdFor(principal.userId, report.name);
    const headers = { authorization: `Bearer ${apiKey}` };
    const heartbeat =
      report.models === undefined && !registers
        ? refresh(report, providerId, await registered(principal, providerId, report.name, headers))
        : fullReport(report, providerId);
    try {
      const answer = await registry.heartbeat(heartbeat, { headers, timeoutMs });
      return {
        status: "ok",
        provider_id: providerId,
        name: heartbeat.name,
        routable: false,
        heartbeat_interval_seconds: seconds(answer.heartbeatInterval),
        ttl_seconds: seconds(answer.ttl),
      };
    } catch (error) {
      throw fromRegistry(error);
    }
  }

  /** registered finds the caller's provider of that id, as inference.club looks the agent up by name. */
  async function registered(principal: Principal, providerId: string, name: string, headers: Record<string, string>): Promise<Provider> {
    let providers: Provider[];
    try {
      providers = (await registry.listProviders({ includeOffline: true }, { headers, timeoutMs })).providers;
    } catch (error) {
      throw fromRegistry(error);
    }
    const provider = providers.find((p) => p.id === providerId && p.ownerUserId === principal.userId);
    if (!provider) {
      throw notFound(`no provider named '${echoed(name)}' for this user — the agent must register before sending heartbeats`, {
        code: "provider_not_found",
        param: "name",
      });
    }
    return provider;
  }

  for (const [path, registers] of [
    [AGENT_HEARTBEAT_PATH, false],
    [AGENT_REGISTER_PATH, true],
  ] as const) {
    app.post(path, { schema: AGENT_HEARTBEAT_SCHEMA }, handle(registers));
    app.post(path.slice(0, -1), { schema: AGENT_HEARTBEAT_ALIAS_SCHEMA }, handle(registers));
  }
}

type HeartbeatInit = MessageInitShape<typeof HeartbeatRequestSchema> & { name: string };

/** fullReport is a heartbeat carrying everything the agent reported; what it leaves out takes the defaults. */
function fullReport(report: AgentReport, providerId: string): HeartbeatInit {
  return {
    providerId,
    name: report.name,
    models: report.models ?? [],
    version: report.version ?? "",
    ...(report.state === undefined ? {} : { state: report.state }),
    ...(report.load === undefined ? {} : { load: report.load }),
    ...(report.sharing === undefined ? {} : { sharing: report.sharing }),
  };
}

/** refresh repeats the provider's registration, with whatever the bare heartbeat updates (load, state, version). */
function refresh(report: AgentReport, providerId: string, provider: Provider): HeartbeatInit {
  return {
    providerId,
    name: provider.name,
    models: provider.models,
    version: report.version ?? provider.version,
    state: report.state ?? provider.state,
    ...((report.load ?? provider.load) ? { load: report.load ?? provider.load } : {}),
    ...((report.sharing ?? provider.sharing) ? { sharing: report.sharing ?? provider.sharing } : {}),
  };
}

/** fromRegistry maps a registry failure to the HTTP answer an agent should act on. */
function fromRegistry(error: unknown): GatewayError {
  if (!(error instanceof ConnectError)) return internalError("The gateway failed to relay the heartbeat.", error);
  switch (error.code) {
    case Code.InvalidArgument:
      return invalidRequest(error.rawMessage, { code: "invalid_heartbeat", cause: error });
    case Code.Unauthenticated:
    case Code.PermissionDenied:
      // The key itself was checked first: what the registry refuses now is the provider, which belongs to someone else.
      return permissionDenied(error.rawMessage, { code: "provider_owned_by_another_user", cause: error });
    case Code.Unavailable:
    case Code.DeadlineExceeded:
    case Code.Canceled:
      return unavailable("cannot reach the registry; retry the heartbeat", error);
    default:
      return upstreamFailed(`the registry failed the heartbeat: ${error.rawMessage}`, error);
  }
}

function seconds(duration: Duration | undefined): number {
  return duration ? Number(duration.seconds) + duration.nanos / 1e9 : 0;
}
