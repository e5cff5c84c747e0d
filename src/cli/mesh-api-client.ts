import { Agent, fetch, type RequestInit, type Response } from "undici";
import { tlsFailureHint } from "../../services/shared/tls-files.js";
import type { MeshApiAccess } from "./mesh-api-flags.js";

/** DEFAULT_API_TIMEOUT_MS bounds one call to the mesh's HTTP API, answer included. */
export const DEFAULT_API_TIMEOUT_MS = 30_000;

/** MeshApiError is a call the mesh refused, or could not answer; its message is one line fit to print as it is. */
export class MeshApiError extends Error {
  override readonly name = "MeshApiError";

  /** status is the HTTP status of the answer; undefined when there was none. */
  constructor(
    message: string,
    readonly status: number | undefined,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** MeshApiClient calls the mesh's control-plane API (/api/...) as one user, with their API key. */
export interface MeshApiClient {
  /** call sends one request and resolves to the answer's JSON body; an error answer rejects with a MeshApiError. */
  call<T>(method: "GET" | "POST" | "PUT", path: string, body?: unknown): Promise<T>;
  /** close releases the connections a CA of its own needed. */
  close(): Promise<void>;
}

/** MeshApiClientOptions configure createMeshApiClient. */
export interface MeshApiClientOptions extends MeshApiAccess {
  readonly timeoutMs?: number;
}

/**
 * createMeshApiClient calls the API with undici's fetch (Node's, from the undici release this package pins, so that
 * its Agent fits it), through a connection pool of its own that trusts `ca` when the user gave a CA file
 * (NODE_EXTRA_CA_CERTS needs none: Node's trust store includes it). The key goes as a bearer token, as OpenAI clients
 * send it.
 */
export function createMeshApiClient(options: MeshApiClientOptions): MeshApiClient {
  const timeoutMs = options.timeoutMs ?? DEFAULT_API_TIMEOUT_MS;
  const dispatcher = options.ca === undefined ? undefined : new Agent({ connect: { ca: [...options.ca] } });
  return {
    async call<T>(method: "GET" | "POST" | "PUT", path: string, body?: unknown): Promise<T> {
      const url = `${options.baseUrl}${path}`;
      const what = `${method} ${path.split("?")[0]}`;
      const headers: Record<string, string> = { authorization: `Bearer ${options.apiKey}`, accept: "application/json" };
      if (body !== undefined) headers["content-type"] = "application/json";
      let response: Response;
      let text: string;
      try {
        const init: RequestInit = {
          method,
          headers,
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          signal: AbortSignal.timeout(timeoutMs),
          ...(dispatcher === undefined ? {} : { dispatcher }),
        };
        response = await fetch(url, init);
        text = await response.text();
      } catch (error) {
        throw new MeshApiError(`cannot reach the mesh at ${options.baseUrl}: ${unreachableReason(error, timeoutMs)}`, undefined, {
          cause: error,
        });
      }
      const parsed = parseJson(text);
      if (!response.ok) throw new MeshApiError(refusal(response, what, parsed), response.status);
      if (parsed === undefined) {
        throw new MeshApiError(`the mesh at ${options.baseUrl} answered ${what} with something other than JSON`, response.status);
      }
      return parsed as T;
    },
    async close(): Promise<void> {
      await dispatcher?.close();
    },
  };
}

/** callMeshApi makes one call with a client of its own, closed after it. */
export async function callMeshApi<T>(access: MeshApiAccess, method: "GET" | "POST" | "PUT", path: string, body?: unknown): Promise<T> {
  const client = createMeshApiClient(access);
  try {
    return await client.call<T>(method, path, body);
  } finally {
    await client.close();
  }
}

/** refusal is an error answer in one line: the OpenAI error envelope's message, else the status. */
function refusal(response: Response, what: string, body: unknown): string {
  const error = (body as { error?: { message?: unknown } } | undefined)?.error;
  const status = `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}`;
  if (typeof error?.message === "string" && error.message.trim() !== "") return `${oneLine(error.message)} (${status})`;
  return `${what} answered ${status}`;
}

/** unreachableReason says why no answer came: a timeout, a TLS failure in words, or the network error's code. */
function unreachableReason(error: unknown, timeoutMs: number): string {
  if (error instanceof DOMException && error.name === "TimeoutError") return `no answer within ${timeoutMs} ms`;
  const tls = tlsFailureHint(error);
  if (tls !== undefined) return tls;
  let cause: unknown = error;
  while (cause instanceof Error && cause.cause instanceof Error) cause = cause.cause;
  const code = (cause as NodeJS.ErrnoException).code;
  const message = cause instanceof Error ? cause.message : String(cause);
  return oneLine(code !== undefined && !message.includes(code) ? `${code}: ${message}` : message);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").trim();
}
