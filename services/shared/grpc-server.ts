import * as grpc from "@grpc/grpc-js";

/** DEFAULT_MAX_MESSAGE_BYTES bounds a received gRPC message; bigger ones fail with RESOURCE_EXHAUSTED. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** MEDIA_MAX_MESSAGE_BYTES bounds Infer messages, which carry uploads (25 MiB by default) as bytes. */
export const MEDIA_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** createGrpcServer makes a grpc-js server with the mesh's message size limits. */
export function createGrpcServer(maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES): grpc.Server {
  // grpc-js servers answer keepalive pings at any rate, so clients may ping as often as they need to notice a
  // dead peer quickly.
  return new grpc.Server({
    "grpc.max_receive_message_length": maxMessageBytes,
    "grpc.max_send_message_length": maxMessageBytes,
  });
}

/** bindGrpcServer listens on "host:port" (port 0 picks a free one) without TLS and resolves the bound port. */
export function bindGrpcServer(server: grpc.Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, port) => {
      if (!error) return resolve(port);
      const reason = /EADDRINUSE/.test(error.message) ? "address already in use" : error.message;
      reject(new Error(`cannot listen on ${address}: ${reason}`, { cause: error }));
    });
  });
}

/**
 * shutdownGrpcServer stops accepting calls, lets calls in flight finish for up to graceMs, then cuts the rest, so
 * that no HTTP/2 session outlives the server. It resolves once the server is down even when grpc-js misses the close
 * of a session that its peer tore down at the same moment (its tryShutdown then never calls back).
 */
export function shutdownGrpcServer(server: grpc.Server, graceMs: number): Promise<void> {
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
}
