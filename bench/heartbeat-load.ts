/**
 * heartbeat-load simulates agents for the registry bench: their heartbeats (pre-encoded, 2-3 models with capabilities
 * and a load) as the gateways they are attached to relay them (the mesh token, the agent's key beside it, and where the
 * agent is attached), a closed loop that sends them as fast as the registry answers, and a paced sender. With several
 * registry replicas, the gateways are split between them, as each gateway's link uses one replica at a time.
 */
import { randomUUID } from "node:crypto";
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { Modality, type ModelSchema, ServiceType } from "../gen/infermesh/v1/capabilities_pb.js";
import { HeartbeatRequestSchema, ProviderState, RegistryService, Visibility } from "../gen/infermesh/v1/registry_pb.js";
import { AGENT_KEY_METADATA } from "../services/shared/heartbeat-relay.js";

/** MAX_CONCURRENCY_REPORTED is the agents' max_concurrency; paced loads cycle through 1..this. */
const MAX_CONCURRENCY_REPORTED = 8;
/** REGISTERED_IN_FLIGHT is the load agents register with; paced changes never report it. */
const REGISTERED_IN_FLIGHT = 0;
/** CALL_DEADLINE_MS is every heartbeat's deadline, so that a stuck call cannot stall a phase. */
const CALL_DEADLINE_MS = 10_000;
/** PACE_TICK_MS is the paced sender's granularity: the heartbeats due are sent on each tick. */
const PACE_TICK_MS = 5;
/** GATEWAYS is how many gateways the agents are spread over, round robin; each relays its agents' heartbeats. */
const GATEWAYS = 8;

const HEARTBEAT_PATH = `/${RegistryService.typeName}/${RegistryService.method.heartbeat.name}`;

/**
 * loadChannel is a client of its own connection to a registry at address (host:port), in plaintext: grpc-js would
 * otherwise share one connection between all clients of the same target, and the load wants several.
 */
export function loadChannel(address: string): grpc.Client {
  return new grpc.Client(address, grpc.credentials.createInsecure(), {
    "grpc.use_local_subchannel_pool": 1,
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
  });
}

/** channelReady resolves once client's connection is up, and rejects when it is not within timeoutMs. */
export function channelReady(client: grpc.Client, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    client.waitForReady(Date.now() + timeoutMs, (error) => (error ? reject(error) : resolve()));
  });
}

/** Agent is one simulated agent: its provider id, the relay's credentials with its owner's key, its pre-encoded heartbeat. */
export interface Agent {
  readonly id: string;
  readonly client: grpc.Client;
  /** replica is the index of the registry replica the agent's gateway relays to. */
  readonly replica: number;
  readonly metadata: grpc.Metadata;
  /** fixedBytes is the heartbeat without its load, which is appended per call (protobuf merges the two). */
  readonly fixedBytes: Buffer;
  /** generation counts paced heartbeats that changed the load, each of which reports a different one. */
  generation: number;
  /** inFlight is the load the agent reported last; a steady heartbeat repeats it. */
  inFlight: number;
}

type ModelInit = MessageInitShape<typeof ModelSchema>;

const CHAT_MODEL: ModelInit = {
  id: "llama-3.1-8b-instruct",
  serviceType: ServiceType.LLM,
  inputModalities: [Modality.TEXT],
  outputModalities: [Modality.TEXT],
  supportedFeatures: ["tools", "json_mode"],
  contextLength: 131_072,
  engine: "llamacpp",
  quantization: "Q4_K_M",
  family: "llama",
  parameterCount: 8_030_261_248n,
};
const VISION_MODEL: ModelInit = {
  id: "qwen2.5-vl-7b-instruct",
  serviceType: ServiceType.LLM,
  inputModalities: [Modality.TEXT, Modality.IMAGE],
  outputModalities: [Modality.TEXT],
  supportedFeatures: ["vision", "json_mode"],
  contextLength: 32_768,
  engine: "vllm",
  quantization: "fp16",
  family: "qwen2",
  parameterCount: 8_292_166_656n,
};
const SPEECH_MODEL: ModelInit = {
  id: "whisper-large-v3",
  serviceType: ServiceType.STT,
  inputModalities: [Modality.AUDIO],
  outputModalities: [Modality.TEXT],
  supportedFeatures: ["timestamps"],
  engine: "localai",
  family: "whisper",
  parameterCount: 1_550_000_000n,
};

/** LOAD_BYTES[n] is an encoded HeartbeatRequest holding only load { in_flight: n }, appended to fixedBytes. */
const LOAD_BYTES: readonly Buffer[] = Array.from({ length: MAX_CONCURRENCY_REPORTED + 1 }, (_, inFlight) =>
  toBuffer(
    toBinary(
      HeartbeatRequestSchema,
      create(HeartbeatRequestSchema, { load: { inFlight, maxConcurrency: MAX_CONCURRENCY_REPORTED, queued: 0 } }),
    ),
  ),
);

/**
 * makeAgents builds `count` agents owned by apiKeys.length users (a contiguous block each), attached to GATEWAYS
 * gateways. pools holds one channel pool per registry replica: gateway g relays to replica g % pools.length, and
 * the agents of a replica are spread round robin over its pool. Half serve three models, half two; a quarter are public, a
 * quarter shared with one user. Each heartbeat is the one a gateway relays: the mesh token authenticates the gateway,
 * the owner's key rides beside it, and the gateway fills in where the agent is attached (endpoint, gateway, link).
 */
export function makeAgents(
  count: number,
  meshToken: string,
  apiKeys: readonly string[],
  pools: readonly (readonly grpc.Client[])[],
): Agent[] {
  const metadata = apiKeys.map((key) => {
    const entry = new grpc.Metadata();
    entry.set("authorization", `Bearer ${meshToken}`);
    entry.set(AGENT_KEY_METADATA, key);
    return entry;
  });
  const perUser = Math.ceil(count / apiKeys.length);
  return Array.from({ length: count }, (_, i) => {
    const user = Math.floor(i / perUser);
    const sharing =
      i % 4 === 0
        ? { visibility: Visibility.PUBLIC }
        : i % 4 === 1
          ? { visibility: Visibility.USERS, allowedUsers: [`bench-user-${(user + 1) % apiKeys.length}`] }
          : { visibility: Visibility.PRIVATE };
    const request = create(HeartbeatRequestSchema, {
      providerId: `bench-agent-${i}`,
      name: `rig ${i}`,
      endpoint: `10.0.0.${1 + (i % GATEWAYS)}:7443`,
      gatewayId: `bench-gateway-${i % GATEWAYS}`,
      linkId: randomUUID(),
      models: i % 2 === 0 ? [CHAT_MODEL, VISION_MODEL, SPEECH_MODEL] : [CHAT_MODEL, VISION_MODEL],
      state: ProviderState.ACCEPTING,
      sharing,
      version: "0.1.0",
    });
    const replica = (i % GATEWAYS) % pools.length;
    const pool = element(pools, replica);
    return {
      id: request.providerId,
      client: element(pool, Math.floor(i / pools.length) % pool.length),
      replica,
      metadata: element(metadata, user),
      fixedBytes: toBuffer(toBinary(HeartbeatRequestSchema, request)),
      generation: 0,
      inFlight: REGISTERED_IN_FLIGHT,
    };
  });
}

/** CallTally is what a phase's heartbeats did. */
export interface CallTally {
  ok: number;
  /** errors counts failures by gRPC status name. */
  readonly errors: Map<string, number>;
  /** latenciesMs are the accepted heartbeats' round trips. */
  readonly latenciesMs: number[];
  /** firstError is one failure's status and message, for a phase in which nothing worked. */
  firstError: string | undefined;
}

/** ChangeObserver is told which provider change each paced heartbeat should cause. */
export interface ChangeObserver {
  expect(providerId: string, inFlight: number, sentAtMs: number): void;
  /** forget drops an expectation whose heartbeat failed. */
  forget(providerId: string, inFlight: number): void;
}

/** ClosedLoopPlan says how many heartbeats runClosedLoop keeps in flight, and until when. */
export interface ClosedLoopPlan {
  readonly concurrency: number;
  /** count stops the loop after that many heartbeats. */
  readonly count?: number;
  /** durationMs stops the loop after that long. */
  readonly durationMs?: number;
}

/**
 * runClosedLoop keeps plan.concurrency heartbeats in flight, round robin over the agents, each repeating its load,
 * until plan.count have been sent or plan.durationMs has passed, and resolves once the last one has answered.
 */
export function runClosedLoop(agents: readonly Agent[], plan: ClosedLoopPlan): Promise<CallTally> {
  const tally = newTally();
  const endMs = performance.now() + (plan.durationMs ?? Number.POSITIVE_INFINITY);
  const count = plan.count ?? Number.POSITIVE_INFINITY;
  let sent = 0;
  let inFlight = 0;
  return new Promise((resolveLoop) => {
    const launch = (): void => {
      if (sent >= count || performance.now() >= endMs) {
        if (inFlight === 0) resolveLoop(tally);
        return;
      }
      const agent = element(agents, sent % agents.length);
      sent++;
      inFlight++;
      const startedMs = performance.now();
      sendHeartbeat(agent, agent.inFlight, (error) => {
        const latencyMs = performance.now() - startedMs;
        inFlight--;
        record(tally, error, latencyMs);
        launch();
      });
    };
    const starters = Math.min(plan.concurrency, count);
    for (let i = 0; i < starters; i++) launch();
  });
}

/** PacedPlan is runPaced's rate, duration, bound on heartbeats in flight and share of heartbeats that change. */
export interface PacedPlan {
  readonly ratePerSecond: number;
  readonly durationMs: number;
  readonly concurrency: number;
  /** changeShare (0..1) of the heartbeats report a new load; the rest repeat their agent's last one. 1 by default. */
  readonly changeShare?: number;
}

/**
 * runPaced sends plan.ratePerSecond heartbeats a second for plan.durationMs, round robin over the agents. A
 * plan.changeShare of them, evenly spread, report a load their provider has not just reported, and the observer is
 * told which change to expect; the others are steady, repeating the last load. It never has more than
 * plan.concurrency in flight; heartbeats it could not send on time go out as soon as a slot frees. The tally's
 * `changing` counts the heartbeats sent to change something.
 */
export function runPaced(
  agents: readonly Agent[],
  observer: ChangeObserver,
  plan: PacedPlan,
): Promise<CallTally & { readonly elapsedMs: number; readonly changing: number }> {
  const tally = newTally();
  const changeShare = plan.changeShare ?? 1;
  const startMs = performance.now();
  let changing = 0;
  let sent = 0;
  let inFlight = 0;
  let sending = true;
  return new Promise((resolvePaced) => {
    const finish = () => {
      if (!sending && inFlight === 0) resolvePaced({ ...tally, elapsedMs: performance.now() - startMs, changing });
    };
    const tick = () => {
      const elapsedMs = Math.min(performance.now() - startMs, plan.durationMs);
      const due = Math.floor((elapsedMs / 1000) * plan.ratePerSecond);
      while (sent < due && inFlight < plan.concurrency) {
        const agent = element(agents, sent % agents.length);
        // Spreads the changing heartbeats evenly: heartbeat n changes when n * share crosses a whole number.
        const changes = Math.floor((sent + 1) * changeShare) > Math.floor(sent * changeShare);
        sent++;
        inFlight++;
        if (changes) {
          agent.generation++;
          agent.inFlight = pacedInFlight(agent.generation);
          changing++;
        }
        const load = agent.inFlight;
        const startedMs = performance.now();
        if (changes) observer.expect(agent.id, load, startedMs);
        sendHeartbeat(agent, load, (error) => {
          const latencyMs = performance.now() - startedMs;
          inFlight--;
          if (error && changes) observer.forget(agent.id, load);
          record(tally, error, latencyMs);
          finish();
        });
      }
      if (elapsedMs >= plan.durationMs && sent >= due) {
        clearInterval(timer);
        sending = false;
        finish();
      }
    };
    const timer = setInterval(tick, PACE_TICK_MS);
  });
}

/** pacedInFlight is the load of an agent's nth changing heartbeat: never the registered load, never its previous one. */
function pacedInFlight(generation: number): number {
  return 1 + ((generation - 1) % MAX_CONCURRENCY_REPORTED);
}

/** sendHeartbeat sends one heartbeat with the given load and hears its outcome; the response is not decoded. */
function sendHeartbeat(agent: Agent, inFlight: number, done: (error: grpc.ServiceError | null) => void): void {
  const frame = Buffer.concat([agent.fixedBytes, element(LOAD_BYTES, inFlight)]);
  agent.client.makeUnaryRequest(
    HEARTBEAT_PATH,
    passBytes,
    passBytes,
    frame,
    // grpc-js may add headers to a call's metadata, so each call gets its own copy.
    agent.metadata.clone(),
    { deadline: Date.now() + CALL_DEADLINE_MS },
    (error) => done(error),
  );
}

function passBytes(bytes: Buffer): Buffer {
  return bytes;
}

function newTally(): CallTally {
  return { ok: 0, errors: new Map(), latenciesMs: [], firstError: undefined };
}

function record(tally: CallTally, error: grpc.ServiceError | null, latencyMs: number): void {
  if (!error) {
    tally.ok++;
    tally.latenciesMs.push(latencyMs);
    return;
  }
  const name = grpc.status[error.code] ?? String(error.code);
  tally.errors.set(name, (tally.errors.get(name) ?? 0) + 1);
  tally.firstError ??= `${name}: ${error.details}`;
}

function element<T>(array: readonly T[], index: number): T {
  const value = array[index];
  if (value === undefined) throw new Error(`index ${index} out of range 0..${array.length - 1}`);
  return value;
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
