import type { ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import type { AnswerEnding, AnswerFormat } from "./answer-format.js";
import type { GenerationRequest } from "./generation-request.js";
import { sendError, sendJson } from "./http-replies.js";
import { injectedFailureError } from "./llama-errors.js";
import type { Timings } from "./llama-payloads.js";
import { timingsOf } from "./llama-payloads.js";
import { choiceSeed, tokenJson, tokenText, tokenWordIndex } from "./simulated-text.js";
import { SSE_HEADERS } from "./sse.js";
import { StepTimer, TIMER_SLACK_MS } from "./step-timer.js";

/**
 * MAX_TOKENS_PER_WRITE bounds how many overdue tokens one step writes, so that unpaced (tokensPerSecond 0) or
 * catching-up streams yield the event loop to the others.
 */
const MAX_TOKENS_PER_WRITE = 256;

/**
 * Generation produces one answer of the simulator FIXTURE: it paces tokens with a single timer, writes SSE frames
 * (or, unstreamed, one JSON body at the end) in its AnswerFormat, honours backpressure and injects the request's
 * failure. It keeps only what it needs (seeds and counters), never the request body nor the text produced, so
 * thousands can run at once.
 */
export class Generation {
  /** tokensSent counts the tokens produced so far, per choice. */
  tokensSent = 0;
  /** dropped is set when the generation destroyed the socket itself, which is not a client abort. */
  dropped = false;
  private readonly ticks: StepTimer;
  private readonly startedAtMs = performance.now();
  private firstTokenAtMs: number | undefined;
  private readonly intervalMs: number;
  private readonly seeds: Uint32Array;

  constructor(
    private readonly res: ServerResponse,
    private readonly request: GenerationRequest,
    private readonly format: AnswerFormat,
    onSettled: (generation: Generation) => void,
  ) {
    this.ticks = new StepTimer(
      res,
      () => this.step(),
      () => onSettled(this),
    );
    this.intervalMs = request.tokensPerSecond > 0 ? 1000 / request.tokensPerSecond : 0;
    this.seeds = new Uint32Array(request.choices);
    for (let choice = 0; choice < request.choices; choice++) this.seeds[choice] = choiceSeed(request.seed, choice);
  }

  /** start schedules the first token (or the whole answer) after the time to first token. */
  start(): void {
    if (this.request.stream) {
      this.ticks.schedule(this.request.timeToFirstTokenMs);
      return;
    }
    const failure = this.strikingFailure();
    const produced = failure === undefined ? this.request.tokens : failure.afterTokens;
    // The same timeline as a stream: the answer (or the failure) comes when the last token is produced.
    this.ticks.schedule(this.request.timeToFirstTokenMs + Math.max(0, produced - 1) * this.intervalMs);
  }

  /** cancel stops the generation at once without writing, e.g. because the client went away. */
  cancel(): void {
    this.ticks.stop();
  }

  private step(): void {
    if (this.request.stream) this.streamStep();
    else this.answerWhole();
  }

  private streamStep(): void {
    const request = this.request;
    const failure = this.strikingFailure();
    const nowMs = performance.now();
    let out = "";
    if (this.firstTokenAtMs === undefined) {
      if (failure?.afterTokens === 0) {
        this.strike(out);
        return;
      }
      this.firstTokenAtMs = nowMs;
      // Like llama-server, the headers leave with the first token, so that errors found while reading the prompt can
      // still be answered with a status.
      this.res.writeHead(200, SSE_HEADERS);
      for (let choice = 0; choice < request.choices; choice++) out += this.format.opening(choice);
    }
    let written = 0;
    while (this.tokensSent < request.tokens && written < MAX_TOKENS_PER_WRITE && this.dueMs(this.tokensSent) <= nowMs + TIMER_SLACK_MS) {
      for (let choice = 0; choice < request.choices; choice++) {
        out += this.format.content(choice, tokenJson(tokenWordIndex(this.seeds[choice] ?? 0, this.tokensSent)));
      }
      this.tokensSent++;
      written++;
      if (failure?.afterTokens === this.tokensSent) {
        this.strike(out);
        return;
      }
    }
    if (this.tokensSent === request.tokens) {
      this.res.end(out + this.format.closing(this.ending(nowMs), request.choices));
      this.ticks.stop();
      return;
    }
    this.ticks.next(out === "" || this.res.write(out), this.nextTokenDelayMs);
  }

  private answerWhole(): void {
    const request = this.request;
    const failure = this.strikingFailure();
    if (failure !== undefined) {
      this.tokensSent = failure.afterTokens;
      this.strike("");
      return;
    }
    const nowMs = performance.now();
    this.firstTokenAtMs = Math.min(nowMs, this.startedAtMs + request.timeToFirstTokenMs);
    this.tokensSent = request.tokens;
    sendJson(this.res, 200, this.format.whole(this.ending(nowMs), request.choices));
    this.ticks.stop();
  }

  /** strike applies the request's failure, after writing out (frames produced before it struck). */
  private strike(out: string): void {
    const failure = this.request.failure;
    if (failure === undefined) return;
    switch (failure.mode) {
      case "status": {
        const error = injectedFailureError(failure.status);
        if (this.res.headersSent) {
          this.res.end(out + this.format.failure(error));
        } else {
          sendError(this.res, error);
        }
        this.ticks.stop();
        return;
      }
      case "stall":
        // The generation stays active, holding the connection, until the client leaves (cancel) or the simulator closes.
        if (out !== "") this.res.write(out);
        return;
      case "drop": {
        this.dropped = true;
        const socket = this.res.socket;
        if (out !== "") this.res.write(out, () => socket?.destroy());
        else socket?.destroy();
        this.ticks.stop();
        return;
      }
    }
  }

  /** strikingFailure is the request's failure when it strikes within this answer's tokens. */
  private strikingFailure(): GenerationRequest["failure"] {
    const failure = this.request.failure;
    return failure !== undefined && failure.afterTokens <= this.request.tokens ? failure : undefined;
  }

  /** ending describes the answer once its last token is out. */
  private ending(nowMs: number): AnswerEnding {
    const { request, seeds } = this;
    return {
      finishReason: request.finishReason,
      promptTokens: request.promptTokens,
      completionTokens: request.tokens,
      timings: this.timings(nowMs),
      text(choice) {
        const seed = seeds[choice] ?? 0;
        let text = "";
        for (let token = 0; token < request.tokens; token++) text += tokenText(tokenWordIndex(seed, token));
        return text;
      },
    };
  }

  private timings(nowMs: number): Timings {
    const firstTokenAtMs = this.firstTokenAtMs ?? nowMs;
    return timingsOf(this.request.promptTokens, firstTokenAtMs - this.startedAtMs, this.request.tokens, nowMs - firstTokenAtMs);
  }

  /** dueMs is when token index is due: tokens are paced from the start, so timer lateness does not accumulate. */
  private dueMs(index: number): number {
    return this.startedAtMs + this.request.timeToFirstTokenMs + index * this.intervalMs;
  }

  private readonly nextTokenDelayMs = (): number => this.dueMs(this.tokensSent) - performance.now();
}
