import { randomUUID } from "node:crypto";
import type * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { InferenceCall, InferencePart } from "../../gen/infermesh/v1/inference_pb.js";
import { InferenceCallSchema } from "../../gen/infermesh/v1/inference_pb.js";
import { type AttachRequest, AttachRequestSchema, AttachResponseSchema, type CallAnswer } from "../../gen/infermesh/v1/link_pb.js";
import type { HeartbeatRequest, HeartbeatResponse, Principal } from "../../gen/infermesh/v1/registry_pb.js";
import { failedCall } from "../shared/answer-queue.js";
import { bearerToken } from "../shared/bearer.js";
import { type Clock, every, type TimerHandle } from "../shared/clock.js";
import { GrpcWireError, MessageReader, STATUS_OK } from "../shared/grpc/wire.js";
import { FrameWriter } from "../shared/link/frame-writer.js";
import { ATTACH_PATH, CALL_CHUNK_BYTES, PING_INTERVAL_MS, SILENCE_LIMIT_MS } from "../shared/link/link-protocol.js";
import { SilenceWatch } from "../shared/link/silence-watch.js";
import type { Logger } from "../shared/logger.js";
import { providerIdFor } from "../shared/provider-id.js";
import { LinkCall } from "./link-call.js";

/** FIRST_HEARTBEAT_WAIT_MS is how long a new link may stay silent before its first heartbeat; then it is closed. */
const FIRST_HEARTBEAT_WAIT_MS = 10_000;

/** LinkRegistry is what links need of the registry: relaying an agent's heartbeat, and taking it offline. */
export interface LinkRegistry {
  /** heartbeat relays the agent's heartbeat under its owner's key; it rejects with the registry's ConnectError. */
  heartbeat(apiKey: string, request: HeartbeatRequest): Promise<HeartbeatResponse>;
  /** deregister takes the provider offline if it is still attached on this link. */
  deregister(providerId: string, linkId: string): Promise<void>;
}

/** AgentLinksOptions configures the gateway's end of the agents' links. */
export interface AgentLinksOptions {
  /** gatewayId names this gateway in the registry's records of where agents are attached. */
  readonly gatewayId: string;
  /** endpoint is where other gateways forward calls for agents attached here; empty when none can. */
  readonly endpoint: string;
  /** authenticate resolves an API key; undefined for a bad key; it throws when the key cannot be checked. */
  readonly authenticate: (apiKey: string) => Promise<Principal | undefined>;
  readonly registry: LinkRegistry;
  readonly clock: Clock;
  readonly log: Logger;
  readonly maxMessageBytes: number;
  /** onFrameDropped hears of a frame for a call the agent was not given, or one already over. */
  readonly onFrameDropped?: () => void;
  /** onLinkCount hears how many links are open whenever that changes. */
  readonly onLinkCount?: (count: number) => void;
}

/**
 * AgentLinks is the gateway's end of the agents' links (AgentLinkService.Attach): it admits an agent that presents
 * its owner's valid key, relays its heartbeats to the registry, and routes calls to it as frames on its link. It
 * trusts an attached agent no further than that: a provider is served on a link only once the registry has accepted
 * that owner's claim to the provider id, and answers for calls the link was not given are dropped.
 */
export class AgentLinks {
  readonly #options: AgentLinksOptions;
  readonly #links = new Set<AgentLink>();
  readonly #byProvider = new Map<string, AgentLink>();
  /** #offline are deregistrations under way, which a closing gateway waits for. */
  readonly #offline = new Set<Promise<void>>();

  constructor(options: AgentLinksOptions) {
    this.#options = options;
  }

  /** size counts open links, attached or not yet. */
  get size(): number {
    return this.#links.size;
  }

  /** attached tells whether the provider's agent holds an accepted link to this gateway. */
  attached(providerId: string): boolean {
    return this.#byProvider.has(providerId);
  }

  /** handleStream serves one HTTP/2 stream of the public port: Attach, or UNIMPLEMENTED for any other path. */
  handleStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on("error", () => {});
    if (headers[":path"] !== ATTACH_PATH || headers[":method"] !== "POST") {
      refuse(stream, Code.Unimplemented, `this port serves ${ATTACH_PATH} over HTTP/2; the OpenAI API is HTTP/1.1`);
      return;
    }
    if (!String(headers["content-type"] ?? "").startsWith("application/grpc")) {
      refuse(stream, Code.InvalidArgument, "Attach takes content-type application/grpc");
      return;
    }
    const apiKey = bearerToken(headers.authorization);
    if (!apiKey) {
      refuse(stream, Code.Unauthenticated, "missing API key: attach with 'authorization: Bearer <your API key>'");
      return;
    }
    stream.pause();
    this.#options.authenticate(apiKey).then(
      (principal) => {
        if (stream.destroyed) return;
        if (!principal) refuse(stream, Code.Unauthenticated, "invalid or revoked API key");
        else this.#open(stream, apiKey, principal);
      },
      (error: unknown) => {
        if (!stream.destroyed) refuse(stream, Code.Unavailable, `cannot check the API key now: ${messageOf(error)}`);
      },
    );
  }

  /**
   * infer sends the call to the provider's agent on its link and yields the answer's parts. A provider not attached
   * here, or attached by anyone but its owner, fails with UNAVAILABLE; the call's gRPC-level refusals (draining, no
   * such model, at capacity) surface as ConnectErrors with the agent's code, as a direct call would.
   */
  infer(providerId: string, ownerUserId: string, call: InferenceCall, signal: AbortSignal): AsyncIterable<InferencePart> {
    const link = this.#byProvider.get(providerId);
    if (!link || link.principal.userId !== ownerUserId) {
      return failedCall(new ConnectError(`provider '${providerId}' is not attached to this gateway`, Code.Unavailable));
    }
    return link.call(call, signal);
  }

  /** whenIdle resolves once no link has a call in flight, or after waitMs. */
  whenIdle(waitMs: number): Promise<void> {
    const { clock } = this.#options;
    const until = clock.now() + waitMs;
    return new Promise((resolve) => {
      const check = () => {
        if ([...this.#links].every((link) => link.callsInFlight === 0) || clock.now() >= until) resolve();
        else clock.setTimer(check, 20);
      };
      check();
    });
  }

  /**
   * close ends every link; their calls fail at once with UNAVAILABLE and the agents reconnect elsewhere. It resolves
   * once the registry has taken their providers offline (or failed to).
   */
  async close(): Promise<void> {
    for (const link of [...this.#links]) link.close(Code.Unavailable, "the gateway is shutting down");
    await Promise.all([...this.#offline]);
  }

  #open(stream: http2.ServerHttp2Stream, apiKey: string, principal: Principal): void {
    const link = new AgentLink(stream, apiKey, principal, this.#options, {
      accepted: (providerId) => {
        const previous = this.#byProvider.get(providerId);
        this.#byProvider.set(providerId, link);
        if (previous && previous !== link) previous.close(Code.Aborted, "the agent attached again on a newer link");
      },
      closed: (providerId, offline) => {
        this.#links.delete(link);
        this.#options.onLinkCount?.(this.#links.size);
        if (providerId !== undefined && this.#byProvider.get(providerId) === link) this.#byProvider.delete(providerId);
        if (offline) {
          this.#offline.add(offline);
          void offline.finally(() => this.#offline.delete(offline));
        }
      },
    });
    this.#links.add(link);
    this.#options.onLinkCount?.(this.#links.size);
    stream.resume();
  }
}

interface LinkEvents {
  /** accepted: the registry accepted the link's claim to providerId. */
  accepted(providerId: string): void;
  closed(providerId: string | undefined, offline: Promise<void> | undefined): void;
}

/**
 * AgentLink is one agent's link: it reads the agent's frames, relays its heartbeats one at a time (the latest wins),
 * sends it calls under ids it never reuses, and takes it for dead after SILENCE_LIMIT_MS without a frame.
 */
class AgentLink {
  readonly principal: Principal;
  readonly #stream: http2.ServerHttp2Stream;
  readonly #apiKey: string;
  readonly #options: AgentLinksOptions;
  readonly #events: LinkEvents;
  readonly #writer: FrameWriter;
  readonly #reader: MessageReader;
  readonly #linkId = randomUUID();
  readonly #calls = new Map<number, LinkCall>();
  readonly #ticker: TimerHandle;
  #nextCallId = 1;
  #lastHeardMs: number;
  #providerId: string | undefined;
  #heartbeating = false;
  #checkingKey = false;
  #pendingHeartbeat: HeartbeatRequest | undefined;
  #closed = false;
  #trailers: http2.OutgoingHttpHeaders = { "grpc-status": String(Code.Unavailable) };

  constructor(stream: http2.ServerHttp2Stream, apiKey: string, principal: Principal, options: AgentLinksOptions, events: LinkEvents) {
    this.#stream = stream;
    this.#apiKey = apiKey;
    this.principal = principal;
    this.#options = options;
    this.#events = events;
    this.#reader = new MessageReader(options.maxMessageBytes);
    this.#lastHeardMs = options.clock.now();
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.on("wantTrailers", () => {
      stream.sendTrailers(this.#trailers);
      // The agent may not have ended its side; the link is over either way.
      setImmediate(() => stream.close());
    });
    this.#writer = new FrameWriter(stream);
    stream.on("data", this.#onData);
    stream.on("end", () => this.close(STATUS_OK, "the agent ended its link"));
    stream.on("close", () => this.close(Code.Unavailable, "the agent's link closed"));
    const openedMs = this.#lastHeardMs;
    const silence = new SilenceWatch(options.clock, () => this.#lastHeardMs);
    this.#ticker = every(options.clock, PING_INTERVAL_MS, () => {
      const now = options.clock.now();
      if (this.#providerId === undefined && !this.#heartbeating && now - openedMs > FIRST_HEARTBEAT_WAIT_MS) {
        this.close(Code.InvalidArgument, "no heartbeat: a link's first frame is the agent's heartbeat");
      } else if (silence.exceeded()) {
        this.close(Code.Unavailable, `the agent went silent for ${SILENCE_LIMIT_MS} ms`);
      } else {
        this.#send({ case: "ping", value: {} });
        this.#recheckKey();
      }
    });
  }

  /**
   * #recheckKey asks, through the gateway's short cache, whether the owner's key still holds: a key revoked or a user
   * disabled ends the link within the cache's life, not at the next heartbeat. A registry that cannot answer ends
   * nothing.
   */
  #recheckKey(): void {
    if (this.#checkingKey) return;
    this.#checkingKey = true;
    this.#options.authenticate(this.#apiKey).then(
      (principal) => {
        this.#checkingKey = false;
        if (!principal) this.close(Code.Unauthenticated, "invalid or revoked API key");
      },
      () => {
        this.#checkingKey = false;
      },
    );
  }

  get callsInFlight(): number {
    return this.#calls.size;
  }

  /** call sends a call on this link; see AgentLinks.infer. */
  call(call: InferenceCall, signal: AbortSignal): AsyncIterable<InferencePart> {
    if (this.#closed) return failedCall(new ConnectError("the agent's link closed", Code.Unavailable));
    const callId = this.#nextCallId;
    this.#nextCallId = callId === 0xffff_ffff ? 1 : callId + 1;
    let cancelled = false;
    const linkCall = new LinkCall({
      callId,
      call,
      signal,
      clock: this.#options.clock,
      grant: (bytes) => this.#send({ case: "credit", value: { callId, bytes } }),
      cancel: () => {
        cancelled = true;
        this.#calls.delete(callId);
        this.#send({ case: "cancel", value: { callId } });
      },
      done: () => this.#calls.delete(callId),
    });
    if (linkCall.over) return linkCall;
    this.#calls.set(callId, linkCall);
    const bytes = toBinary(InferenceCallSchema, call);
    if (bytes.length <= CALL_CHUNK_BYTES) this.#send({ case: "call", value: { callId, chunk: bytes, last: true } });
    else this.#writer.sendBulk(callChunks(callId, bytes, () => cancelled));
    return linkCall;
  }

  close(code: Code | 0, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ticker.cancel();
    const failure = new ConnectError(`the agent's link closed: ${reason}`, Code.Unavailable);
    for (const call of this.#calls.values()) call.fail(failure);
    this.#calls.clear();
    this.#writer.close();
    this.#trailers = { "grpc-status": String(code), "grpc-message": encodeURIComponent(reason) };
    if (!this.#stream.destroyed && !this.#stream.closed) this.#stream.end();
    const providerId = this.#providerId;
    let offline: Promise<void> | undefined;
    if (providerId !== undefined) {
      this.#options.log.info({ providerId, linkId: this.#linkId, reason }, "agent detached");
      offline = this.#options.registry.deregister(providerId, this.#linkId).catch((error: unknown) => {
        this.#options.log.warn({ providerId, cause: messageOf(error) }, "could not take a detached agent offline");
      });
    }
    this.#events.closed(providerId, offline);
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#lastHeardMs = this.#options.clock.now();
    try {
      this.#reader.push(chunk, this.#onMessage);
    } catch (error) {
      const code = error instanceof GrpcWireError ? error.code : Code.InvalidArgument;
      this.close(code, `malformed frame: ${messageOf(error)}`);
    }
  };

  readonly #onMessage = (message: Buffer): void => {
    const frame: AttachRequest["frame"] = fromBinary(AttachRequestSchema, message).frame;
    switch (frame.case) {
      case "answer":
        this.#onAnswer(frame.value);
        return;
      case "heartbeat":
        this.#relayHeartbeat(frame.value);
        return;
      default:
        return;
    }
  };

  #onAnswer(answer: CallAnswer): void {
    const call = this.#calls.get(answer.callId);
    if (!call) {
      this.#options.onFrameDropped?.();
      return;
    }
    call.push(answer.parts, answer.end);
  }

  #relayHeartbeat(request: HeartbeatRequest): void {
    if (this.#heartbeating) {
      this.#pendingHeartbeat = request;
      return;
    }
    this.#heartbeating = true;
    const providerId = this.#providerId ?? (request.providerId || providerIdFor(this.principal.userId, request.name));
    request.providerId = providerId;
    request.endpoint = this.#options.endpoint;
    request.gatewayId = this.#options.gatewayId;
    request.linkId = this.#linkId;
    this.#options.registry
      .heartbeat(this.#apiKey, request)
      .then(
        (response) => {
          if (this.#closed) return;
          if (this.#providerId === undefined) {
            this.#providerId = providerId;
            this.#events.accepted(providerId);
            this.#options.log.info({ providerId, linkId: this.#linkId, owner: this.principal.userName }, "agent attached");
          }
          // The agent learns how the registry sees it as its owner would, never the gateways' internal addresses.
          if (response.provider) {
            response.provider.endpoint = "";
            response.provider.linkId = "";
          }
          this.#send({ case: "heartbeat", value: { response } });
        },
        (error: unknown) => {
          if (this.#closed) return;
          const refusal = ConnectError.from(error);
          this.#send({ case: "heartbeat", value: { code: refusal.code, message: refusal.rawMessage } });
          // A refused owner, id or key ends the link, as does a link the agent has left (FAILED_PRECONDITION); a
          // registry that is away does not: the agent heartbeats again.
          const final =
            this.#providerId === undefined
              ? refusal.code !== Code.Unavailable && refusal.code !== Code.DeadlineExceeded
              : refusal.code === Code.Unauthenticated || refusal.code === Code.FailedPrecondition;
          if (final) this.close(refusal.code, refusal.rawMessage);
        },
      )
      .finally(() => {
        this.#heartbeating = false;
        const next = this.#pendingHeartbeat;
        this.#pendingHeartbeat = undefined;
        if (next && !this.#closed) this.#relayHeartbeat(next);
      });
  }

  #send(frame: Exclude<MessageInitFrame, { case: undefined }>): void {
    if (this.#closed) return;
    this.#writer.send(toBinary(AttachResponseSchema, create(AttachResponseSchema, { frame })));
  }
}

type MessageInitFrame = NonNullable<Parameters<typeof create<typeof AttachResponseSchema>>[1]>["frame"] & {};

/**
 * callChunks yields a large call's pieces, encoded, for the writer to interleave with other calls' frames; a call
 * cancelled meanwhile sends no more of them.
 */
function* callChunks(callId: number, bytes: Uint8Array, cancelled: () => boolean): Generator<Uint8Array> {
  for (let at = 0; at < bytes.length && !cancelled(); at += CALL_CHUNK_BYTES) {
    const chunk = bytes.subarray(at, at + CALL_CHUNK_BYTES);
    const last = at + CALL_CHUNK_BYTES >= bytes.length;
    yield toBinary(AttachResponseSchema, create(AttachResponseSchema, { frame: { case: "call", value: { callId, chunk, last } } }));
  }
}

/** refuse answers a stream with a gRPC status and no messages (a trailers-only response). */
function refuse(stream: http2.ServerHttp2Stream, code: Code, message: string): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    stream.close();
    return;
  }
  stream.respond(
    { ":status": 200, "content-type": "application/grpc", "grpc-status": String(code), "grpc-message": encodeURIComponent(message) },
    { endStream: true },
  );
  // The caller may still be sending; the call is over either way.
  setImmediate(() => stream.close());
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
