import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { AgentService, type InferenceCall, type InferResponseSchema } from "../../gen/infermesh/v1/inference_pb.js";
import { bearerCredential } from "../../services/shared/bearer.js";
import { MEDIA_MAX_MESSAGE_BYTES } from "../../services/shared/grpc/message-limits.js";
import { bindService, createGrpcServer, type GrpcServer } from "../../services/shared/grpc/server.js";
import { bearer, stockClient, unary } from "./stock-grpc-client.js";

/** Script answers one Infer call; it may wait on the call's signal to act like a slow provider. */
export type Script = (call: InferenceCall, signal: AbortSignal) => AsyncIterable<MessageInitShape<typeof InferResponseSchema>>;

/**
 * ScriptedAgent is a TEST DOUBLE of an agent: a real AgentService gRPC server whose answers a test scripts, for
 * gateway behaviour that needs exact control of the parts (errors after the first byte, silences, odd heads).
 * It records the calls it got and the ones cancelled.
 */
export interface ScriptedAgent {
  readonly endpoint: string;
  readonly token: string;
  readonly calls: InferenceCall[];
  readonly cancelled: string[];
  script: Script;
  close(): Promise<void>;
}

/** startScriptedAgent starts a scripted agent on 127.0.0.1:0 requiring token. */
export async function startScriptedAgent(token: string, script: Script): Promise<ScriptedAgent> {
  const calls: InferenceCall[] = [];
  const cancelled: string[] = [];
  let server: GrpcServer | undefined;
  const agent: ScriptedAgent = {
    endpoint: "",
    token,
    calls,
    cancelled,
    script,
    close: async () => server?.close(0),
  };
  server = createGrpcServer({
    maxMessageBytes: MEDIA_MAX_MESSAGE_BYTES,
    services: [
      bindService(AgentService, {
        async *infer(request, { metadata, signal }) {
          if (bearerCredential(metadata) !== token) throw new ConnectError("bad agent token", Code.Unauthenticated);
          const call = request.call as InferenceCall;
          calls.push(call);
          signal.addEventListener("abort", () => cancelled.push(call.requestId), { once: true });
          yield* agent.script(call, signal);
        },
      }),
    ],
  });
  const port = await server.listen("127.0.0.1:0");
  (agent as { endpoint: string }).endpoint = `127.0.0.1:${port}`;
  return agent;
}

/**
 * registerScriptedAgent heartbeats for a scripted agent as apiKey's user, so that the registry lists it as providerId
 * serving models (given as a stock client's JSON); extra adds heartbeat fields, such as its load.
 */
export async function registerScriptedAgent(
  registryAddress: string,
  apiKey: string,
  providerId: string,
  agent: Pick<ScriptedAgent, "endpoint" | "token">,
  models: readonly object[],
  extra: object = {},
): Promise<void> {
  const client = stockClient("RegistryService", registryAddress);
  try {
    await unary(client, "heartbeat", { providerId, endpoint: agent.endpoint, agentToken: agent.token, models, ...extra }, bearer(apiKey));
  } finally {
    client.close();
  }
}
