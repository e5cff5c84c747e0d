import { Operation } from "../../gen/infermesh/v1/inference_pb.js";
import type { UpstreamType } from "./agent-config.js";
import { forwardJson, type Forwarder } from "./json-forwarder.js";

/** UpstreamRoute says how an operation reaches a local server: which kind of upstream, which path, which forwarder. */
export interface UpstreamRoute {
  readonly upstreamType: UpstreamType;
  readonly path: string;
  readonly forward: Forwarder;
}

const CHAT_COMPLETION: UpstreamRoute = { upstreamType: "llm", path: "/v1/chat/completions", forward: forwardJson };
const COMPLETION: UpstreamRoute = { upstreamType: "llm", path: "/v1/completions", forward: forwardJson };

/**
 * upstreamRoute maps an operation to its route, or undefined for operations this agent does not serve yet. Audio and
 * image operations will add routes with forwarders of their own (multipart uploads, binary answers).
 */
export function upstreamRoute(operation: Operation): UpstreamRoute | undefined {
  switch (operation) {
    case Operation.CHAT_COMPLETION:
      return CHAT_COMPLETION;
    case Operation.COMPLETION:
      return COMPLETION;
    case Operation.TRANSCRIPTION:
    case Operation.IMAGE_GENERATION:
    case Operation.IMAGE_EDIT:
    case Operation.SPEECH:
    case Operation.UNSPECIFIED:
      return undefined;
  }
}

/** OPERATION_LABELS are the metric label values of operations; anything else counts as "unknown". */
export const OPERATION_LABELS: Readonly<Record<Operation, string>> = {
  [Operation.UNSPECIFIED]: "unspecified",
  [Operation.CHAT_COMPLETION]: "chat_completion",
  [Operation.COMPLETION]: "completion",
  [Operation.TRANSCRIPTION]: "transcription",
  [Operation.IMAGE_GENERATION]: "image_generation",
  [Operation.IMAGE_EDIT]: "image_edit",
  [Operation.SPEECH]: "speech",
};

/** operationLabel is an operation's metric label, bounded even for numbers from a newer contract. */
export function operationLabel(operation: Operation | undefined): string {
  return (operation === undefined ? undefined : OPERATION_LABELS[operation]) ?? "unknown";
}
