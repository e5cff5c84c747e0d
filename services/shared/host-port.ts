import type { NetworkInterfaceInfo } from "node:os";
import { ConfigError } from "./config-error.js";

/** HostPort is a parsed "host:port" address to listen on or to dial. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * parseHostPort parses "host:port", IPv6 hosts in brackets. Port 0 asks a listener for any free port; an address
 * to dial passes minPort 1. where names the setting the value came from, for the error.
 */
export function parseHostPort(where: string, value: string, minPort: 0 | 1 = 0): HostPort {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  const port = Number(match?.[2]);
  if (!match || port > 65535) {
    throw new ConfigError(where, `${where} expects HOST:PORT with a port from ${minPort} to 65535, got '${value}'`);
  }
  if (port < minPort) throw new ConfigError(where, `${where} expects a port from ${minPort} to 65535, got '${value}'`);
  return { host: match[1] as string, port };
}

/** formatHostPort writes a HostPort back as "host:port", the form gRPC servers bind to. */
export function formatHostPort({ host, port }: HostPort): string {
  return `${host}:${port}`;
}

const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", "[::]", "[::0]", "[0:0:0:0:0:0:0:0]"]);

/**
 * advertisedAddress is the "host:port" others dial to reach a bound port: the configured advertise address, else the
 * bound one. Port 0 stands for the port actually bound. A wildcard host (0.0.0.0, ::) cannot be dialled, so the first
 * external IPv4 address stands in, or loopback on a machine without one.
 */
export function advertisedAddress(
  bound: HostPort,
  advertise: HostPort | undefined,
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>,
): string {
  const chosen = advertise ?? bound;
  const port = chosen.port === 0 ? bound.port : chosen.port;
  const host = WILDCARD_HOSTS.has(chosen.host) ? (firstExternalIpv4(interfaces) ?? "127.0.0.1") : chosen.host;
  return `${host}:${port}`;
}

function firstExternalIpv4(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>): string | undefined {
  for (const addresses of Object.values(interfaces)) {
    for (const address of addresses ?? []) if (address.family === "IPv4" && !address.internal) return address.address;
  }
  return undefined;
}
