import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

/** ReflectionVersion is a version of the server reflection protocol: v1, or v1alpha that older tools still use. */
export type ReflectionVersion = "v1" | "v1alpha";

/** ReflectionAnswer is one ServerReflectionResponse as proto-loader decodes it (oneofs named by `message_response`). */
export interface ReflectionAnswer {
  readonly message_response: string;
  readonly list_services_response?: { service: { name: string }[] };
  readonly file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  readonly error_response?: { error_code: number; error_message: string };
}

/**
 * ReflectionClient is a stock reflection client: grpc-js with proto-loader, from the reflection protos that
 * @grpc/reflection ships (the same files grpcurl's reflection client is generated from), asking as grpcurl asks.
 */
export interface ReflectionClient {
  ask(request: Record<string, unknown>): Promise<ReflectionAnswer>;
  listServices(): Promise<string[]>;
  /** fileContainingSymbol returns the serialized FileDescriptorProtos of the symbol's file and its imports. */
  fileContainingSymbol(symbol: string): Promise<Uint8Array[]>;
  fileByFilename(name: string): Promise<Uint8Array[]>;
  close(): void;
}

/** reflectionClient connects a plaintext reflection client of the given version to address. */
export function reflectionClient(address: string, version: ReflectionVersion = "v1"): ReflectionClient {
  const protos = join(dirname(createRequire(import.meta.url).resolve("@grpc/reflection")), "..", "proto");
  const definition = protoLoader.loadSync(join(protos, `grpc/reflection/${version}/reflection.proto`), {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: { reflection: Record<ReflectionVersion, { ServerReflection: grpc.ServiceClientConstructor }> };
  };
  const Client = loaded.grpc.reflection[version].ServerReflection;
  const client = new Client(address, grpc.credentials.createInsecure());
  const ask = (request: Record<string, unknown>) =>
    new Promise<ReflectionAnswer>((resolve, reject) => {
      const call = (
        client as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<object, ReflectionAnswer> }
      ).ServerReflectionInfo();
      call.once("data", (answer: ReflectionAnswer) => {
        resolve(answer);
        call.end();
      });
      call.once("error", reject);
      call.write({ host: "", ...request });
    });
  const files = async (request: Record<string, unknown>) => {
    const answer = await ask(request);
    if (answer.error_response)
      throw new Error(`reflection error ${answer.error_response.error_code}: ${answer.error_response.error_message}`);
    return (answer.file_descriptor_response?.file_descriptor_proto ?? []).map((bytes) => new Uint8Array(bytes));
  };
  return {
    ask,
    async listServices() {
      const answer = await ask({ list_services: "*" });
      return (answer.list_services_response?.service ?? []).map((service) => service.name).sort();
    },
    fileContainingSymbol: (symbol) => files({ file_containing_symbol: symbol }),
    fileByFilename: (name) => files({ file_by_filename: name }),
    close: () => client.close(),
  };
}
