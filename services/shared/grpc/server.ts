import type { DescMessage, DescMethod, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import type { ServerTls } from "../tls-files.js";
import { DEFAULT_MAX_MESSAGE_BYTES } from "./message-limits.js";
import { addReflection } from "./reflection.js";

/**
 * The mesh's gRPC servers (registry, agent, the gateway's InferenceService) run on @grpc/grpc-js, with protobuf-es
 * doing the encoding so that the whole mesh shares one set of generated types: grpc-js's server is several times
 * cheaper per call here than connect-node's. This module is the one place a server is set up: each service with its
 * handlers, grpc.health.v1 and server reflection beside it, NOT_SERVING while it stops, and a stop that drains calls
 * for a grace period, then cuts the rest so that no HTTP/2 session outlives the server.
 */

/**
 * CallContext is what a handler learns about its call besides the request: the caller's metadata, a signal that
 * fires when the client cancels (or the handler aborts the call), and the peer address.
 */
export interface CallContext {
  readonly metadata: grpc.Metadata;
  readonly signal: AbortSignal;
  readonly peer: string;
  /** method is the RPC's name, as in the proto ("Heartbeat"). */
  readonly method: string;
  /**
   * abort fires signal with reason, unless it fired already: a handler's own reasons to stop (a deadline it keeps, a
   * shutdown) then travel on the same signal as the client's cancel, and a call needs one AbortController, not two.
   */
  abort(reason: Error): void;
}

type UnaryHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  context: CallContext,
) => Promise<MessageInitShape<O>>;

type ServerStreamHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  context: CallContext,
) => AsyncIterable<MessageInitShape<O>>;

/**
 * GrpcImplementation maps each RPC of a generated service to its handler: unary RPCs return a promise, server
 * streams an async iterable (pulled only as fast as the client reads, so backpressure holds end to end).
 */
export type GrpcImplementation<S extends GenServiceMethods> = {
  [K in keyof S]: S[K]["methodKind"] extends "unary"
    ? UnaryHandler<S[K]["input"], S[K]["output"]>
    : S[K]["methodKind"] extends "server_streaming"
      ? ServerStreamHandler<S[K]["input"], S[K]["output"]>
      : never;
};

/** CallObserver hears how each call ended; metrics hang off it. */
export type CallObserver = (method: string, code: grpc.status, durationSeconds: number) => void;

/** ServiceBinding is a generated service with its handlers, as a server serves it. */
export interface ServiceBinding {
  readonly service: GenService<GenServiceMethods>;
  readonly add: (server: grpc.Server) => void;
}

/** bindService pairs a generated service with its handlers, and an observer of each call's end (metrics). */
export function bindService<S extends GenServiceMethods>(
  service: GenService<S>,
  implementation: GrpcImplementation<S>,
  observe: CallObserver = () => {},
): ServiceBinding {
  return {
    service: service as unknown as GenService<GenServiceMethods>,
    add: (server) => addGrpcService(server, service, implementation, observe),
  };
}

/** GrpcServerOptions configure a gRPC server. */
export interface GrpcServerOptions {
  readonly services: readonly ServiceBinding[];
  /** maxMessageBytes bounds a message either way; bigger ones fail with RESOURCE_EXHAUSTED. */
  readonly maxMessageBytes?: number;
  /** tls, when set, is the certificate chain and key the server serves TLS with; it serves plaintext HTTP/2 otherwise. */
  readonly tls?: ServerTls | undefined;
}

/** GrpcServer is a gRPC server ready to listen. */
export interface GrpcServer {
  /** listen binds "host:port" (port 0 for any), with TLS when the options give it, and resolves the bound port. */
  listen(address: string): Promise<number>;
  /** notServing tells health checkers the server is going away, before close() ends its calls. */
  notServing(): void;
  /**
   * close stops accepting calls, lets calls in flight finish for up to graceMs, then cuts the rest. It resolves once
   * the server is down, even when grpc-js misses the close of a session its peer tore down at the same moment.
   */
  close(graceMs: number): Promise<void>;
}

/** createGrpcServer builds a server of the given services, with grpc.health.v1 and server reflection beside them. */
export function createGrpcServer(options: GrpcServerOptions): GrpcServer {
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  // grpc-js servers answer keepalive pings at any rate, so clients may ping as often as they need to notice a dead
  // peer quickly.
  const server = new grpc.Server({ "grpc.max_receive_message_length": maxMessageBytes, "grpc.max_send_message_length": maxMessageBytes });
  const names = options.services.map((binding) => binding.service.typeName);
  for (const binding of options.services) binding.add(server);
  const health = new HealthImplementation(Object.fromEntries(["", ...names].map((name) => [name, "SERVING"])));
  health.addToServer(server);
  addReflection(
    server,
    options.services.map((binding) => binding.service),
  );
  // Clients are not asked for certificates: callers prove who they are with bearer tokens in metadata.
  const credentials = options.tls
    ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: options.tls.cert, private_key: options.tls.key }], false)
    : grpc.ServerCredentials.createInsecure();
  let bound = false;
  const notServing = () => {
    for (const name of ["", ...names]) health.setStatus(name, "NOT_SERVING");
  };
  return {
    listen(address) {
      return new Promise((resolve, reject) => {
        server.bindAsync(address, credentials, (error, port) => {
          if (!error) {
            bound = true;
            return resolve(port);
          }
          const reason = /EADDRINUSE/.test(error.message) ? "address already in use" : error.message;
          reject(new Error(`cannot listen on ${address}: ${reason}`, { cause: error }));
        });
      });
    },
    notServing,
    close(graceMs) {
      notServing();
      if (!bound) {
        server.forceShutdown();
        return Promise.resolve();
      }
      return new Promise((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}

/**
 * addGrpcService registers a protobuf-es service on a grpc-js server. Thrown ConnectErrors keep their code, which
 * gRPC numbers the same way.
 */
function addGrpcService<S extends GenServiceMethods>(
  server: grpc.Server,
  service: GenService<S>,
  implementation: GrpcImplementation<S>,
  observe: CallObserver,
): void {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  const handlers: Record<string, grpc.UntypedHandleCall> = {};
  for (const method of service.methods) {
    definition[method.name] = methodDefinition(service.typeName, method);
    const handler = (implementation as Record<string, unknown>)[method.localName];
    if (typeof handler !== "function") throw new Error(`${service.typeName}.${method.name} has no handler`);
    if (method.methodKind === "unary") {
      handlers[method.name] = unaryCall(method, handler as UnaryHandler<DescMessage, DescMessage>, observe);
    } else if (method.methodKind === "server_streaming") {
      handlers[method.name] = serverStreamCall(method, handler as ServerStreamHandler<DescMessage, DescMessage>, observe);
    } else {
      throw new Error(`${service.typeName}.${method.name}: ${method.methodKind} RPCs are not supported`);
    }
  }
  server.addService(definition, handlers);
}

function methodDefinition(serviceName: string, method: DescMethod): grpc.MethodDefinition<unknown, unknown> {
  return {
    path: `/${serviceName}/${method.name}`,
    requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
    requestSerialize: (message) => encode(method.input, message),
    requestDeserialize: (bytes: Buffer) => {
      try {
        return fromBinary(method.input, bytes);
      } catch (error) {
        return new UndecodableRequest(error instanceof Error ? error.message : String(error));
      }
    },
    responseSerialize: (message) => encode(method.output, message),
    responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
  };
}

/**
 * UndecodableRequest stands in for a request that is not a valid protobuf message, so that the call fails with
 * INVALID_ARGUMENT: grpc-js answers a deserializer's exception with INTERNAL.
 */
class UndecodableRequest {
  constructor(readonly reason: string) {}
}

/** checkDecoded throws INVALID_ARGUMENT for a request that did not decode. */
function checkDecoded(request: unknown, method: DescMethod): void {
  if (request instanceof UndecodableRequest) {
    throw new ConnectError(`the request is not a valid ${method.input.typeName}: ${request.reason}`, Code.InvalidArgument);
  }
}

function encode(schema: DescMessage, message: unknown): Buffer {
  const bytes = toBinary(schema, create(schema, message as MessageInitShape<DescMessage>));
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function unaryCall(
  method: DescMethod,
  handler: UnaryHandler<DescMessage, DescMessage>,
  observe: CallObserver,
): grpc.handleUnaryCall<MessageShape<DescMessage>, unknown> {
  return (call, callback) => {
    const started = process.hrtime.bigint();
    const { context, dispose } = callContext(call, method.name);
    const handle = async () => {
      checkDecoded(call.request, method);
      return handler(call.request, context);
    };
    handle().then(
      (response) => {
        dispose();
        observe(method.name, grpc.status.OK, secondsSince(started));
        callback(null, response);
      },
      (error: unknown) => {
        dispose();
        const serviceError = toServiceError(error);
        observe(method.name, serviceError.code, secondsSince(started));
        callback(serviceError);
      },
    );
  };
}

function serverStreamCall(
  method: DescMethod,
  handler: ServerStreamHandler<DescMessage, DescMessage>,
  observe: CallObserver,
): grpc.handleServerStreamingCall<MessageShape<DescMessage>, unknown> {
  return (call) => {
    const started = process.hrtime.bigint();
    const { context, dispose } = callContext(call, method.name);
    void (async () => {
      let code = grpc.status.OK;
      try {
        checkDecoded(call.request, method);
        for await (const message of handler(call.request, context)) {
          if (call.cancelled) break;
          if (!call.write(message)) await drained(call, context.signal);
        }
        if (call.cancelled) code = grpc.status.CANCELLED;
        else call.end();
      } catch (error) {
        const serviceError = toServiceError(error);
        code = serviceError.code;
        // grpc-js turns an 'error' event on a server stream into the call's status and ends it.
        if (!call.cancelled) call.emit("error", serviceError);
      } finally {
        dispose();
        observe(method.name, code, secondsSince(started));
      }
    })();
  };
}

function callContext(
  call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>,
  method: string,
): { context: CallContext; dispose: () => void } {
  const controller = new AbortController();
  const cancel = () => controller.abort(new ConnectError("call cancelled by the client", Code.Canceled));
  call.once("cancelled", cancel);
  const context: CallContext = {
    metadata: call.metadata,
    signal: controller.signal,
    peer: call.getPeer(),
    method,
    abort: (reason) => controller.abort(reason),
  };
  return { context, dispose: () => call.removeListener("cancelled", cancel) };
}

function drained(call: grpc.ServerWritableStream<unknown, unknown>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.removeListener("drain", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    call.once("drain", done);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** toServiceError keeps a ConnectError's code (gRPC's numbering) and hides every other error's internals. */
export function toServiceError(error: unknown): grpc.ServiceError {
  const connectError = error instanceof ConnectError ? error : undefined;
  const code = connectError ? (connectError.code as number as grpc.status) : grpc.status.INTERNAL;
  const details = connectError ? connectError.rawMessage : "internal error";
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

function secondsSince(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}
