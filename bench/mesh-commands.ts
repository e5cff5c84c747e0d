/**
 * mesh-commands writes the command lines of the mesh's services, as the bench and the fault suite run them: the
 * simulator, the registry and the gateway, each on a loopback port of its own, and agents, which open none and dial
 * the gateway. Secrets (the mesh token, the API key) go in env, which `ps` does not show.
 */

/** ServiceCommand is one `infermesh` service: its arguments, its secrets and the log line that says it serves. */
export interface ServiceCommand {
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** readyMsg is the `msg` of the JSON log line (at level info) the service writes once it serves. */
  readonly readyMsg: string;
}

/** simCommand runs the model-server simulator serving model. */
export function simCommand(options: {
  readonly port: number;
  readonly model: string;
  readonly extraArgs?: readonly string[];
}): ServiceCommand {
  return {
    args: ["sim", "--listen", `127.0.0.1:${options.port}`, "--model", options.model, ...(options.extraArgs ?? [])],
    env: {},
    readyMsg: "simulator ready",
  };
}

/** registryCommand runs the registry on its database file; heartbeat and TTL are the registry's defaults unless given. */
export function registryCommand(options: {
  readonly port: number;
  readonly dbPath: string;
  readonly meshToken: string;
  readonly logLevel: string;
  readonly heartbeatIntervalMs?: number;
  readonly ttlMs?: number;
}): ServiceCommand {
  const { heartbeatIntervalMs, ttlMs } = options;
  return {
    args: [
      "registry",
      "--listen",
      `127.0.0.1:${options.port}`,
      "--db",
      options.dbPath,
      ...(heartbeatIntervalMs === undefined ? [] : ["--heartbeat-interval-ms", String(heartbeatIntervalMs)]),
      ...(ttlMs === undefined ? [] : ["--ttl-ms", String(ttlMs)]),
      "--log-level",
      options.logLevel,
    ],
    env: { INFERMESH_MESH_TOKEN: options.meshToken },
    readyMsg: "registry ready",
  };
}

/** gatewayCommand runs the gateway on an HTTP port (its agents dial it there too), its gRPC port on any free one unless given. */
export function gatewayCommand(options: {
  readonly port: number;
  /** grpcPort is the internal gRPC port (InferenceService, and AgentService for peer gateways); 0 for any free one. */
  readonly grpcPort?: number;
  readonly registryUrl: string;
  readonly meshToken: string;
  readonly logLevel: string;
  /** metricsPort serves the gateway's metrics (the operator's port), when set. */
  readonly metricsPort?: number;
  readonly extraArgs?: readonly string[];
}): ServiceCommand {
  return {
    args: [
      "gateway",
      ...(options.metricsPort === undefined ? [] : ["--metrics-listen", `127.0.0.1:${options.metricsPort}`]),
      "--listen",
      `127.0.0.1:${options.port}`,
      "--grpc-listen",
      `127.0.0.1:${options.grpcPort ?? 0}`,
      "--registry",
      options.registryUrl,
      "--log-level",
      options.logLevel,
      ...(options.extraArgs ?? []),
    ],
    env: { INFERMESH_MESH_TOKEN: options.meshToken },
    readyMsg: "gateway ready",
  };
}

/**
 * agentCommand runs an agent serving one llm upstream under the API key's user. It opens no port: it dials the mesh at
 * meshUrl (the gateway's public base URL, as OpenAI clients use it) and holds its one link there.
 */
export function agentCommand(options: {
  readonly meshUrl: string;
  readonly apiKey: string;
  readonly name: string;
  /** id is the provider id; by default the agent derives one from its user and name. */
  readonly id?: string;
  readonly upstreamUrl: string;
  readonly logLevel: string;
  readonly extraArgs?: readonly string[];
}): ServiceCommand {
  return {
    args: [
      "agent",
      "--mesh",
      options.meshUrl,
      ...(options.id === undefined ? [] : ["--id", options.id]),
      "--name",
      options.name,
      "--upstream",
      `llm=${options.upstreamUrl}`,
      "--log-level",
      options.logLevel,
      ...(options.extraArgs ?? []),
    ],
    env: { INFERMESH_API_KEY: options.apiKey },
    readyMsg: "agent ready",
  };
}
