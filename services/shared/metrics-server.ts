import { createServer, type RequestListener, type Server } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import type { ServerTls } from "./tls-files.js";

/** MetricsServer serves one prom-client registry at GET /metrics. */
export interface MetricsServer {
  listen(host: string, port: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * createMetricsServer builds the small HTTP server that Prometheus scrapes; with tls, it serves HTTPS, so that a
 * service that serves TLS serves it on every port it listens on (Prometheus scrapes it with `scheme: https`).
 */
export function createMetricsServer(registry: Registry, tls?: ServerTls): MetricsServer {
  const serve: RequestListener = (request, response) => {
    const path = request.url?.split("?")[0];
    if (request.method !== "GET" || path !== "/metrics") {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { "content-type": registry.contentType }).end(text),
      (error: unknown) => response.writeHead(500, { "content-type": "text/plain" }).end(`${String(error)}\n`),
    );
  };
  const server: Server = tls ? createTlsServer({ cert: tls.cert, key: tls.key }, serve) : createServer(serve);
  return {
    listen: (host, port) =>
      new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve((server.address() as AddressInfo).port);
        });
      }),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
