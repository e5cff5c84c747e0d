import {
  AGENT_SETTING_CHECKS,
  type AgentConfig,
  type AgentSettings,
  DEFAULT_DISCOVERY_INTERVAL_MS,
  DEFAULT_LOG_LEVEL,
  DEFAULT_MAX_CONCURRENCY,
  DEFAULT_MAX_QUEUE,
  DEFAULT_SHUTDOWN_GRACE_MS,
  DEFAULT_UPSTREAM_TIMEOUT_MS,
  parseUpstream,
  REMOVED_SETTINGS,
  readAgentConfigFile,
  resolveAgentConfig,
  SCALAR_SETTINGS,
  type ScalarSetting,
  UPSTREAM_KINDS,
} from "../../services/agent/agent-config.js";
import {
  type DiscoveredServer,
  discoverLocalServers,
  LOCAL_SERVER_PORTS,
  unconfiguredServers,
} from "../../services/agent/local-servers.js";
import { ConfigError } from "../../services/shared/config-error.js";
import { listInWords } from "../../services/shared/config-values.js";
import { SERVICE_TYPE_NAMES } from "../../services/shared/inference-catalog.js";
import { type FlagSpec, type FlagSpecs, type ParsedFlags, parseFlags } from "./flags.js";
import { type ReadTextFile, readSecret, readTextFile } from "./secret-flag.js";
import { API_KEY_FLAGS, CA_FILE_FLAG, LOG_LEVEL_FLAG, MESH_URL_FLAG } from "./shared-flags.js";

/** agentFlag declares one of the agent's own flags, whose variable is INFERMESH_AGENT_<FLAG>. */
function agentFlag(name: string, value: string, description: string): FlagSpec {
  return { type: "string", value, description, env: `INFERMESH_AGENT_${name.replaceAll("-", "_").toUpperCase()}` };
}

/**
 * AGENT_FLAGS are `infermesh agent`'s flags; the config file's top-level fields are the same names in snake_case.
 * Defaults are applied after flags and file are merged, so --help names them in the descriptions.
 */
export const AGENT_FLAGS: FlagSpecs = {
  mesh: MESH_URL_FLAG,
  ...API_KEY_FLAGS,
  "ca-file": CA_FILE_FLAG,
  name: agentFlag("name", "NAME", "this machine's name in the mesh, its identity across restarts and addresses (default: the host name)"),
  id: agentFlag("id", "ID", "provider id, 1 to 128 of A-Z a-z 0-9 . _ : - (default: derived from your user and --name)"),
  share: agentFlag(
    "share",
    "private|public|users:NAME,...",
    "who besides you may use this machine's models: nobody, every user of the mesh, or the users named " +
      "(default: the sharing set through the API stays, private for a new machine)",
  ),
  upstream: {
    ...agentFlag(
      "upstream",
      "[TYPE=][KIND+]URL[#MODEL]",
      `a local model server: TYPE ${listInWords(SERVICE_TYPE_NAMES)} (default llm, or the kind's type); ` +
        `KIND ${listInWords(UPSTREAM_KINDS)} (default openai); #MODEL declares the model it serves instead of asking it`,
    ),
    multiple: true,
  },
  discover: {
    type: "boolean",
    description: `also serve the model servers found on this machine's usual ports (${LOCAL_SERVER_PORTS.join(", ")}: llama.cpp, Ollama, vLLM, LM Studio, LocalAI)`,
    env: "INFERMESH_AGENT_DISCOVER",
  },
  "max-concurrency": agentFlag("max-concurrency", "N", `requests per upstream at once (default ${DEFAULT_MAX_CONCURRENCY})`),
  "max-queue": agentFlag("max-queue", "N", `requests waiting per upstream before refusing (default ${DEFAULT_MAX_QUEUE})`),
  config: agentFlag("config", "FILE", "JSON file describing upstreams in full; flags and variables override it"),
  "metrics-listen": agentFlag("metrics-listen", "HOST:PORT", "HTTP address serving Prometheus /metrics"),
  "discovery-interval-ms": agentFlag(
    "discovery-interval-ms",
    "MS",
    `how often to ask upstreams for their models, in milliseconds (default ${DEFAULT_DISCOVERY_INTERVAL_MS})`,
  ),
  "shutdown-grace-ms": agentFlag(
    "shutdown-grace-ms",
    "MS",
    `how long requests in flight may finish on shutdown, in milliseconds (default ${DEFAULT_SHUTDOWN_GRACE_MS})`,
  ),
  "upstream-timeout-ms": agentFlag(
    "upstream-timeout-ms",
    "MS",
    `longest wait for an upstream's headers or next bytes, in milliseconds (default ${DEFAULT_UPSTREAM_TIMEOUT_MS})`,
  ),
  "log-level": { ...LOG_LEVEL_FLAG, description: `${LOG_LEVEL_FLAG.description} (default ${DEFAULT_LOG_LEVEL})` },
  ...Object.fromEntries(Object.entries(REMOVED_SETTINGS).map(([name, why]) => [name, agentFlag(name, "-", `removed: ${why}`)] as const)),
};

/**
 * parseAgentConfig reads `--config FILE` (if any), then flags and their variables, which win over the file;
 * upstreams from both are served. A bad value throws a ConfigError naming the flag, the variable or the file's field.
 */
export function parseAgentConfig(argv: readonly string[], env: NodeJS.ProcessEnv, readFile: ReadTextFile = readTextFile): AgentConfig {
  const { sources } = readAgentSources(argv, env, readFile, false);
  return resolveAgentConfig(...sources);
}

/**
 * discoverAgentConfig is parseAgentConfig with `--discover`: the model servers found on this machine's usual ports
 * join the configured upstreams (a configured one on the same port wins), and then none need be configured. It says
 * what it found through onFound, and fails with a ConfigError naming the ports when there is nothing to serve.
 */
export async function discoverAgentConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  options: {
    readonly readFile?: ReadTextFile;
    readonly discover?: () => Promise<DiscoveredServer[]>;
    readonly onFound?: (found: readonly DiscoveredServer[]) => void;
  } = {},
): Promise<AgentConfig> {
  const { flags, sources } = readAgentSources(argv, env, options.readFile ?? readTextFile, true);
  if (!flags.boolean("discover")) return resolveAgentConfig(...sources);
  const configured = sources.flatMap((source) => source.upstreams ?? []);
  const found = unconfiguredServers(await (options.discover ?? discoverLocalServers)(), configured);
  options.onFound?.(found);
  if (configured.length === 0 && found.length === 0) {
    throw new ConfigError(
      "--discover",
      `--discover found no model server on 127.0.0.1 ports ${LOCAL_SERVER_PORTS.join(", ")}; start one, or give --upstream TYPE=URL`,
    );
  }
  const discovered = found.map(({ type, url, engine }) => ({ type, url, ...(engine === undefined ? {} : { engine }) }));
  return resolveAgentConfig(...sources, { upstreams: discovered });
}

/** readAgentSources reads `--config FILE` (if any), then flags and their variables, and checks what is required. */
function readAgentSources(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  readFile: ReadTextFile,
  mayDiscover: boolean,
): { flags: ParsedFlags; sources: AgentSettings[] } {
  const flags = parseFlags(AGENT_FLAGS, argv, env);
  for (const [name, why] of Object.entries(REMOVED_SETTINGS)) {
    if (flags.string(name) !== undefined) throw new ConfigError(flags.setting(name), `${flags.setting(name)} is no longer used: ${why}`);
  }
  const file = flags.string("config");
  const fromFile = file === undefined ? {} : readAgentConfigFile(file, readFile);
  const fromFlags = settingsFromFlags(flags, readFile);
  if (fromFlags.mesh === undefined && fromFile.mesh === undefined) throw missing(flags, "mesh");
  if (fromFlags.apiKey === undefined && fromFile.apiKey === undefined) {
    throw missing(flags, "api-key", `; --api-key-file FILE (or ${flags.spec("api-key-file").env}) keeps it off the command line`);
  }
  const discovers = mayDiscover && flags.boolean("discover");
  if (fromFlags.upstreams === undefined && fromFile.upstreams === undefined && !discovers) {
    throw missing(flags, "upstream", mayDiscover ? ", or --discover" : "", "upstreams");
  }
  return { flags, sources: [fromFile, fromFlags] };
}

/** settingsFromFlags reads the flags and variables that were given; errors name the flag or the variable. */
export function settingsFromFlags(flags: ParsedFlags, readFile: ReadTextFile): AgentSettings {
  const settings: Partial<Record<keyof AgentSettings, unknown>> = {};
  for (const setting of SCALAR_SETTINGS) {
    if (setting === "apiKey") continue;
    const flag = kebab(setting);
    const value = flags.string(flag);
    if (value !== undefined) settings[setting] = AGENT_SETTING_CHECKS[setting](flags.setting(flag), value);
  }
  const apiKey = readSecret(flags, "api-key", readFile);
  if (apiKey !== undefined) settings.apiKey = AGENT_SETTING_CHECKS.apiKey(apiKey.setting, apiKey.value);
  const upstreams = flags.strings("upstream");
  if (upstreams.length > 0) settings.upstreams = upstreams.map((value) => parseUpstream(flags.setting("upstream"), value));
  return settings as AgentSettings;
}

function kebab(setting: ScalarSetting): string {
  return setting.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

function missing(flags: ParsedFlags, flag: string, hint = "", field = flag.replaceAll("-", "_")): ConfigError {
  return new ConfigError(`--${flag}`, `--${flag} (or ${flags.spec(flag).env}, or the config file's "${field}") is required${hint}`);
}
