import { createHash, randomBytes } from "node:crypto";
import type { NetworkInterfaceInfo } from "node:os";
import type { HostPort } from "../shared/host-port.js";

const API_KEY_ID = /^im_([0-9a-f]{16})_/;
const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", "[::]", "[::0]", "[0:0:0:0:0:0:0:0]"]);

/** AGENT_TOKEN_BYTES is the agent token's size: 256 random bits, beyond guessing. */
const AGENT_TOKEN_BYTES = 32;

/**
 * newAgentToken makes the per-process secret that callers of this agent's AgentService must present. It lives only
 * in this process's memory and in the registry's, and changes on every start, so a leaked token dies with the process.
 */
export function newAgentToken(): string {
  return randomBytes(AGENT_TOKEN_BYTES).toString("base64url");
}

/**
 * defaultProviderId derives an id that stays the same across restarts of one agent and differs between agents:
 * the host name (readable), then a hash of the host name, the advertised endpoint and the API key's public id, so
 * that two agents on one host (different ports) or two users' hosts with the same name never collide. The API key's
 * secret never enters it; a key without the usual `im_<id>_` shape is hashed whole instead of its id.
 */
export function defaultProviderId(hostname: string, endpoint: string, apiKey: string): string {
  const keyPart = API_KEY_ID.exec(apiKey)?.[1] ?? createHash("sha256").update(apiKey).digest("hex");
  const hash = createHash("sha256").update(`${hostname}\u0000${endpoint}\u0000${keyPart}`).digest("hex").slice(0, 12);
  const readable = hostname
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, "-")
    .replace(/^[-.]+|[-.]+$/g, "")
    .slice(0, 64);
  return readable === "" ? `agent-${hash}` : `${readable}-${hash}`;
}

/**
 * advertisedEndpoint is the "host:port" gateways dial: the configured advertise address, else the listen address.
 * Port 0 stands for the port actually bound. A wildcard listen host (0.0.0.0, ::) cannot be dialled, so the first
 * external IPv4 address stands in, or loopback on a machine without one.
 */
export function advertisedEndpoint(
  listen: HostPort,
  boundPort: number,
  advertise: HostPort | undefined,
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>,
): string {
  const chosen = advertise ?? listen;
  const port = chosen.port === 0 ? boundPort : chosen.port;
  const host = WILDCARD_HOSTS.has(chosen.host) ? (firstExternalIpv4(interfaces) ?? "127.0.0.1") : chosen.host;
  return `${host}:${port}`;
}

function firstExternalIpv4(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>): string | undefined {
  for (const addresses of Object.values(interfaces)) {
    for (const address of addresses ?? []) if (address.family === "IPv4" && !address.internal) return address.address;
  }
  return undefined;
}
