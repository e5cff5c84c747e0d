import type { ServerResponse } from "node:http";
import { sendError } from "./http-replies.js";
import type { LlamaError } from "./llama-errors.js";
import { injectedMediaFailure } from "./openai-errors.js";
import type { ResolvedFailure } from "./simulator-options.js";
import { sseFrame } from "./sse.js";
import { StepTimer } from "./step-timer.js";

/**
 * PacedAnswerPlan describes a media answer as a sequence of units (transcript words, image events, speech chunks, or
 * one whole body), each produced only when it is due so that large answers never sit in memory whole.
 */
export interface PacedAnswerPlan {
  /** headers are the 200 answer's headers, sent with the first unit. */
  readonly headers: Readonly<Record<string, string | number>>;
  /** sized adds a Content-Length header; set for one-unit (whole body) answers. */
  readonly sized: boolean;
  readonly units: number;
  /** unit produces unit index; it is called once per index, in order. */
  readonly unit: (index: number) => string | Buffer;
  /** closing, when set, is written after the last unit (an SSE stream's final event). */
  readonly closing: (() => string | Buffer) | undefined;
  /** firstDelayMs is the wait before the first unit (the simulated processing time). */
  readonly firstDelayMs: number;
  /** intervalMs is the pause between units. */
  readonly intervalMs: number;
  /** failure strikes after failure.afterTokens units (0: before the headers). */
  readonly failure: ResolvedFailure | undefined;
  /**
   * framing says how a "status" failure shows once the headers are out: an SSE stream ends with an error event; a
   * plain body cannot carry one, so its connection is cut, as a server that fails mid-body does.
   */
  readonly framing: "sse" | "body";
  /**
   * failureError is the error of a "status" failure: OpenAI's shape (injectedMediaFailure) unless the route is one of
   * llama-server's own, whose errors take its shape (injectedFailureError).
   */
  readonly failureError?: (status: number) => LlamaError;
}

/** AnswerTiming is what a one-piece answer takes of a request's pacing: its first delay and the failure it meets. */
export interface AnswerTiming {
  readonly firstDelayMs: number;
  readonly failure: ResolvedFailure | undefined;
}

/**
 * wholeAnswerPlan plans a one-piece answer produced after the timing's first delay; a failure strikes before it
 * whatever its afterTokens, since there is nothing to cut in between. failureError is as in PacedAnswerPlan.
 */
export function wholeAnswerPlan(
  timing: AnswerTiming,
  headers: PacedAnswerPlan["headers"],
  body: () => string | Buffer,
  failureError?: (status: number) => LlamaError,
): PacedAnswerPlan {
  return {
    headers,
    sized: true,
    units: 1,
    unit: body,
    closing: undefined,
    firstDelayMs: timing.firstDelayMs,
    intervalMs: 0,
    failure: timing.failure === undefined ? undefined : { ...timing.failure, afterTokens: 0 },
    framing: "body",
    ...(failureError === undefined ? {} : { failureError }),
  };
}

/**
 * PacedAnswer writes a PacedAnswerPlan to a response with one timer: it honours backpressure, injects the failure and
 * stops at once when cancelled (client gone, simulator closing). It is the media counterpart of Generation.
 */
export class PacedAnswer {
  /** tokensSent counts the units written so far. */
  tokensSent = 0;
  /** dropped is set when the answer cut the connection itself, which is not a client abort. */
  dropped = false;
  private readonly ticks: StepTimer;

  constructor(
    private readonly res: ServerResponse,
    private readonly plan: PacedAnswerPlan,
    onSettled: (answer: PacedAnswer) => void,
  ) {
    this.ticks = new StepTimer(
      res,
      () => this.step(),
      () => onSettled(this),
    );
  }

  /** start schedules the first unit. */
  start(): void {
    this.ticks.schedule(this.plan.firstDelayMs);
  }

  /** cancel stops the answer at once without writing. */
  cancel(): void {
    this.ticks.stop();
  }

  private step(): void {
    const { plan, res } = this;
    if (plan.failure !== undefined && plan.failure.afterTokens === this.tokensSent) {
      this.strike(plan.failure);
      return;
    }
    const bytes = plan.unit(this.tokensSent);
    if (!res.headersSent) {
      res.writeHead(200, plan.sized ? { ...plan.headers, "Content-Length": Buffer.byteLength(bytes) } : plan.headers);
    }
    this.tokensSent++;
    if (this.tokensSent === plan.units && plan.failure?.afterTokens !== plan.units) {
      if (plan.closing !== undefined) {
        res.write(bytes);
        res.end(plan.closing());
      } else {
        res.end(bytes);
      }
      this.ticks.stop();
      return;
    }
    this.ticks.next(res.write(bytes), this.intervalMs);
  }

  private readonly intervalMs = (): number => this.plan.intervalMs;

  private strike(failure: ResolvedFailure): void {
    switch (failure.mode) {
      case "status": {
        const error = (this.plan.failureError ?? injectedMediaFailure)(failure.status);
        if (!this.res.headersSent) sendError(this.res, error);
        else if (this.plan.framing === "sse") this.res.end(sseFrame(error.body));
        else this.cut();
        this.ticks.stop();
        return;
      }
      case "stall":
        // The answer stays active, holding the connection, until the client leaves or the simulator closes.
        return;
      case "drop":
        this.cut();
        this.ticks.stop();
        return;
    }
  }

  private cut(): void {
    this.dropped = true;
    this.res.socket?.destroy();
  }
}
