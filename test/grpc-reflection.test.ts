import { create, createFileRegistry, type FileRegistry, fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import { type FileDescriptorProto, FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { AccountService } from "../gen/infermesh/v1/accounts_pb.js";
import { AgentService, InferenceService } from "../gen/infermesh/v1/inference_pb.js";
import { RegistryService } from "../gen/infermesh/v1/registry_pb.js";
import { type Mesh, type MeshAgent, startMesh } from "./support/mesh-fixture.js";
import { type ReflectionClient, type ReflectionVersion, reflectionClient } from "./support/reflection-client.js";

// grpcurl and grpcui list, describe and call every gRPC server of the mesh through server reflection.

const REFLECTION = ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];
const STANDARD = ["grpc.health.v1.Health", ...REFLECTION];

/**
 * resolveLikeGrpcurl downloads a symbol's descriptors the way grpcurl does (file_containing_symbol, then
 * file_by_filename for every import it does not have yet) and links them with protobuf-es, which fails on any
 * reference it cannot resolve, as grpcurl's descriptor builder does.
 */
async function resolveLikeGrpcurl(
  client: ReflectionClient,
  symbol: string,
): Promise<{ registry: FileRegistry; files: FileDescriptorProto[] }> {
  const files = new Map<string, FileDescriptorProto>();
  const add = (bytes: Uint8Array[]) => {
    for (const file of bytes.map((b) => fromBinary(FileDescriptorProtoSchema, b))) if (!files.has(file.name)) files.set(file.name, file);
  };
  add(await client.fileContainingSymbol(symbol));
  for (let missing = missingImports(files); missing.length > 0; missing = missingImports(files)) {
    for (const name of missing) add(await client.fileByFilename(name));
  }
  // Imports first: protobuf-es links a descriptor set in order.
  const ordered = new Map<string, FileDescriptorProto>();
  const visit = (file: FileDescriptorProto) => {
    if (ordered.has(file.name)) return;
    for (const name of file.dependency) visit(files.get(name) as FileDescriptorProto);
    ordered.set(file.name, file);
  };
  files.forEach(visit);
  const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: [...ordered.values()] }));
  return { registry, files: [...files.values()] };
}

function missingImports(files: ReadonlyMap<string, FileDescriptorProto>): string[] {
  return [...new Set([...files.values()].flatMap((file) => file.dependency))].filter((name) => !files.has(name));
}

/** callReflected calls a unary method with messages built from reflected descriptors only, as grpcurl -d does. */
function callReflected(
  address: string,
  registry: FileRegistry,
  method: string,
  request: Record<string, unknown>,
  metadata = new grpc.Metadata(),
): Promise<unknown> {
  const [serviceName, methodName] = method.split("/") as [string, string];
  const service = registry.getService(serviceName);
  const descriptor = service?.methods.find((m) => m.name === methodName);
  if (!descriptor) throw new Error(`${method} is not in the reflected descriptors`);
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      `/${serviceName}/${methodName}`,
      (message: Record<string, unknown>) => Buffer.from(toBinary(descriptor.input, create(descriptor.input, message))),
      (bytes: Buffer) => toJson(descriptor.output, fromBinary(descriptor.output, bytes), { registry }),
      request,
      metadata,
      (error, response) => {
        client.close();
        if (error) reject(error);
        else resolve(response);
      },
    );
  });
}

describe("gRPC server reflection and health on every gRPC server", function () {
  this.timeout(30_000);
  let mesh: Mesh;
  let agent: MeshAgent;
  let aliceKey: string;
  const clients: ReflectionClient[] = [];
  const connect = (address: string, version: ReflectionVersion = "v1") => {
    const client = reflectionClient(address, version);
    clients.push(client);
    return client;
  };

  before(async () => {
    mesh = await startMesh();
    aliceKey = await mesh.registry.keyFor("alice");
    agent = await mesh.addAgent({ user: "alice", apiKey: aliceKey });
  });
  after(async () => {
    for (const client of clients) client.close();
    await mesh.stop();
  });

  // Agents open no port: they dial the gateway. The gateway's gRPC port serves InferenceService to users and
  // AgentService to the other gateways, which forward calls for the agents attached to it.
  const servers = () => [
    { name: "registry", address: mesh.registry.address, services: [RegistryService, AccountService] },
    { name: "gateway", address: mesh.gateway.grpcAddress, services: [InferenceService, AgentService] },
  ];
  const FILES: Record<string, string> = {
    [RegistryService.typeName]: "infermesh/v1/registry.proto",
    [AccountService.typeName]: "infermesh/v1/accounts.proto",
    [InferenceService.typeName]: "infermesh/v1/inference.proto",
    [AgentService.typeName]: "infermesh/v1/inference.proto",
  };

  it("lists each server's own services, health and reflection, with reflection v1 and v1alpha", async () => {
    for (const server of servers()) {
      for (const version of ["v1", "v1alpha"] as const) {
        const listed = await connect(server.address, version).listServices();
        expect(listed, `${server.name} ${version}`).to.deep.equal([...STANDARD, ...server.services.map((s) => s.typeName)].sort());
      }
    }
  });

  it("describes each service from the file buf compiled, with every import resolvable (as grpcurl needs)", async () => {
    for (const server of servers()) {
      for (const expected of server.services) {
        const { registry, files } = await resolveLikeGrpcurl(connect(server.address), expected.typeName);
        expect(files[0]?.name, expected.typeName).to.equal(FILES[expected.typeName]);
        expect(files.map((f) => f.name)).to.include.members(["infermesh/v1/capabilities.proto"]);
        const service = registry.getService(expected.typeName);
        expect(
          service?.methods.map((m) => [m.name, m.methodKind]),
          `${server.name} ${expected.typeName}`,
        ).to.deep.equal(expected.methods.map((m) => [m.name, m.methodKind]));
      }
    }
  });

  it("describes grpc.health.v1 and reflection itself as protoc would, map entries included", async () => {
    const client = connect(mesh.gateway.grpcAddress);
    const health = await resolveLikeGrpcurl(client, "grpc.health.v1.Health");
    expect(health.registry.getService("grpc.health.v1.Health")?.methods.map((m) => m.name)).to.deep.equal(["Check", "Watch", "List"]);
    const statuses = health.registry.getMessage("grpc.health.v1.HealthListResponse")?.fields[0];
    expect([statuses?.fieldKind, statuses?.jsonName, statuses?.message?.name]).to.deep.equal(["map", "statuses", "HealthCheckResponse"]);
    const listResponse = health.files.flatMap((f) => f.messageType).find((m) => m.name === "HealthListResponse");
    expect(listResponse?.nestedType.map((m) => m.name)).to.deep.equal(["StatusesEntry"]);
    for (const service of REFLECTION) {
      const { registry } = await resolveLikeGrpcurl(client, service);
      const method = registry.getService(service)?.methods[0];
      expect([method?.name, method?.methodKind, method?.input.fields.map((f) => f.jsonName)]).to.deep.equal([
        "ServerReflectionInfo",
        "bidi_streaming",
        ["host", "fileByFilename", "fileContainingSymbol", "fileContainingExtension", "allExtensionNumbersOfType", "listServices"],
      ]);
    }
  });

  it("fetches the file descriptor of infermesh.v1.RegistryService with its imports in one answer", async () => {
    const bytes = await connect(mesh.registry.address).fileContainingSymbol("infermesh.v1.RegistryService");
    const names = bytes.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
    expect(names[0]).to.equal("infermesh/v1/registry.proto");
    expect([...names].sort()).to.deep.equal([
      "google/protobuf/duration.proto",
      "google/protobuf/timestamp.proto",
      "infermesh/v1/capabilities.proto",
      "infermesh/v1/registry.proto",
    ]);
    const registryFile = fromBinary(FileDescriptorProtoSchema, bytes[0] as Uint8Array);
    expect(registryFile.dependency).to.deep.equal([
      "google/protobuf/duration.proto",
      "google/protobuf/timestamp.proto",
      "infermesh/v1/capabilities.proto",
    ]);
  });

  it("answers an unknown symbol with NOT_FOUND in the reflection stream", async () => {
    const answer = await connect(mesh.registry.address).ask({ file_containing_symbol: "infermesh.v1.NoSuchService" });
    expect(answer.error_response?.error_code).to.equal(grpc.status.NOT_FOUND);
  });

  it("calls RegistryService.ListProviders and grpc.health.v1 Check with reflected descriptors only", async () => {
    const { registry } = await resolveLikeGrpcurl(connect(mesh.registry.address), RegistryService.typeName);
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${aliceKey}`);
    const listed = (await callReflected(mesh.registry.address, registry, "infermesh.v1.RegistryService/ListProviders", {}, metadata)) as {
      providers: { id: string; ownerUserName: string }[];
    };
    expect(listed.providers.map((p) => [p.id, p.ownerUserName])).to.deep.equal([[agent.providerId, "alice"]]);

    for (const server of servers()) {
      const { registry: health } = await resolveLikeGrpcurl(connect(server.address), "grpc.health.v1.Health");
      for (const service of ["", ...server.services.map((s) => s.typeName)]) {
        const answer = await callReflected(server.address, health, "grpc.health.v1.Health/Check", { service });
        expect(answer, `${server.name} '${service}'`).to.deep.equal({ status: "SERVING" });
      }
    }
  });
});
