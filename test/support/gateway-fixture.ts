import { createGateway, type Gateway, type GatewayOptions } from "../../services/gateway/gateway.js";
import { formatHostPort } from "../../services/shared/host-port.js";
import { createLogger } from "../../services/shared/logger.js";
import { MESH_TOKEN } from "./registry-fixture.js";

/** GatewayFixture is a real gateway on loopback ports, connected to a registry. */
export interface GatewayFixture {
  readonly gateway: Gateway;
  readonly baseUrl: string;
  readonly grpcAddress: string;
  /** metricsUrl is the operator's metrics address, "http://host:port", when the gateway has one. */
  readonly metricsUrl: string | undefined;
  stop(): Promise<void>;
}

/** startGateway starts a gateway on 127.0.0.1:0 (HTTP and gRPC) and waits for its first registry snapshot. */
export async function startGateway(
  registry: string,
  options: Partial<Omit<GatewayOptions, "registry" | "meshToken">> = {},
): Promise<GatewayFixture> {
  const gateway = createGateway({
    registry: `http://${registry}`,
    meshToken: MESH_TOKEN,
    log: createLogger("gateway", "silent"),
    listen: { host: "127.0.0.1", port: 0 },
    grpcListen: { host: "127.0.0.1", port: 0 },
    shutdownGraceMs: 1_000,
    // The tests read the gateway's metrics where `infermesh dev` serves them; test/control-plane.test.ts checks that a
    // gateway keeps them off its public port by default.
    publicMetrics: true,
    ...options,
  });
  const addresses = await gateway.listen();
  await gateway.registryLink.ready;
  return {
    gateway,
    baseUrl: `http://${formatHostPort(addresses.http)}`,
    grpcAddress: formatHostPort(addresses.grpc ?? addresses.http),
    metricsUrl: addresses.metrics && `http://${formatHostPort(addresses.metrics)}`,
    stop: () => gateway.close(),
  };
}
