import { createGateway, type Gateway, type GatewayOptions } from "../../services/gateway/gateway.js";
import { createLogger } from "../../services/shared/logger.js";
import { MESH_TOKEN } from "./registry-fixture.js";

/** GatewayFixture is a real gateway on loopback ports, connected to a registry. */
export interface GatewayFixture {
  readonly gateway: Gateway;
  readonly baseUrl: string;
  readonly grpcAddress: string;
  stop(): Promise<void>;
}

/** startGateway starts a gateway on 127.0.0.1:0 (HTTP and gRPC) and waits for its first registry snapshot. */
export async function startGateway(
  registry: string,
  options: Partial<Omit<GatewayOptions, "registry" | "meshToken">> = {},
): Promise<GatewayFixture> {
  const gateway = createGateway({ registry: `http://${registry}`, meshToken: MESH_TOKEN, log: createLogger("gateway", "silent"), ...options });
  const { httpPort, grpcPort } = await gateway.listen({ host: "127.0.0.1", port: 0 }, "127.0.0.1:0");
  await gateway.registryLink.ready;
  return {
    gateway,
    baseUrl: `http://127.0.0.1:${httpPort}`,
    grpcAddress: `127.0.0.1:${grpcPort}`,
    stop: () => gateway.close(1_000),
  };
}
