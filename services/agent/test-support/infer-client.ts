import * as grpc from "@grpc/grpc-js";
import { bearer, loadStockPackage, type StockClient, stockClient } from "../../../test/support/stock-grpc-client.js";
import { MEDIA_MAX_MESSAGE_BYTES } from "../../shared/grpc/message-limits.js";

/** StockPart is an InferencePart as a stock proto-loader client decodes it (oneofs: true, bytes as Buffer). */
export interface StockPart {
  readonly part: "head" | "data" | "event" | "trailer" | "error";
  readonly head?: { status: number; contentType: string };
  readonly data?: Buffer;
  readonly event?: { data: Buffer; event: string };
  readonly trailer?: {
    usage: {
      promptTokens: number;
      completionTokens: number;
      totalTokens: number;
      cachedPromptTokens: number;
      reasoningTokens: number;
    } | null;
    finishReasons: string[];
  };
  readonly error?: { kind: string; type: string; message: string; httpStatus: number; code: string; param: string };
}

/** StockMediaFile is a MediaFile in proto-loader's form (role by enum name). */
export interface StockMediaFile {
  readonly role: "MEDIA_ROLE_AUDIO" | "MEDIA_ROLE_IMAGE" | "MEDIA_ROLE_MASK";
  readonly filename: string;
  readonly contentType: string;
  readonly data: Buffer;
}

/** StockCall is an InferenceCall in proto-loader's JSON-ish form. */
export interface StockCall {
  readonly operation?: string;
  readonly model: string;
  readonly stream?: boolean;
  readonly requestId?: string;
  readonly body: Buffer;
  readonly deadline?: { seconds: string; nanos: number };
  readonly media?: readonly StockMediaFile[];
}

/** InferResult is how an Infer call ended: its parts and its gRPC status. */
export interface InferResult {
  readonly parts: StockPart[];
  readonly status: grpc.StatusObject;
}

/** OpenInfer is an Infer call under way. */
export interface OpenInfer {
  readonly call: grpc.ClientReadableStream<{ part: StockPart }>;
  readonly parts: StockPart[];
  readonly done: Promise<InferResult>;
}

/** agentClient makes a stock grpc-js AgentService client, as any gateway written against the protos would have. */
export function agentClient(address: string): StockClient {
  return stockClient("AgentService", address);
}

/**
 * mediaAgentClient is agentClient with the gateway's media message limit, for answers whose single events (a partial
 * image in base64) exceed gRPC's default 4 MiB.
 */
export function mediaAgentClient(address: string): StockClient {
  const ctor = loadStockPackage()["AgentService"] as grpc.ServiceClientConstructor;
  return new ctor(address, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": MEDIA_MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MEDIA_MAX_MESSAGE_BYTES,
  }) as unknown as StockClient;
}

/** openInfer starts an Infer call with `authorization: Bearer <token>` (none when token is undefined). */
export function openInfer(client: StockClient, call: StockCall, token: string | undefined, options: grpc.CallOptions = {}): OpenInfer {
  const request = { call: { operation: "OPERATION_CHAT_COMPLETION", requestId: "req-test", ...call } };
  const stream = (
    client.infer as (r: object, m: grpc.Metadata, o: grpc.CallOptions) => grpc.ClientReadableStream<{ part: StockPart }>
  ).call(client, request, bearer(token), options);
  const parts: StockPart[] = [];
  stream.on("data", (response: { part: StockPart | null; parts: StockPart[] }) => {
    if (response.part) parts.push(response.part);
    else parts.push(...response.parts);
  });
  stream.on("error", () => {});
  // grpc-js emits "status" as soon as the trailers arrive, while the last messages may still wait in the stream's
  // buffer: the call is done once the stream has closed too, every part delivered.
  const done = new Promise<InferResult>((resolve) => {
    let status: grpc.StatusObject | undefined;
    let closed = false;
    const settle = () => {
      if (status !== undefined && closed) resolve({ parts, status });
    };
    stream.on("status", (received: grpc.StatusObject) => {
      status = received;
      settle();
    });
    stream.on("close", () => {
      closed = true;
      settle();
    });
  });
  return { call: stream, parts, done };
}

/** infer runs an Infer call to its end. */
export function infer(client: StockClient, call: StockCall, token: string | undefined, options?: grpc.CallOptions): Promise<InferResult> {
  return openInfer(client, call, token, options).done;
}

/** chatBody is a chat request body naming model. */
export function chatBody(model: string, extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(JSON.stringify({ model, messages: [{ role: "user", content: "hello" }], ...extra }));
}
