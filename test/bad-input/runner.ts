import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { connect } from "node:net";
import { fromBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { InferResponseSchema } from "../../gen/infermesh/v1/inference_pb.js";
import { CSRF_HEADER, SESSION_COOKIE } from "../../services/gateway/session-cookie.js";
import type { ContextValue, CorpusContext, GrpcCase, GrpcTarget, HttpCase, HttpExpectation, RawHttpCase } from "./corpus-types.js";

/** CASE_TIMEOUT_MS bounds every case on the client side: a case that takes longer is a hang. */
export const CASE_TIMEOUT_MS = 15_000;
/** MAX_ERROR_BODY_BYTES bounds an error answer: the gateway must not echo a huge input back. */
export const MAX_ERROR_BODY_BYTES = 64 * 1024;
const MAX_READ_BYTES = 32 * 1024 * 1024;
/** CLOSED_WITHOUT_ANSWER is how a raw case ends when the gateway closes the connection without an HTTP/1.1 answer. */
const CLOSED_WITHOUT_ANSWER = "the connection closed without an answer";

/** HttpObserved is how an HTTP case ended: an answer, or no answer at all. */
export type HttpObserved =
  | { readonly kind: "answer"; readonly status: number; readonly headers: IncomingHttpHeaders; readonly body: Buffer }
  | { readonly kind: "no-answer"; readonly error: string };

/** GrpcObserved is how a gRPC case ended. */
export interface GrpcObserved {
  readonly code: grpc.status;
  readonly details: string;
  /** inBandStatus is the HTTP status in the first part of an Infer answer (head or error), if any. */
  readonly inBandStatus?: number;
}

/** resolved is a context value as this run makes it. */
export function resolved(value: ContextValue, context: CorpusContext): string {
  return typeof value === "string" ? value : value(context);
}

/** sendHttp sends a case with node:http on a fresh connection and reads the whole answer. */
export function sendHttp(baseUrl: string, testCase: HttpCase, context: CorpusContext): Promise<HttpObserved> {
  const url = new URL(baseUrl);
  const headers: Record<string, string | number> = { ...testCase.headers };
  const auth = testCase.auth;
  if (auth === "valid") headers.authorization = `Bearer ${context.apiKey}`;
  else if (auth !== "none" && "header" in auth) headers.authorization = resolved(auth.header, context);
  else if (auth !== "none" && "apiKeyHeader" in auth) headers["x-api-key"] = resolved(auth.apiKeyHeader, context);
  else if (auth !== "none") {
    headers.cookie = `${SESSION_COOKIE}=${resolved(auth.session, context)}`;
    if (auth.csrf !== undefined) headers[CSRF_HEADER] = resolved(auth.csrf, context);
    if (auth.authorization !== undefined) headers.authorization = resolved(auth.authorization, context);
  }
  const body = testCase.body?.(context);
  if (body) headers["content-length"] = body.length;
  return new Promise((resolve) => {
    let settled = false;
    let answered = false;
    const settle = (observed: HttpObserved) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(observed);
    };
    const req = httpRequest(
      { host: url.hostname, port: url.port, method: testCase.method, path: resolved(testCase.path, context), headers, agent: false },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size <= MAX_READ_BYTES) chunks.push(chunk);
        });
        const done = () => settle({ kind: "answer", status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
        res.once("end", done);
        res.once("close", done);
        res.once("error", done);
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      settle({ kind: "no-answer", error: `no answer within ${CASE_TIMEOUT_MS} ms` });
    }, CASE_TIMEOUT_MS);
    // The server may answer (413, 401) and close before the whole body is written: the answer is what counts.
    req.on("error", (error) => {
      if (!answered) settle({ kind: "no-answer", error: error.message });
    });
    req.end(body);
  });
}

/**
 * sendRaw writes a case's bytes to a fresh socket and parses the first final HTTP answer. It never half-closes: Node's
 * server aborts a request whose client has sent FIN, so that would race the answer.
 */
export function sendRaw(baseUrl: string, testCase: RawHttpCase, context: CorpusContext): Promise<HttpObserved> {
  const url = new URL(baseUrl);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const socket = connect({ host: url.hostname, port: Number(url.port) });
    const settle = (observed: HttpObserved) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(observed);
    };
    const timer = setTimeout(
      () => settle(parseAnswer(Buffer.concat(chunks)) ?? { kind: "no-answer", error: `no answer within ${CASE_TIMEOUT_MS} ms` }),
      CASE_TIMEOUT_MS,
    );
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      const answer = parseAnswer(Buffer.concat(chunks), false);
      if (answer) settle(answer);
    });
    socket.on("error", () => {});
    socket.on("close", () => settle(parseAnswer(Buffer.concat(chunks)) ?? { kind: "no-answer", error: CLOSED_WITHOUT_ANSWER }));
    socket.write(testCase.bytes(context));
  });
}

/**
 * parseAnswer reads the first final (non-1xx) answer in raw bytes; with complete false it returns an answer only once
 * its body is all there (by Content-Length or chunked framing).
 */
function parseAnswer(raw: Buffer, closed = true): HttpObserved | undefined {
  let offset = 0;
  for (;;) {
    const end = raw.indexOf("\r\n\r\n", offset);
    if (end === -1) return undefined;
    const lines = raw.toString("latin1", offset, end).split("\r\n");
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "")?.[1] ?? 0);
    const headers: IncomingHttpHeaders = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    offset = end + 4;
    if (status >= 100 && status < 200) continue;
    const rest = raw.subarray(offset);
    const length = headers["content-length"];
    if (length !== undefined) {
      if (rest.length < Number(length)) return closed ? { kind: "answer", status, headers, body: rest } : undefined;
      return { kind: "answer", status, headers, body: rest.subarray(0, Number(length)) };
    }
    if (headers["transfer-encoding"] === "chunked") {
      const body = dechunk(rest);
      return body ? { kind: "answer", status, headers, body } : closed ? { kind: "answer", status, headers, body: rest } : undefined;
    }
    return closed ? { kind: "answer", status, headers, body: rest } : undefined;
  }
}

function dechunk(raw: Buffer): Buffer | undefined {
  const chunks: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const line = raw.indexOf("\r\n", offset);
    if (line === -1) return undefined;
    const size = Number.parseInt(raw.toString("latin1", offset, line), 16);
    if (Number.isNaN(size)) return undefined;
    if (size === 0) return Buffer.concat(chunks);
    if (raw.length < line + 2 + size) return undefined;
    chunks.push(raw.subarray(line + 2, line + 2 + size));
    offset = line + 2 + size + 2;
  }
}

/** GrpcClients are generic clients, one per server, that send and receive raw bytes. */
export class GrpcClients {
  readonly #clients = new Map<GrpcTarget, grpc.Client>();

  constructor(addresses: Readonly<Record<GrpcTarget, string>>) {
    for (const [target, address] of Object.entries(addresses) as [GrpcTarget, string][]) {
      this.#clients.set(target, new grpc.Client(address, grpc.credentials.createInsecure(), { "grpc.max_receive_message_length": -1 }));
    }
  }

  /** send calls the case's method with its bytes and resolves how the call ended. */
  send(testCase: GrpcCase, context: CorpusContext): Promise<GrpcObserved> {
    const client = this.#clients.get(testCase.target) as grpc.Client;
    const metadata = new grpc.Metadata();
    const header = credentialHeader(testCase.credential, context);
    if (header !== undefined) metadata.set("authorization", header);
    for (const [key, value] of testCase.extraMetadata?.(context) ?? []) metadata.add(key, value);
    const identity = (bytes: Buffer) => bytes;
    const message = testCase.message(context);
    const deadline = Date.now() + CASE_TIMEOUT_MS;
    if (testCase.methodKind === "bidi_streaming") {
      return new Promise((resolve) => {
        const call = client.makeBidiStreamRequest(testCase.path, identity, identity, metadata, { deadline });
        // The client says no more once the server has answered its message; a server that ends the call first wins.
        call.on("data", () => call.end());
        call.on("error", () => {});
        call.on("status", (status: grpc.StatusObject) => resolve({ code: status.code, details: status.details }));
        call.write(message);
      });
    }
    if (testCase.methodKind === "unary") {
      return new Promise((resolve) => {
        client.makeUnaryRequest(testCase.path, identity, identity, message, metadata, { deadline }, (error) => {
          resolve(error ? { code: error.code, details: error.details } : { code: grpc.status.OK, details: "" });
        });
      });
    }
    return new Promise((resolve) => {
      const call = client.makeServerStreamRequest(testCase.path, identity, identity, message, metadata, { deadline });
      let inBandStatus: number | undefined;
      let first = true;
      call.on("data", (bytes: Buffer) => {
        if (!first) return;
        first = false;
        const part = fromBinary(InferResponseSchema, bytes).part?.part;
        if (part?.case === "head") inBandStatus = part.value.status;
        else if (part?.case === "error") inBandStatus = part.value.httpStatus;
      });
      call.on("error", () => {});
      call.on("status", (status: grpc.StatusObject) =>
        resolve({ code: status.code, details: status.details, ...(inBandStatus === undefined ? {} : { inBandStatus }) }),
      );
    });
  }

  close(): void {
    for (const client of this.#clients.values()) client.close();
  }
}

function credentialHeader(credential: GrpcCase["credential"], context: CorpusContext): string | undefined {
  switch (credential) {
    case "none":
      return undefined;
    case "user":
      return `Bearer ${context.apiKey}`;
    case "other-user":
      return `Bearer ${context.otherKey}`;
    case "mesh":
      return `Bearer ${context.meshToken}`;
    default:
      return credential.header;
  }
}

/** httpProblems lists how an HTTP answer misses its expectation; empty when it meets it. */
export function httpProblems(method: string, observed: HttpObserved, expect: HttpExpectation): string[] {
  if (expect.closed) {
    if (observed.kind === "no-answer" && observed.error === CLOSED_WITHOUT_ANSWER) return [];
    return [
      observed.kind === "answer" ? `an HTTP/1.1 answer ${observed.status}, expected the connection closed` : `no answer: ${observed.error}`,
    ];
  }
  if (observed.kind === "no-answer") return [`no answer: ${observed.error}`];
  const problems: string[] = [];
  if (observed.status !== expect.status) problems.push(`status ${observed.status}, expected ${expect.status}`);
  if (observed.status >= 500) problems.push(`a 5xx (${observed.status})`);
  if (observed.status < 400 || method === "HEAD" || expect.bare) return problems;
  const contentType = String(observed.headers["content-type"] ?? "");
  if (!contentType.startsWith("application/json")) problems.push(`content type '${contentType}', expected application/json`);
  if (observed.body.length > MAX_ERROR_BODY_BYTES) problems.push(`an error body of ${observed.body.length} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(observed.body.toString("utf8"));
  } catch {
    return [...problems, `a body that is not JSON: ${snippet(observed.body)}`];
  }
  if (expect.envelope === "anthropic") return [...problems, ...anthropicProblems(parsed, observed, expect)];
  const error = (parsed as { error?: Record<string, unknown> } | null)?.error;
  const keys = parsed !== null && typeof parsed === "object" ? Object.keys(parsed) : [];
  if (keys.length !== 1 || !error || typeof error !== "object") return [...problems, `not OpenAI's envelope: ${snippet(observed.body)}`];
  if (Object.keys(error).sort().join() !== "code,message,param,type") problems.push(`envelope keys ${Object.keys(error).sort().join()}`);
  if (typeof error.message !== "string" || error.message === "") problems.push("no message");
  if (typeof error.type !== "string") problems.push("no type");
  if (error.param !== null && typeof error.param !== "string") problems.push("param neither string nor null");
  if (error.code !== null && typeof error.code !== "string") problems.push("code neither string nor null");
  if (expect.type !== undefined && error.type !== expect.type) problems.push(`type '${String(error.type)}', expected '${expect.type}'`);
  if (expect.code !== undefined && error.code !== expect.code)
    problems.push(`code '${String(error.code)}', expected '${String(expect.code)}'`);
  if (expect.param !== undefined && error.param !== expect.param)
    problems.push(`param '${String(error.param)}', expected '${String(expect.param)}'`);
  if (problems.length > 0) problems.push(`body: ${snippet(observed.body)}`);
  return problems;
}

/**
 * anthropicProblems lists how a parsed body misses Anthropic's envelope, `{"type":"error","error":{"type","message"},
 * "request_id"}`, with the expected type and the request id the answer's X-Request-Id header gives.
 */
function anthropicProblems(parsed: unknown, observed: HttpObserved & { kind: "answer" }, expect: HttpExpectation): string[] {
  const body = parsed as { type?: unknown; error?: Record<string, unknown>; request_id?: unknown } | null;
  const keys = body !== null && typeof body === "object" ? Object.keys(body).sort().join() : "";
  if (keys !== "error,request_id,type" || body?.type !== "error" || !body.error || typeof body.error !== "object") {
    return [`not Anthropic's envelope: ${snippet(observed.body)}`];
  }
  const problems: string[] = [];
  if (Object.keys(body.error).sort().join() !== "message,type") problems.push(`error keys ${Object.keys(body.error).sort().join()}`);
  if (typeof body.error.message !== "string" || body.error.message === "") problems.push("no message");
  if (expect.type !== undefined && body.error.type !== expect.type)
    problems.push(`type '${String(body.error.type)}', expected '${expect.type}'`);
  if (typeof body.request_id !== "string" || body.request_id !== observed.headers["x-request-id"]) {
    problems.push(`request_id '${String(body.request_id)}', not the X-Request-Id '${String(observed.headers["x-request-id"])}'`);
  }
  if (problems.length > 0) problems.push(`body: ${snippet(observed.body)}`);
  return problems;
}

/** grpcProblems lists how a gRPC outcome misses its expectation. */
export function grpcProblems(
  observed: GrpcObserved,
  expect: { readonly code: grpc.status | readonly grpc.status[]; readonly inBandStatus?: number | undefined },
): string[] {
  const codes: readonly grpc.status[] = typeof expect.code === "number" ? [expect.code] : expect.code;
  const problems: string[] = [];
  if (!codes.includes(observed.code)) {
    problems.push(
      `code ${grpc.status[observed.code]} (${observed.details.slice(0, 200)}), expected ${codes.map((c) => grpc.status[c]).join(" or ")}`,
    );
  }
  if (expect.inBandStatus !== undefined && observed.inBandStatus !== expect.inBandStatus) {
    problems.push(`in-band status ${String(observed.inBandStatus)}, expected ${expect.inBandStatus}`);
  }
  return problems;
}

function snippet(body: Buffer): string {
  const text = body.toString("utf8");
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}
