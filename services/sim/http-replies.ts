import type { ServerResponse } from "node:http";
import type { LlamaError } from "./llama-errors.js";

/**
 * sendJson answers a whole JSON body with llama-server's headers, in its order. Error answers carry
 * `Connection: close`, as llama-server's (cpp-httplib's) do, so a client's pooled connection is gone afterwards.
 */
export function sendJson(res: ServerResponse, status: number, body: string): void {
  const headers: Record<string, string | number> = {
    Server: "llama.cpp",
    "Access-Control-Allow-Origin": "",
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(body),
  };
  if (status >= 400) headers["Connection"] = "close";
  res.writeHead(status, headers);
  res.end(body);
}

/** sendError answers a llama-server error. */
export function sendError(res: ServerResponse, error: LlamaError): void {
  sendJson(res, error.status, error.body);
}
