import type { TrailerInit } from "./answer-summary.js";
import type { FormParts } from "./multipart-form.js";
import type { SseEvent } from "./sse-parser.js";

/**
 * TranslatedAnswer is what a native server's answer becomes for an OpenAI client: a body with its status and content
 * type, a stream of events (for a client that asked to stream from a server that cannot), or a failure of the server
 * (the client gets 502 upstream_error).
 */
export type TranslatedAnswer =
  | {
      readonly kind: "body";
      readonly status: number;
      readonly contentType: string;
      readonly body: Uint8Array;
      readonly trailer?: TrailerInit;
    }
  | { readonly kind: "events"; readonly events: readonly SseEvent[]; readonly trailer?: TrailerInit }
  | { readonly kind: "failed"; readonly message: string };

/** NativeBody is a native request's body: a multipart form or a JSON value. */
export type NativeBody = { readonly kind: "form"; readonly form: FormParts } | { readonly kind: "json"; readonly json: unknown };

/** NativeAnswerContext is what reading a native answer may need besides the answer itself. */
export interface NativeAnswerContext {
  /** nowMs is the time the answer arrived, for fields such as OpenAI's `created`. */
  readonly nowMs: number;
}

/**
 * NativeRequest is an OpenAI call translated for a native server: the body to POST, and how to read the server's
 * complete answer (2xx or 4xx; 5xx and transport failures are handled before it is consulted).
 */
export interface NativeRequest {
  readonly body: NativeBody;
  readonly answer: (status: number, contentType: string, body: Buffer, context: NativeAnswerContext) => TranslatedAnswer;
}

/** JSON_CONTENT_TYPE is the content type of the JSON bodies the agent writes itself. */
export const JSON_CONTENT_TYPE = "application/json";

/** jsonAnswer is a JSON body the agent wrote, with the status it goes out with. */
export function jsonAnswer(value: unknown, status = 200, trailer?: TrailerInit): TranslatedAnswer {
  const body = Buffer.from(JSON.stringify(value), "utf8");
  return trailer === undefined
    ? { kind: "body", status, contentType: JSON_CONTENT_TYPE, body }
    : { kind: "body", status, contentType: JSON_CONTENT_TYPE, body, trailer };
}

/**
 * invalidRequestAnswer is a 400 in OpenAI's error envelope: the client's request cannot be served as asked, by the
 * agent's own reading or by the native server's.
 */
export function invalidRequestAnswer(message: string, param?: string): TranslatedAnswer {
  return jsonAnswer({ error: { message, type: "invalid_request_error", param: param ?? null, code: null } }, 400);
}

/**
 * Translation is a translated call: the request for the native server, or an answer the agent gives at once (the
 * call asks for something the server cannot do).
 */
export type Translation = NativeRequest | TranslatedAnswer;

/** failedAnswer says the native server failed to answer properly; message continues a sentence naming the server. */
export function failedAnswer(message: string): TranslatedAnswer {
  return { kind: "failed", message };
}

/** jsonEvent is one synthesized server-sent event carrying value as JSON. */
export function jsonEvent(value: unknown, event = ""): SseEvent {
  return { data: Buffer.from(JSON.stringify(value), "utf8"), event };
}
