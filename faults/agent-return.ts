import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { InferenceCallSchema, type InferencePart, Operation } from "../gen/infermesh/v1/inference_pb.js";
import type { Principal } from "../gen/infermesh/v1/registry_pb.js";
import type { PeerCalls } from "../services/shared/grpc/infer-client.js";
import type { InjectedFault } from "./fault-injector.js";
import { chatBody } from "./load-driver.js";

/** AGENT_RETURN_LIMIT_MS is how soon after a gateway fault healed every agent must serve on a link again. */
export const AGENT_RETURN_LIMIT_MS = 5_000;
/** RETURN_WATCH_MS bounds the watch for the agents' return, so that one that never comes back is reported, not waited for. */
const RETURN_WATCH_MS = 15_000;
/** PROBE_EVERY_MS is the pause between two probes of an agent that is not back yet. */
const PROBE_EVERY_MS = 100;
/** PROBE_TIMEOUT_MS bounds one probe: a small answer from an idle simulator takes milliseconds. */
const PROBE_TIMEOUT_MS = 2_000;

/**
 * LinkProbe calls AgentService.Infer on the gateway's internal port with the mesh token, as a peer gateway would: the
 * gateway sends the call down the provider's link, so an answer proves that the agent is attached there and serves.
 */
export interface LinkProbe {
  readonly peers: PeerCalls;
  /** gatewayGrpc is the gateway's internal gRPC address, "127.0.0.1:PORT" (the same across its restarts). */
  readonly gatewayGrpc: string;
  /** caller is the principal the gateway would pass with a user's call; the agent does not need one. */
  readonly caller: Principal | undefined;
}

/** ProbeResult says whether a call on an agent's link was answered in full, and what came back. */
export interface ProbeResult {
  readonly ok: boolean;
  readonly detail: string;
}

/** probeLink sends one small non-streamed chat completion down the provider's link; it never throws. */
export async function probeLink(
  probe: LinkProbe,
  providerId: string,
  requestId: string,
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<ProbeResult> {
  const call = create(InferenceCallSchema, {
    operation: Operation.CHAT_COMPLETION,
    model: "sim-llama",
    stream: false,
    requestId,
    deadline: timestampFromMs(Date.now() + timeoutMs),
    ...(probe.caller ? { caller: probe.caller } : {}),
    body: new TextEncoder().encode(chatBody("sim-llama", false, 4, 200, "probe")),
  });
  const parts: InferencePart["part"][] = [];
  try {
    for await (const part of probe.peers.infer(probe.gatewayGrpc, providerId, call, AbortSignal.timeout(timeoutMs))) parts.push(part.part);
  } catch (error) {
    return { ok: false, detail: error instanceof Error ? error.message : String(error) };
  }
  const head = parts[0]?.case === "head" ? parts[0].value : undefined;
  const ok = head?.status === 200 && parts.some((p) => p.case === "data") && parts.at(-1)?.case === "trailer";
  return {
    ok,
    detail: parts
      .map((p) => (p.case === "head" ? `head ${p.value.status}` : p.case === "error" ? `error ${p.value.message}` : p.case))
      .join(", "),
  };
}

/** WatchedAgent is an agent whose return is watched. */
export interface WatchedAgent {
  /** name is the process's name, "agent-2". */
  readonly name: string;
  readonly providerId: string;
  /** running tells whether the agent's process is still up; one that exited will not come back by itself. */
  readonly running: () => boolean;
}

/** AgentBack is when one agent served on a link again after a gateway fault healed. */
export interface AgentBack {
  readonly name: string;
  readonly providerId: string;
  /** backAfterMs is from the gateway's healing to the first answered probe; undefined if it never came. */
  readonly backAfterMs: number | undefined;
  /** detail is the last failed probe's answer, for an agent that did not come back. */
  readonly detail: string;
  /** failures are the distinct answers of the probes that failed, each with when it first came (ms after healing). */
  readonly failures: readonly string[];
}

/** AgentReturn is the agents' return after one gateway fault. */
export interface AgentReturn {
  readonly fault: InjectedFault;
  readonly agents: readonly AgentBack[];
}

/**
 * watchAgentsReturn probes every agent's link from the moment a gateway fault healed (healedAtMs on the suite's clock
 * now) until each answers, and reports how long each took. It gives up on an agent after RETURN_WATCH_MS, or at once
 * when its process exited.
 */
export async function watchAgentsReturn(
  probe: LinkProbe,
  fault: InjectedFault & { readonly healedAtMs: number },
  agents: readonly WatchedAgent[],
  now: () => number,
): Promise<AgentReturn> {
  const watchOne = async (agent: WatchedAgent, index: number): Promise<AgentBack> => {
    const seen = new Map<string, number>();
    const back = (backAfterMs: number | undefined, detail: string): AgentBack => ({
      name: agent.name,
      providerId: agent.providerId,
      backAfterMs,
      detail,
      failures: [...seen].map(([what, atMs]) => `+${atMs} ms: ${what}`),
    });
    let detail = "not probed";
    for (let attempt = 0; now() - fault.healedAtMs < RETURN_WATCH_MS; attempt++) {
      if (!agent.running()) return back(undefined, "its process exited");
      const result = await probeLink(probe, agent.providerId, `fault-${fault.id}-return-${index}-${attempt}`);
      if (result.ok) return back(now() - fault.healedAtMs, result.detail);
      detail = result.detail;
      if (!seen.has(detail)) seen.set(detail, now() - fault.healedAtMs);
      await sleep(PROBE_EVERY_MS);
    }
    return back(undefined, detail);
  };
  return { fault, agents: await Promise.all(agents.map(watchOne)) };
}

/** lateAgents are the agents of a return that were not back within AGENT_RETURN_LIMIT_MS. */
export function lateAgents(back: AgentReturn): AgentBack[] {
  return back.agents.filter((agent) => agent.backAfterMs === undefined || agent.backAfterMs > AGENT_RETURN_LIMIT_MS);
}
