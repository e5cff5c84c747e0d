import type { InferencePart } from "../../../gen/infermesh/v1/inference_pb.js";
import { AgentLinkService } from "../../../gen/infermesh/v1/link_pb.js";

/**
 * The agent's link (proto/infermesh/v1/link.proto): what both ends agree on besides the messages. Calls travel as
 * frames on one long-lived gRPC stream the agent opened, rather than one HTTP/2 stream per call: frames cost about a
 * third of the CPU per call (../shared/research/agent-connection.md), and cancelling thousands of calls at once is a
 * burst of small frames, not of stream resets that HTTP/2 servers take for an attack.
 */

/** ATTACH_PATH is the Attach call's HTTP/2 path, on the gateway's public port. */
export const ATTACH_PATH = `/${AgentLinkService.typeName}/${AgentLinkService.method.attach.name}`;

/** PING_INTERVAL_MS is how often each end sends a Ping while it has sent nothing else. */
export const PING_INTERVAL_MS = 1_000;
/**
 * SILENCE_LIMIT_MS is how long an end waits without hearing any frame before it takes the link for dead. Pings ride
 * inside the stream, not as HTTP/2 PINGs, because a proxy in between (nginx) answers those itself. The check runs at
 * each ping tick, so a frozen peer is found within SILENCE_LIMIT_MS + PING_INTERVAL_MS: 4.5 s, inside the 5 s promised,
 * while a live peer may still miss three pings in a row.
 */
export const SILENCE_LIMIT_MS = 3_500;

/** CALL_CHUNK_BYTES is the largest piece of a call on the link, so that a 25 MiB upload shares the link with the rest. */
export const CALL_CHUNK_BYTES = 64 * 1024;
/** ANSWER_PART_BYTES is the largest data part of an answer on the link, for the same reason. */
export const ANSWER_PART_BYTES = 64 * 1024;

/**
 * INITIAL_CALL_CREDIT is how many bytes of a call's answer the agent may send before the gateway grants more; the
 * gateway grants CREDIT_STEP_BYTES each time its client has read that much. So a client that stops reading holds at
 * most a window at the gateway, and the agent stops reading from its local server, while other calls go on.
 */
export const INITIAL_CALL_CREDIT = 1024 * 1024;
export const CREDIT_STEP_BYTES = 256 * 1024;

/** partBytes is what a part counts against a call's credit: its payload, or a small constant for the rest. */
export function partBytes(part: { part: InferencePart["part"] } | { part: { case: string | undefined; value?: unknown } }): number {
  const { part: inner } = part;
  if (inner.case === "data") return (inner.value as Uint8Array).byteLength;
  if (inner.case === "event") return (inner.value as { data: Uint8Array }).data.byteLength + 16;
  return 64;
}
