import type { FastifyRequest } from "fastify";
import type { Usage } from "../../gen/infermesh/v1/inference_pb.js";
import type { Principal } from "../../gen/infermesh/v1/registry_pb.js";
import type { Clock } from "../shared/clock.js";
import { type KnownOperation, operationLabel } from "../shared/inference-catalog.js";
import type { Route } from "./routing-table.js";
import type { UsageRecorder } from "./usage-recorder.js";

declare module "fastify" {
  interface FastifyRequest {
    /** tally is what the inference handler learned of the request's answer, for its usage record. */
    tally?: AnswerTally;
  }
}

/** MAX_RECORDED_MODEL_CHARS bounds the model name a usage record keeps for a request no provider answered. */
export const MAX_RECORDED_MODEL_CHARS = 256;

/**
 * AnswerTally is what the path answering an inference request learns that its usage record needs and the request's
 * end cannot see: the model asked for, when the answer's first byte went out, and the provider's usage report. It is
 * ended when the answer is done with, trailer included: an event stream's trailer comes after its `[DONE]`, so after
 * the client's response may have closed.
 */
export class AnswerTally {
  /** model is the model as the client named it, cut to MAX_RECORDED_MODEL_CHARS: a made-up name can be megabytes. */
  readonly model: string;
  /** firstByteSeconds is the time from the request's arrival to the answer's first body byte; 0 while none went out. */
  firstByteSeconds = 0;
  /** usage is the provider's usage report, from the answer's trailer. */
  usage: Usage | undefined = undefined;
  #ended = false;
  #whenEnded: (() => void) | undefined;

  constructor(model: string) {
    this.model = model.length > MAX_RECORDED_MODEL_CHARS ? model.slice(0, MAX_RECORDED_MODEL_CHARS) : model;
  }

  /** end marks the answer done with: its trailer read, or never coming. */
  end(): void {
    this.#ended = true;
    const then = this.#whenEnded;
    this.#whenEnded = undefined;
    then?.();
  }

  /** ended is true once end() was called. */
  get ended(): boolean {
    return this.#ended;
  }

  /** whenEnded runs fn once end() is called; only one can wait. */
  whenEnded(fn: () => void): void {
    if (this.#ended) fn();
    else this.#whenEnded = fn;
  }
}

/**
 * UsageCapture turns answered inference requests, from either face, into usage records: who asked (only
 * authenticated requests have a record), which provider answered and its owner, the model, the operation, the status
 * the caller got, the provider's usage report, the time to first byte and the duration.
 */
export class UsageCapture {
  readonly #recorder: UsageRecorder;
  readonly #clock: Clock;

  constructor(recorder: UsageRecorder, clock: Clock) {
    this.#recorder = recorder;
    this.#clock = clock;
  }

  /**
   * answered is observeInferenceRequests' listener: it records an HTTP request to an inference route when its
   * response closes, or, when the answer's trailer is still to come, as soon as it has come.
   */
  readonly answered = (request: FastifyRequest, operation: KnownOperation, status: number, seconds: number): void => {
    // A request refused before authentication (401) has no principal, and no one to account it to.
    const principal = request.principal as Principal | undefined;
    if (principal === undefined) return;
    const arrivalMs = this.#clock.now() - seconds * 1000;
    const tally = request.tally;
    if (tally === undefined || tally.ended) {
      this.record(principal, request.dispatch?.answeredBy, operationLabel(operation), status, arrivalMs, seconds, tally);
      return;
    }
    tally.whenEnded(() =>
      this.record(principal, request.dispatch?.answeredBy, operationLabel(operation), status, arrivalMs, seconds, tally),
    );
  };

  /**
   * record records one answered request: arrivalMs is when it came (wall clock), seconds how long it took; tally is
   * undefined for a request refused before its handler ran (a body that failed validation, a rate limit).
   */
  record(
    principal: Principal,
    answeredBy: Route | undefined,
    operation: string,
    status: number,
    arrivalMs: number,
    seconds: number,
    tally: AnswerTally | undefined,
  ): void {
    const usage = tally?.usage;
    this.#recorder.record({
      id: this.#recorder.nextId(),
      timeMs: Math.round(arrivalMs),
      userId: principal.userId,
      keyId: principal.keyId,
      providerId: answeredBy?.provider.id ?? "",
      providerOwnerId: answeredBy?.provider.ownerUserId ?? "",
      providerName: answeredBy?.provider.name ?? "",
      model: answeredBy?.model.id ?? tally?.model ?? "",
      operation,
      status,
      promptTokens: usage?.promptTokens ?? 0,
      completionTokens: usage?.completionTokens ?? 0,
      audioSeconds: usage?.audioSeconds ?? 0,
      images: usage?.images ?? 0,
      ttfbMs: (tally?.firstByteSeconds ?? 0) * 1000,
      durationMs: seconds * 1000,
    });
  }
}
