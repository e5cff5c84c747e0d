import { fromJson, type JsonObject, type MessageInitShape, toJson } from "@bufbuild/protobuf";
import type { InferenceCall, InferResponseSchema } from "../../gen/infermesh/v1/inference_pb.js";
import { HeartbeatRequestSchema } from "../../gen/infermesh/v1/registry_pb.js";
import { MeshLink } from "../../services/agent/mesh-link.js";
import { systemClock } from "../../services/shared/clock.js";
import { MEDIA_MAX_MESSAGE_BYTES } from "../../services/shared/grpc/message-limits.js";
import { createLogger } from "../../services/shared/logger.js";
import { waitFor } from "./wait-for.js";

/** Script answers one Infer call; it may wait on the call's signal to act like a slow provider. */
export type Script = (call: InferenceCall, signal: AbortSignal) => AsyncIterable<MessageInitShape<typeof InferResponseSchema>>;

/**
 * ScriptedAgent is a TEST DOUBLE of an agent: a real link to the gateway (the agent's own MeshLink) whose answers a
 * test scripts, for gateway behaviour that needs exact control of the parts (errors after the first byte, silences,
 * odd heads). It records the calls it got and the ones cancelled.
 */
export interface ScriptedAgent {
  readonly providerId: string;
  readonly calls: InferenceCall[];
  readonly cancelled: string[];
  readonly link: MeshLink;
  script: Script;
  /** heartbeat reports models (as a stock client's JSON) and extra heartbeat fields, such as its load, at once. */
  heartbeat(models?: readonly object[], extra?: object): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * attachScriptedAgent attaches a scripted agent to the gateway at gatewayUrl as apiKey's user, so that the registry
 * lists it as providerId serving models (given as a stock client's JSON); extra adds heartbeat fields, such as its load.
 */
export async function attachScriptedAgent(
  gatewayUrl: string,
  apiKey: string,
  providerId: string,
  models: readonly object[],
  script: Script,
  extra: object = {},
): Promise<ScriptedAgent> {
  const calls: InferenceCall[] = [];
  const cancelled: string[] = [];
  let report = fromJson(HeartbeatRequestSchema, { providerId, name: providerId, models, ...extra } as unknown as JsonObject);
  const link: MeshLink = new MeshLink({
    meshUrl: gatewayUrl,
    apiKey,
    clock: systemClock,
    log: createLogger("scripted-agent", "silent"),
    report: () => report,
    maxMessageBytes: MEDIA_MAX_MESSAGE_BYTES,
    initialRetryMs: 50,
    maxRetryMs: 500,
    serve: (call, { signal }) => {
      calls.push(call);
      signal.addEventListener("abort", () => cancelled.push(call.requestId), { once: true });
      return agent.script(call, signal);
    },
  });
  const agent: ScriptedAgent = {
    providerId,
    calls,
    cancelled,
    link,
    script,
    heartbeat(newModels, newExtra = {}) {
      const current = toJson(HeartbeatRequestSchema, report) as JsonObject;
      report = fromJson(HeartbeatRequestSchema, { ...current, ...(newModels ? { models: newModels } : {}), ...newExtra } as JsonObject);
      return link.heartbeatNow();
    },
    close: () => link.close(),
  };
  await link.start();
  // A first dial may fail on a loaded machine; the link dials again by itself.
  await waitFor(`the scripted agent ${providerId} attached to ${gatewayUrl}`, () => link.connected);
  return agent;
}
