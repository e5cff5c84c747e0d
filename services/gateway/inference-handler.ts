import type { FastifyReply, FastifyRequest } from "fastify";
import type { Clock } from "../shared/clock.js";
import { OPERATIONS, operationLabel } from "../shared/inference-catalog.js";
import { writeAnswer } from "./answer-writer.js";
import type { Dispatch, Dispatcher } from "./dispatcher.js";
import { type GatewayMetrics, secondsSince, TOKEN_TYPES } from "./gateway-metrics.js";
import type { InferenceRequest } from "./inference-request.js";
import { type StreamSlotPool, StreamSlots } from "./rate-limits.js";
import { SilenceTicker } from "./silence-ticker.js";
import { AnswerTally } from "./usage-capture.js";

declare module "fastify" {
  interface FastifyRequest {
    /** dispatch is an inference request's routing, from which metrics and logs learn the provider that answered. */
    dispatch?: Dispatch;
  }
}

/** InferenceHandlerOptions are what the handler works with. */
export interface InferenceHandlerOptions {
  /** maxConcurrentStreams bounds each API key's streamed answers in flight; 0 is off. */
  readonly maxConcurrentStreams: number;
  /** streamSlots, when given, counts the streams instead of this gateway alone (gateways sharing a Redis). */
  readonly streamSlots?: StreamSlotPool;
  readonly dispatcher: Dispatcher;
  readonly metrics: GatewayMetrics;
  readonly clock: Clock;
  readonly requestTimeoutMs: number;
  readonly streamTimeoutMs: number;
  readonly keepaliveMs: number;
}

/**
 * InferenceHandler answers an inference request that its route has read and validated: it routes it, calls the
 * provider and writes the answer.
 */
export type InferenceHandler = (request: FastifyRequest, reply: FastifyReply, inference: InferenceRequest) => Promise<void>;

/**
 * createInferenceHandler builds the path every inference endpoint shares after its own reading: a stream slot for the
 * key, the deadline, dispatch (routing, failover, circuit breakers), the answer written as it comes, and the client's
 * disconnect cancelling the call. Time to first byte and tokens are measured under the model that answered, and kept
 * in the request's tally for its usage record.
 */
export function createInferenceHandler(options: InferenceHandlerOptions): InferenceHandler {
  const { clock } = options;
  const { series } = options.metrics;
  const streams = options.streamSlots ?? new StreamSlots(options.maxConcurrentStreams);
  const silence = new SilenceTicker(options.keepaliveMs);
  return async (request, reply, inference) => {
    const tally = new AnswerTally(inference.model);
    request.tally = tally;
    let release: (() => void) | undefined;
    const controller = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableFinished) controller.abort();
    };
    reply.raw.once("close", onClose);
    try {
      release = inference.stream ? await streams.take(request.principal.keyId) : undefined;
      const dispatch = options.dispatcher.dispatch({
        ...inference,
        principal: request.principal,
        requestId: request.id,
        deadlineMs: clock.now() + (inference.stream ? options.streamTimeoutMs : options.requestTimeoutMs),
        signal: controller.signal,
      });
      request.dispatch = dispatch;
      const operation = operationLabel(inference.operation);
      const model = () => dispatch.answeredBy?.model.id ?? "";
      await writeAnswer(reply, dispatch.parts, {
        requestId: request.id,
        api: OPERATIONS[inference.operation].api,
        silence,
        hideUsageChunks: inference.hideUsageChunks,
        observer: {
          // From the request's arrival, as its duration is: reading and validating it is part of the wait.
          firstByte: () => {
            tally.firstByteSeconds = secondsSince(request.receivedAtNs);
            series.timeToFirstToken(operation)(model()).observe(tally.firstByteSeconds);
          },
          trailer: ({ usage }) => {
            tally.usage = usage;
            if (!usage) return;
            const tokens = series.tokens(operation)(model());
            tokens(TOKEN_TYPES.input).inc(usage.promptTokens);
            tokens(TOKEN_TYPES.output).inc(usage.completionTokens);
          },
        },
      });
    } finally {
      tally.end();
      release?.();
      reply.raw.removeListener("close", onClose);
    }
  };
}
