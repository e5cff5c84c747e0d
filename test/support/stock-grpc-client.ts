import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

/** PROTO_ROOT is the repository's proto/ folder, read as-is the way an outside user would. */
export const PROTO_ROOT = fileURLToPath(new URL("../../proto", import.meta.url));

/**
 * loadStockPackage loads infermesh.v1 with @grpc/proto-loader straight from proto/, the way a user with nothing but
 * the .proto files would, so tests prove the contract works for callers outside this codebase.
 */
export function loadStockPackage(): grpc.GrpcObject {
  const definition = protoLoader.loadSync(
    ["infermesh/v1/registry.proto", "infermesh/v1/inference.proto", "infermesh/v1/capabilities.proto", "infermesh/v1/accounts.proto"],
    { includeDirs: [PROTO_ROOT], keepCase: false, longs: String, enums: String, defaults: true, oneofs: true },
  );
  const loaded = grpc.loadPackageDefinition(definition);
  return (loaded.infermesh as grpc.GrpcObject).v1 as grpc.GrpcObject;
}

/** StockClient is a client made by grpc-js from proto-loader's definitions: untyped, as users get it. */
export type StockClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

/** stockClient makes a plaintext client of a service of infermesh.v1. */
export function stockClient(serviceName: string, address: string): StockClient {
  const ctor = loadStockPackage()[serviceName] as grpc.ServiceClientConstructor;
  return new ctor(address, grpc.credentials.createInsecure()) as unknown as StockClient;
}

/** bearer makes call metadata carrying `authorization: Bearer <token>`. */
export function bearer(token: string | undefined): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}

/** unary calls a unary RPC of a stock client and resolves its response or rejects with the ServiceError. */
export function unary<T = Record<string, unknown>>(
  client: StockClient,
  method: string,
  request: object,
  metadata: grpc.Metadata,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const fn = client[method] as (req: object, md: grpc.Metadata, cb: (error: grpc.ServiceError | null, response: T) => void) => void;
    fn.call(client, request, metadata, (error, response) => (error ? reject(error) : resolve(response)));
  });
}
