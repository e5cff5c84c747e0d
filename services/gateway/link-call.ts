import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { InferenceCall, InferencePart } from "../../gen/infermesh/v1/inference_pb.js";
import type { CallEnd } from "../../gen/infermesh/v1/link_pb.js";
import { AnswerQueue } from "../shared/answer-queue.js";
import type { Clock, TimerHandle } from "../shared/clock.js";
import { CREDIT_STEP_BYTES, INITIAL_CALL_CREDIT, partBytes } from "../shared/link/link-protocol.js";

/** LinkCallOptions are one call's ties to its link. */
export interface LinkCallOptions {
  readonly callId: number;
  readonly call: InferenceCall;
  readonly signal: AbortSignal;
  readonly clock: Clock;
  /** grant gives the agent more credit for this call. */
  readonly grant: (bytes: number) => void;
  /** cancel tells the agent the answer is no longer wanted. */
  readonly cancel: () => void;
  /** done forgets a call that ended from the agent's side. */
  readonly done: () => void;
}

/**
 * LinkCall is one call on an agent's link, read as the parts of its answer. Parts queue as frames arrive; as the
 * reader takes them it grants the agent credit, so the agent sends no faster than the client reads. It ends with the
 * agent's CallEnd: OK ends the iteration, any other code throws a ConnectError with it. The caller's abort, the
 * deadline, and a reader that stops early cancel the call on the link.
 */
export class LinkCall extends AnswerQueue {
  readonly #options: LinkCallOptions;
  readonly #deadline: TimerHandle | undefined;
  /** #unthanked counts the bytes read since the last grant. */
  #unthanked = 0;
  /**
   * #granted and #received count the answer's bytes the agent may send and has sent. The agent starts a frame only
   * while it has credit, so one frame may go past it (a large event), but none may start beyond it: an agent that
   * ignores credit is broken or hostile, and must not make the gateway buffer without bound.
   */
  #granted = INITIAL_CALL_CREDIT;
  #received = 0;

  constructor(options: LinkCallOptions) {
    super();
    this.#options = options;
    const { call, signal, clock } = options;
    const deadlineMs = call.deadline ? timestampMs(call.deadline) : undefined;
    if (signal.aborted) {
      this.settle(new ConnectError("the call was cancelled", Code.Canceled));
    } else if (deadlineMs !== undefined && deadlineMs <= clock.now()) {
      this.settle(new ConnectError("the call's deadline passed before it began", Code.DeadlineExceeded));
    }
    if (this.over) {
      this.#deadline = undefined;
      return;
    }
    signal.addEventListener("abort", this.#onAbort);
    this.#deadline = this.deadlineTimer(deadlineMs, clock);
  }

  /** push takes the parts of one answer frame, and its end when the frame carries one. */
  push(parts: readonly InferencePart[], end: CallEnd | undefined): void {
    if (this.over) return;
    if (parts.length > 0 && this.#received >= this.#granted) {
      this.cancel(new ConnectError("the agent sent more of the answer than it was granted", Code.ResourceExhausted));
      return;
    }
    for (const part of parts) {
      this.enqueue(part);
      this.#received += partBytes(part);
    }
    if (end) this.#finish(end.code === 0 ? null : new ConnectError(end.message, end.code as Code));
    this.wake();
  }

  /** fail ends the call from the link's side (the link closed); nothing is sent to the agent. */
  fail(error: ConnectError): void {
    this.#finish(error);
    this.wake();
  }

  protected cancel(error: ConnectError): void {
    if (this.over) return;
    this.#finish(error, true);
    this.wake();
  }

  protected override taken(part: InferencePart): void {
    if (this.over) return;
    this.#unthanked += partBytes(part);
    if (this.#unthanked >= CREDIT_STEP_BYTES) {
      this.#granted += this.#unthanked;
      this.#options.grant(this.#unthanked);
      this.#unthanked = 0;
    }
  }

  readonly #onAbort = (): void => {
    this.cancel(new ConnectError("the call was cancelled", Code.Canceled));
  };

  #finish(outcome: ConnectError | null, cancelled = false): void {
    if (!this.settle(outcome)) return;
    this.#options.signal.removeEventListener("abort", this.#onAbort);
    this.#deadline?.cancel();
    if (cancelled) this.#options.cancel();
    else this.#options.done();
  }
}
