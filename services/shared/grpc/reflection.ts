import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { create, type DescFile, type DescService, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type DescriptorProto,
  type EnumDescriptorProto,
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { protoPath as healthProtoPath } from "grpc-health-check";

/** HEALTH_SERVICE is grpc.health.v1's service, which every infermesh gRPC server serves beside its own. */
export const HEALTH_SERVICE = "grpc.health.v1.Health";
/** REFLECTION_SERVICES are the server reflection services, both versions, as grpcurl and grpcui look for them. */
export const REFLECTION_SERVICES = ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"] as const;

const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

/**
 * addReflection adds gRPC server reflection (grpc.reflection.v1 and v1alpha) to a server, describing the given
 * services, grpc.health.v1 and reflection itself, so that grpcurl and grpcui can list the services, describe them and
 * call them without the .proto files.
 */
export function addReflection(server: Pick<grpc.Server, "addService">, services: readonly DescService[]): void {
  const names = [...services.map((service) => service.typeName), HEALTH_SERVICE, ...REFLECTION_SERVICES];
  const definition = { ...standardDefinitions(), ...exactDefinitions(services.map((service) => service.file)) };
  new ReflectionService(definition, { services: names }).addToServer(server);
}

/**
 * exactDefinitions describes protobuf-es files, with their imports, as proto-loader definitions that carry each
 * file's descriptor exactly as compiled. proto-loader's own descriptors merge the files of a package into one and
 * drop their imports, which grpcurl then cannot resolve ("unresolvable reference", grpc-node#3018); the generated
 * code embeds the real ones, so reflection tells what `buf` compiled, file by file.
 */
function exactDefinitions(roots: readonly DescFile[]): protoLoader.PackageDefinition {
  const files = withImports(roots);
  const descriptors = files.map((file) => Buffer.from(toBinary(FileDescriptorProtoSchema, file.proto)));
  const set = toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: files.map((file) => file.proto) }));
  const loaded = protoLoader.loadFileDescriptorSetFromBuffer(Buffer.from(set), LOADER_OPTIONS);
  const definitions: protoLoader.PackageDefinition = {};
  for (const [name, definition] of Object.entries(loaded)) {
    definitions[name] = isTypeDefinition(definition) ? { ...definition, fileDescriptorProtos: descriptors } : definition;
  }
  return definitions;
}

/** isTypeDefinition tells message and enum definitions, which carry file descriptors, from service definitions. */
function isTypeDefinition(
  definition: protoLoader.AnyDefinition,
): definition is protoLoader.MessageTypeDefinition<object, object> | protoLoader.EnumTypeDefinition {
  return typeof definition.format === "string";
}

/** withImports lists files after everything they import, each once. */
function withImports(roots: readonly DescFile[]): DescFile[] {
  const ordered = new Map<string, DescFile>();
  const visit = (file: DescFile) => {
    if (ordered.has(file.proto.name)) return;
    file.dependencies.forEach(visit);
    ordered.set(file.proto.name, file);
  };
  roots.forEach(visit);
  return [...ordered.values()];
}

let standard: protoLoader.PackageDefinition | undefined;

/**
 * standardDefinitions are grpc.health.v1 and grpc.reflection, from the .proto files their packages ship, with the
 * descriptors proto-loader derives from them corrected to read as protoc's (see asProtocWrites): grpcurl's and
 * protobuf-es' descriptor builders refuse them as they are.
 */
function standardDefinitions(): protoLoader.PackageDefinition {
  if (standard) return standard;
  // @grpc/reflection ships its protos beside its build; its main module is build/src/index.js.
  const reflectionProtos = join(dirname(createRequire(import.meta.url).resolve("@grpc/reflection")), "..", "proto");
  const loaded = protoLoader.loadSync(
    [
      healthProtoPath,
      join(reflectionProtos, "grpc/reflection/v1/reflection.proto"),
      join(reflectionProtos, "grpc/reflection/v1alpha/reflection.proto"),
    ],
    LOADER_OPTIONS,
  );
  const files = new Map<string, FileDescriptorProto>();
  for (const definition of Object.values(loaded)) {
    if (!isTypeDefinition(definition)) continue;
    for (const bytes of definition.fileDescriptorProtos) {
      const file = fromBinary(FileDescriptorProtoSchema, bytes);
      if (!files.has(file.name)) files.set(file.name, asProtocWrites(file));
    }
  }
  const descriptors = [...files.values()].map((file) => Buffer.from(toBinary(FileDescriptorProtoSchema, file)));
  standard = {};
  for (const [name, definition] of Object.entries(loaded)) {
    standard[name] = isTypeDefinition(definition) ? { ...definition, fileDescriptorProtos: descriptors } : definition;
  }
  return standard;
}

/**
 * asProtocWrites rewrites what proto-loader writes differently from protoc: relative type references become fully
 * qualified ones, by protobuf's scoping rules; the empty json_name it sets (which would make every field's JSON
 * name "") becomes the lowerCamelCase name protoc derives; a map's entry type gets protoc's name, `<Field>Entry`,
 * which Go's descriptor validation (grpcurl's) insists on.
 */
function asProtocWrites(file: FileDescriptorProto): FileDescriptorProto {
  const known = new Set<string>();
  const collect = (scope: string, messages: readonly DescriptorProto[], enums: readonly EnumDescriptorProto[]) => {
    for (const enumType of enums) known.add(`${scope}.${enumType.name}`);
    for (const message of messages) {
      known.add(`${scope}.${message.name}`);
      collect(`${scope}.${message.name}`, message.nestedType, message.enumType);
    }
  };
  const root = file.package === "" ? "" : `.${file.package}`;
  collect(root, file.messageType, file.enumType);
  const qualify = (scope: string, name: string): string => {
    if (name === "" || name.startsWith(".")) return name;
    for (let outer = scope; ; outer = outer.slice(0, Math.max(0, outer.lastIndexOf(".")))) {
      if (known.has(`${outer}.${name}`)) return `${outer}.${name}`;
      if (outer === "") return name;
    }
  };
  const visit = (scope: string, messages: readonly DescriptorProto[]) => {
    for (const message of messages) {
      const name = `${scope}.${message.name}`;
      for (const field of message.field) {
        field.typeName = qualify(name, field.typeName);
        if (field.jsonName === "") field.jsonName = lowerCamelCase(field.name);
      }
      for (const entry of message.nestedType.filter((nested) => nested.options?.mapEntry === true)) {
        const field = message.field.find((f) => f.typeName === `${name}.${entry.name}`);
        if (!field) continue;
        const camel = lowerCamelCase(field.name);
        entry.name = `${camel.charAt(0).toUpperCase()}${camel.slice(1)}Entry`;
        field.typeName = `${name}.${entry.name}`;
      }
      visit(name, message.nestedType);
    }
  };
  visit(root, file.messageType);
  for (const method of file.service.flatMap((service) => service.method)) {
    method.inputType = qualify(root, method.inputType);
    method.outputType = qualify(root, method.outputType);
  }
  return file;
}

/** lowerCamelCase is protoc's JSON name of a field: "file_by_filename" is "fileByFilename". */
function lowerCamelCase(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_match, next: string) => next.toUpperCase());
}
