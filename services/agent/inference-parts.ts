import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ErrorKind, InferencePartSchema, InferResponseSchema } from "../../gen/infermesh/v1/inference_pb.js";
import { ERROR_KINDS, UNSUPPORTED_ENDPOINT } from "../shared/error-kinds.js";
import type { TrailerInit } from "./answer-summary.js";
import type { SseEvent } from "./sse-parser.js";

/** InferResponseInit is one InferResponse under construction. */
export type InferResponseInit = MessageInitShape<typeof InferResponseSchema>;
type InferencePartInit = MessageInitShape<typeof InferencePartSchema>;

/** DATA_PART_BYTES is the largest data part; a big body goes out in several, well under the gRPC message limit. */
export const DATA_PART_BYTES = 1024 * 1024;

/** headPart opens an answer with the upstream's status and content type. */
export function headPart(status: number, contentType: string): InferResponseInit {
  return { part: { part: { case: "head", value: { status, contentType } } } };
}

/** dataParts carries a non-streamed body, in pieces of at most DATA_PART_BYTES that concatenate to it. */
export function* dataParts(body: Uint8Array): Generator<InferResponseInit> {
  for (let at = 0; at < body.length; at += DATA_PART_BYTES) {
    yield { part: { part: { case: "data", value: body.subarray(at, at + DATA_PART_BYTES) } } };
  }
}

/**
 * wholeAnswer carries a small non-streamed answer (head, body, trailer) in one message: one encode, one write and one
 * decode instead of three of each, on the path every non-streamed request takes.
 */
export function* wholeAnswer(status: number, contentType: string, body: Uint8Array, trailer: TrailerInit): Generator<InferResponseInit> {
  if (body.length > DATA_PART_BYTES) {
    yield headPart(status, contentType);
    yield* dataParts(body);
    yield trailerPart(trailer);
    return;
  }
  yield {
    parts: [
      { part: { case: "head", value: { status, contentType } } },
      { part: { case: "data", value: body } },
      { part: { case: "trailer", value: trailer } },
    ],
  };
}

/** BATCH_BYTES bounds the event data batched in one message; larger batches are split. */
const BATCH_BYTES = 1024 * 1024;

/**
 * eventMessages carries events that are ready together in as few messages as BATCH_BYTES allows, after head when it
 * is given: one message, one encode, one write and one decode for what would be several of each.
 */
export function* eventMessages(events: readonly SseEvent[], head?: InferResponseInit): Generator<InferResponseInit> {
  if (events.length === 1 && !head) {
    yield eventPart(events[0] as SseEvent);
    return;
  }
  let parts: InferencePartInit[] = head?.part ? [head.part] : [];
  let bytes = 0;
  for (const event of events) {
    if (bytes + event.data.byteLength > BATCH_BYTES && parts.length > 0) {
      yield { parts };
      parts = [];
      bytes = 0;
    }
    parts.push(streamEvent(event));
    bytes += event.data.byteLength;
  }
  yield { parts };
}

/** eventPart carries one server-sent event, its data untouched. */
export function eventPart(event: SseEvent): InferResponseInit {
  return { part: streamEvent(event) };
}

function streamEvent(event: SseEvent): InferencePartInit {
  return { part: { case: "event", value: { data: event.data, event: event.event } } };
}

/** trailerPart closes a successful answer. */
export function trailerPart(trailer: TrailerInit): InferResponseInit {
  return { part: { part: { case: "trailer", value: trailer } } };
}

/**
 * errorPart ends an answer that failed, of a kind the gateway decides by: UPSTREAM for a local server that failed to
 * give it, TIMEOUT for a passed deadline, SHUTDOWN for a call the agent cut off as it stopped.
 */
export function errorPart(kind: Exclude<ErrorKind, ErrorKind.UNSPECIFIED>, message: string): InferResponseInit {
  const { type, httpStatus } = ERROR_KINDS[kind];
  return { part: { part: { case: "error", value: { kind, type, httpStatus, message } } } };
}

/**
 * unsupportedEndpointPart ends an answer with the client's error for a model whose server lacks the operation's
 * route: a 400 the gateway answers as given, of no error kind, so that it neither fails over nor counts against the
 * provider's health (the provider is up; the model cannot do this).
 */
export function unsupportedEndpointPart(message: string): InferResponseInit {
  return {
    part: {
      part: {
        case: "error",
        value: { type: "invalid_request_error", httpStatus: 400, message, code: UNSUPPORTED_ENDPOINT, param: "model" },
      },
    },
  };
}
