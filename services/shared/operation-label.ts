import { Operation } from "../../gen/infermesh/v1/inference_pb.js";

/**
 * OPERATION_LABELS are the `operation` label values of every service's metrics, so that one query can join the
 * gateway's and the agents' series. They name the operation as OpenTelemetry's gen_ai.operation.name would, in the
 * mesh's own words for the operations OpenTelemetry has no name for.
 */
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
