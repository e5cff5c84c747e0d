import { EventSourceParserStream } from "eventsource-parser/stream";
import { ApiError, call } from "./api.js";

/** ChatMessage is one message of a conversation, as POST /v1/chat/completions takes it. */
export interface ChatMessage {
  readonly role: "system" | "user" | "assistant";
  readonly content: string;
}

/** ChatUsage is the token count a stream's last chunk reports. */
export interface ChatUsage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
}

/** ChatStreamEvent is what a streamed answer brings: more text (and reasoning), or the usage at its end. */
export type ChatStreamEvent =
  | { readonly kind: "delta"; readonly content: string; readonly reasoning: string }
  | { readonly kind: "usage"; readonly usage: ChatUsage };

/**
 * streamChat posts a streamed chat completion and yields the answer as it arrives. A refused call throws the
 * gateway's ApiError before any event; aborting the signal ends the fetch, and with it the call at the model server.
 */
export async function* streamChat(model: string, messages: readonly ChatMessage[], signal: AbortSignal): AsyncGenerator<ChatStreamEvent> {
  const response = await call("/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    // The gateway counts usage anyway; asking for it here lets the page say how fast the answer came.
    body: JSON.stringify({ model, messages, stream: true, stream_options: { include_usage: true } }),
    signal,
  });
  if (!response.body) throw new ApiError(response.status, "The gateway's answer had no body.", undefined);
  yield* chatStreamEvents(response.body, response.status);
}

/**
 * chatStreamEvents reads the server-sent events of a chat completion stream. An `error` frame, the mesh's way of
 * reporting a failure once the answer has begun, throws an ApiError after the text that came before it.
 */
export async function* chatStreamEvents(body: ReadableStream<Uint8Array<ArrayBuffer>>, status: number): AsyncGenerator<ChatStreamEvent> {
  const events = body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream()).getReader();
  let failure: ApiError | undefined;
  for (;;) {
    const { done, value } = await events.read();
    if (done) break;
    // Reading on to the end after an error frame lets the request finish instead of being cut by the page.
    if (failure !== undefined || value.data === "[DONE]") continue;
    const frame = objectOf(parseJson(value.data));
    const error = objectOf(frame?.["error"]);
    if (frame === undefined || error !== undefined) {
      failure = streamFailure(error, status);
      continue;
    }
    const delta = objectOf(objectOf(arrayOf(frame["choices"])?.[0])?.["delta"]);
    const content = textOf(delta?.["content"]);
    const reasoning = textOf(delta?.["reasoning_content"]);
    if (content !== "" || reasoning !== "") yield { kind: "delta", content, reasoning };
    const usage = objectOf(frame["usage"]);
    const completionTokens = usage?.["completion_tokens"];
    if (typeof completionTokens === "number") {
      const promptTokens = usage?.["prompt_tokens"];
      yield {
        kind: "usage",
        usage: { prompt_tokens: typeof promptTokens === "number" ? promptTokens : 0, completion_tokens: completionTokens },
      };
    }
  }
  if (failure !== undefined) throw failure;
}

function streamFailure(error: Readonly<Record<string, unknown>> | undefined, status: number): ApiError {
  if (error === undefined) return new ApiError(status, "The answer stream sent something that is not JSON.", undefined);
  const message = textOf(error["message"]) || "The answer failed midway.";
  const code = error["code"];
  return new ApiError(status, message, typeof code === "string" ? code : undefined);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function objectOf(value: unknown): Readonly<Record<string, unknown>> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Readonly<Record<string, unknown>>) : undefined;
}

function arrayOf(value: unknown): readonly unknown[] | undefined {
  return Array.isArray(value) ? value : undefined;
}

function textOf(value: unknown): string {
  return typeof value === "string" ? value : "";
}
