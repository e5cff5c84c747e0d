import { Operation } from "../../gen/infermesh/v1/inference_pb.js";
import type { UpstreamKind, UpstreamType } from "./agent-config.js";
import type { Forwarder } from "./answer-relay.js";
import { IMG2IMG_PATH, img2imgTranslation, TXT2IMG_PATH, txt2imgTranslation } from "./automatic1111-adapter.js";
import { forwardJson } from "./json-forwarder.js";
import { forwardMediaForm, forwardMediaJson } from "./media-forwarder.js";
import { parseFormFields } from "./multipart-form.js";
import { forwardTranslated } from "./translating-forwarder.js";
import { WHISPER_CPP_INFERENCE_PATH, whisperCppRequest } from "./whisper-cpp-adapter.js";

/** UpstreamRoute says how an operation reaches an upstream of one kind: which path, which forwarder. */
export interface UpstreamRoute {
  readonly path: string;
  readonly forward: Forwarder;
}

type Routes = Readonly<Partial<Record<Operation, UpstreamRoute>>>;

/** ROUTES are each kind's routes; an operation missing from a kind's table is one its servers cannot serve. */
const ROUTES: Readonly<Record<UpstreamKind, Routes>> = {
  openai: {
    [Operation.CHAT_COMPLETION]: { path: "/v1/chat/completions", forward: forwardJson },
    [Operation.COMPLETION]: { path: "/v1/completions", forward: forwardJson },
    [Operation.TRANSCRIPTION]: { path: "/v1/audio/transcriptions", forward: forwardMediaForm },
    [Operation.IMAGE_GENERATION]: { path: "/v1/images/generations", forward: forwardMediaJson },
    [Operation.IMAGE_EDIT]: { path: "/v1/images/edits", forward: forwardMediaForm },
    [Operation.SPEECH]: { path: "/v1/audio/speech", forward: forwardMediaJson },
  },
  whispercpp: {
    [Operation.TRANSCRIPTION]: {
      path: WHISPER_CPP_INFERENCE_PATH,
      forward: forwardTranslated((call) => whisperCppRequest(parseFormFields(call.body), call.media, call.stream)),
    },
  },
  automatic1111: {
    [Operation.IMAGE_GENERATION]: {
      path: TXT2IMG_PATH,
      forward: forwardTranslated((call) => txt2imgTranslation(call.body, call.model, call.stream)),
    },
    [Operation.IMAGE_EDIT]: {
      path: IMG2IMG_PATH,
      forward: forwardTranslated((call) => img2imgTranslation(parseFormFields(call.body), call.media, call.model, call.stream)),
    },
  },
};

/** operationType is the upstream type that serves an operation, undefined for UNSPECIFIED and unknown numbers. */
export function operationType(operation: Operation): UpstreamType | undefined {
  switch (operation) {
    case Operation.CHAT_COMPLETION:
    case Operation.COMPLETION:
      return "llm";
    case Operation.TRANSCRIPTION:
      return "stt";
    case Operation.IMAGE_GENERATION:
    case Operation.IMAGE_EDIT:
      return "image";
    case Operation.SPEECH:
      return "tts";
    case Operation.UNSPECIFIED:
      return undefined;
  }
  // A number from a newer contract that this agent does not know.
  return undefined;
}

/** upstreamRoute is how an operation reaches an upstream of kind, or undefined when that kind cannot serve it. */
export function upstreamRoute(operation: Operation, kind: UpstreamKind): UpstreamRoute | undefined {
  return ROUTES[kind][operation];
}
