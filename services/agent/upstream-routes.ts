import { Operation } from "../../gen/infermesh/v1/inference_pb.js";
import { parseFormFields } from "../shared/form-fields.js";
import { OPERATIONS } from "../shared/inference-catalog.js";
import type { UpstreamKind } from "./agent-config.js";
import type { Forwarder } from "./answer-relay.js";
import { IMG2IMG_PATH, img2imgTranslation, TXT2IMG_PATH, txt2imgTranslation } from "./automatic1111-adapter.js";
import { forwardJson } from "./json-forwarder.js";
import { forwardMediaForm, forwardMediaJson } from "./media-forwarder.js";
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
  // An OpenAI-compatible server serves each operation on the route the gateway serves it on, Anthropic's included
  // (llama-server, vLLM and Ollama speak both); a server that lacks a route answers 404 (see relayAnswer).
  openai: {
    [Operation.CHAT_COMPLETION]: { path: OPERATIONS[Operation.CHAT_COMPLETION].path, forward: forwardJson },
    [Operation.COMPLETION]: { path: OPERATIONS[Operation.COMPLETION].path, forward: forwardJson },
    [Operation.TRANSCRIPTION]: { path: OPERATIONS[Operation.TRANSCRIPTION].path, forward: forwardMediaForm },
    [Operation.IMAGE_GENERATION]: { path: OPERATIONS[Operation.IMAGE_GENERATION].path, forward: forwardMediaJson },
    [Operation.IMAGE_EDIT]: { path: OPERATIONS[Operation.IMAGE_EDIT].path, forward: forwardMediaForm },
    [Operation.SPEECH]: { path: OPERATIONS[Operation.SPEECH].path, forward: forwardMediaJson },
    [Operation.EMBEDDING]: { path: OPERATIONS[Operation.EMBEDDING].path, forward: forwardJson },
    [Operation.RERANK]: { path: OPERATIONS[Operation.RERANK].path, forward: forwardJson },
    [Operation.RESPONSE]: { path: OPERATIONS[Operation.RESPONSE].path, forward: forwardJson },
    [Operation.MESSAGE]: { path: OPERATIONS[Operation.MESSAGE].path, forward: forwardJson },
    [Operation.COUNT_TOKENS]: { path: OPERATIONS[Operation.COUNT_TOKENS].path, forward: forwardJson },
    [Operation.TRANSLATION]: { path: OPERATIONS[Operation.TRANSLATION].path, forward: forwardMediaForm },
  },
  // whisper.cpp transcribes and translates (to English) on one route, told apart by its `translate` field.
  whispercpp: {
    [Operation.TRANSCRIPTION]: {
      path: WHISPER_CPP_INFERENCE_PATH,
      forward: forwardTranslated((call) => whisperCppRequest(parseFormFields(call.body), call.media, call.stream, "transcribe")),
    },
    [Operation.TRANSLATION]: {
      path: WHISPER_CPP_INFERENCE_PATH,
      forward: forwardTranslated((call) => whisperCppRequest(parseFormFields(call.body), call.media, call.stream, "translate")),
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

/** upstreamRoute is how an operation reaches an upstream of kind, or undefined when that kind cannot serve it. */
export function upstreamRoute(operation: Operation, kind: UpstreamKind): UpstreamRoute | undefined {
  return ROUTES[kind][operation];
}
