import type { FastifyReply, FastifyRequest } from "fastify";
import type { MediaFile, Operation } from "../../gen/infermesh/v1/inference_pb.js";
import { writeAnswer } from "./answer-writer.js";
import type { Dispatcher } from "./dispatcher.js";
import { operationLabel } from "../shared/inference-catalog.js";
import { TOKEN_TYPES, UNROUTED_MODEL, type GatewayMetrics } from "./gateway-metrics.js";
import { StreamSlots } from "./rate-limits.js";
import { SilenceTicker } from "./silence-ticker.js";
import type { Route } from "./routing-table.js";

/** ParsedInference is an HTTP request read and validated enough to route: what every endpoint hands the handler. */
export interface ParsedInference {
  readonly model: string;
  readonly stream: boolean;
  /** body returns the body for the provider, given its exact name for the model. */
  readonly body: (servedModel: string) => Uint8Array;
  readonly media?: MediaFile[];
  /** dropUsageOnlyChunks hides the usage chunk the gateway asked for on the client's behalf. */
  readonly dropUsageOnlyChunks?: boolean;
}

/** InferenceHandlerOptions are what the handler works with. */
export interface InferenceHandlerOptions {
  /** maxConcurrentStreams bounds each API key's streamed answers in flight; 0 is off. */
  readonly maxConcurrentStreams: number;
  readonly dispatcher: Dispatcher;
  readonly metrics: GatewayMetrics;
  readonly requestTimeoutMs: number;
  readonly streamTimeoutMs: number;
  readonly keepaliveMs: number;
}

/** InferenceHandler serves one inference endpoint: parse (endpoint-specific), route, call, answer, measure. */
export type InferenceHandler = (
  request: FastifyRequest,
  reply: FastifyReply,
  operation: Exclude<Operation, Operation.UNSPECIFIED>,
  route: string,
  parse: () => ParsedInference | Promise<ParsedInference>,
) => Promise<void>;

/**
 * createInferenceHandler builds the path every inference endpoint shares: the client's disconnect cancels the call,
 * the answer is written as it comes, and requests, latency, time to first byte and tokens are measured with bounded
 * labels (the served model, never the name a client made up).
 */
export function createInferenceHandler(options: InferenceHandlerOptions): InferenceHandler {
  const { metrics } = options;
  const streams = new StreamSlots(options.maxConcurrentStreams);
  const silence = new SilenceTicker(options.keepaliveMs);
  return async (request, reply, operation, route, parse) => {
    const started = process.hrtime.bigint();
    const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9;
    let served: Route | undefined;
    metrics.inFlight.inc({ route });
    const controller = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableFinished) controller.abort();
    };
    reply.raw.once("close", onClose);
    let releaseSlot: (() => void) | undefined;
    try {
      const parsed = await parse();
      if (parsed.stream) releaseSlot = streams.take(request.principal.keyId);
      const dispatch = options.dispatcher.dispatch({
        principal: request.principal,
        operation,
        model: parsed.model,
        stream: parsed.stream,
        requestId: request.id,
        deadlineMs: Date.now() + (parsed.stream ? options.streamTimeoutMs : options.requestTimeoutMs),
        body: parsed.body,
        ...(parsed.media ? { media: parsed.media } : {}),
        signal: controller.signal,
      });
      served = dispatch.route;
      const servedModel = served.model.id;
      await writeAnswer(reply, dispatch.parts, {
        requestId: request.id,
        silence,
        dropUsageOnlyChunks: parsed.dropUsageOnlyChunks ?? false,
        observer: {
          firstByte: () => metrics.timeToFirstToken.observe({ operation: operationLabel(operation), model: servedModel }, elapsed()),
          trailer: (trailer) => {
            const usage = trailer.usage;
            if (!usage) return;
            const labels = { operation: operationLabel(operation), model: servedModel };
            metrics.tokens.inc({ ...labels, type: TOKEN_TYPES.input }, usage.promptTokens);
            metrics.tokens.inc({ ...labels, type: TOKEN_TYPES.output }, usage.completionTokens);
          },
        },
      });
    } finally {
      releaseSlot?.();
      reply.raw.removeListener("close", onClose);
      metrics.inFlight.dec({ route });
      const record = () => {
        metrics.duration.observe({ operation: operationLabel(operation) }, elapsed());
        metrics.requests.inc({
          route,
          model: served?.model.id ?? UNROUTED_MODEL,
          status_class: `${Math.floor(reply.raw.statusCode / 100)}xx`,
        });
      };
      if (reply.sent || reply.raw.headersSent) record();
      else reply.raw.once("finish", record);
    }
  };
}
