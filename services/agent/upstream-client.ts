import { type Dispatcher, type FormData, Pool } from "undici";

/** CONNECT_TIMEOUT_MS bounds a TCP (and TLS) connect to a local server; a healthy one answers in milliseconds. */
const CONNECT_TIMEOUT_MS = 10_000;

/** UpstreamClientOptions configures an UpstreamClient. */
export interface UpstreamClientOptions {
  /** url is the server's base URL without a trailing slash; request paths are appended to it. */
  readonly url: string;
  /** apiKey is sent as `Authorization: Bearer` when set. */
  readonly apiKey: string | undefined;
  /** connections caps the kept-alive connections to the server. */
  readonly connections: number;
  /** timeoutMs is the longest wait for response headers (a long prompt can take minutes to process). */
  readonly timeoutMs: number;
  /**
   * idleTimeoutMs is the longest silence between two pieces of a body once it started: a model server that froze
   * mid-answer fails its calls instead of holding them until the request deadline.
   */
  readonly idleTimeoutMs?: number;
}

/** UpstreamResponse is a server's status, content type and unread body. */
export interface UpstreamResponse {
  readonly status: number;
  /** contentType is the Content-Type header, "" when absent. */
  readonly contentType: string;
  readonly body: Dispatcher.ResponseData["body"];
}

/** RequestOptions are per-request settings. */
export interface RequestOptions {
  readonly signal: AbortSignal;
  /** requestId goes out as x-request-id so the server's logs can be matched with the mesh's. */
  readonly requestId?: string;
  /** timeoutMs overrides the client's timeout for this request. */
  readonly timeoutMs?: number;
}

/** DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS bounds the silence between two pieces of an upstream answer. */
export const DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS = 60_000;

/**
 * UpstreamClient talks HTTP to one local model server over a pool of kept-alive connections (undici), so a busy
 * agent does not pay a TCP handshake per request. It never follows redirects and never retries: a POST to a model
 * server is not idempotent.
 */
export class UpstreamClient {
  readonly url: string;
  readonly #pool: Pool;
  readonly #basePath: string;
  readonly #authorization: string | undefined;
  readonly #idleTimeoutMs: number;

  constructor(options: UpstreamClientOptions) {
    const url = new URL(options.url);
    this.url = options.url;
    this.#basePath = url.pathname === "/" ? "" : url.pathname;
    this.#authorization = options.apiKey === undefined ? undefined : `Bearer ${options.apiKey}`;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS;
    this.#pool = new Pool(url.origin, {
      connections: options.connections,
      headersTimeout: options.timeoutMs,
      bodyTimeout: Math.min(options.timeoutMs, this.#idleTimeoutMs),
      connect: { timeout: CONNECT_TIMEOUT_MS },
    });
  }

  /** get sends a GET to the base URL plus path. */
  get(path: string, options: RequestOptions): Promise<UpstreamResponse> {
    return this.#request("GET", path, undefined, options);
  }

  /** postJson sends body, as is, as a JSON POST to the base URL plus path. */
  postJson(path: string, body: Uint8Array, options: RequestOptions): Promise<UpstreamResponse> {
    return this.#request("POST", path, Buffer.from(body.buffer, body.byteOffset, body.byteLength), options);
  }

  /**
   * postForm sends form as a multipart/form-data POST to the base URL plus path; undici writes the boundary, the
   * WHATWG escapes of file names and the Content-Length.
   */
  postForm(path: string, form: FormData, options: RequestOptions): Promise<UpstreamResponse> {
    return this.#request("POST", path, form, options);
  }

  /** close cuts every connection; requests still running fail. */
  close(): Promise<void> {
    return this.#pool.destroy();
  }

  async #request(
    method: "GET" | "POST",
    path: string,
    body: Buffer | FormData | undefined,
    options: RequestOptions,
  ): Promise<UpstreamResponse> {
    const headers: Record<string, string> = {};
    if (Buffer.isBuffer(body)) headers["content-type"] = "application/json";
    if (options.requestId) headers["x-request-id"] = options.requestId;
    if (this.#authorization !== undefined) headers["authorization"] = this.#authorization;
    const response = await this.#pool.request({
      method,
      path: `${this.#basePath}${path}`,
      headers,
      body: body ?? null,
      signal: options.signal,
      ...(options.timeoutMs === undefined
        ? {}
        : { headersTimeout: options.timeoutMs, bodyTimeout: Math.min(options.timeoutMs, this.#idleTimeoutMs) }),
    });
    const contentType = response.headers["content-type"];
    return {
      status: response.statusCode,
      contentType: (Array.isArray(contentType) ? contentType[0] : contentType) ?? "",
      body: response.body,
    };
  }
}

/** BodyTooLargeError says a response body exceeded the bytes its reader accepts. */
export class BodyTooLargeError extends Error {
  override readonly name = "BodyTooLargeError";
}

/** readBody reads a whole response body, refusing (and discarding the rest of) one larger than maxBytes. */
export async function readBody(body: UpstreamResponse["body"], maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      body.destroy();
      throw new BodyTooLargeError(`the answer is larger than ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
}

/** mediaType is a Content-Type without its parameters, lower case: "text/event-stream; charset=utf-8" -> "text/event-stream". */
export function mediaType(contentType: string): string {
  // Every answer passes through here: slice instead of split, and trim and toLowerCase return an already clean
  // string itself, so the common "application/json" costs no allocation.
  const end = contentType.indexOf(";");
  return (end === -1 ? contentType : contentType.slice(0, end)).trim().toLowerCase();
}
