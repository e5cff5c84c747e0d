import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, DescMethod, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";

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

/**
 * addGrpcService registers a protobuf-es service on a grpc-js server. grpc-js does the HTTP/2 work (it is several
 * times cheaper per call than connect-node's server here); protobuf-es does the encoding, so the whole mesh shares
 * one set of generated types. Thrown ConnectErrors keep their code, which gRPC numbers the same way.
 */
export function addGrpcService<S extends GenServiceMethods>(
  server: grpc.Server,
  service: GenService<S>,
  implementation: GrpcImplementation<S>,
  observe: CallObserver = () => {},
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
