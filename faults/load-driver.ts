import { setTimeout as sleep } from "node:timers/promises";
import { Agent, request } from "undici";
import { classifyAnswer, type Ending, type Verdict } from "./answer-classifier.js";
import type { Random } from "./seeded-random.js";

/** LoadOptions describes the bounded load: how many clients, what they ask, and when they stop. */
export interface LoadOptions {
  /** gatewayUrl is the gateway's base URL, without "/v1". */
  readonly gatewayUrl: string;
  readonly apiKey: string;
  /** apiKeys, when given, are the clients' own keys instead: client i uses apiKeys[i % apiKeys.length]. */
  readonly apiKeys?: readonly string[];
  /** ca is the authority an https:// gatewayUrl's certificate is signed by, when not a public one. */
  readonly ca?: Buffer;
  readonly model: string;
  /** concurrency is the number of clients, each sending one request at a time. */
  readonly concurrency: number;
  readonly random: Random;
  /** clientTimeoutMs is each request's hard timeout: a request still open then is hung. */
  readonly clientTimeoutMs: number;
  /** streamShare is the share of streamed requests, in [0, 1]. */
  readonly streamShare: number;
  /** tokens is the range of max_tokens drawn per request. */
  readonly tokens: readonly [number, number];
  /** tokensPerSecond paces the simulator per request (its `sim` override), so streams last tokens / pace seconds. */
  readonly tokensPerSecond: number;
  /** errorPauseMs is a client's pause after a request that did not succeed, so that fast failures stay bounded. */
  readonly errorPauseMs: number;
  /**
   * unreachablePauseMs is the pause after a request that got no response head at all (the gateway refused or cut the
   * connection), longer as clients back off from a server that is down, so its outage does not flood the figures.
   */
  readonly unreachablePauseMs: number;
  /** now is the suite's clock: ms since the load began. */
  readonly now: () => number;
  /** stopping says when clients send no new request; those in flight still finish. */
  readonly stopping: () => boolean;
  /** requestIdPrefix makes request ids unique across runs, for grepping the processes' logs. */
  readonly requestIdPrefix: string;
}

/** RequestRecord is one request of the load, its timing and its verdict. */
export interface RequestRecord extends Verdict {
  readonly id: string;
  readonly stream: boolean;
  readonly maxTokens: number;
  readonly startMs: number;
  readonly endMs: number;
  /** headersMs is when the response head arrived (undefined if it never did). */
  readonly headersMs: number | undefined;
  /** maxGapMs is the longest silence the client saw after the head, between two body chunks: a stall's length. */
  readonly maxGapMs: number;
  readonly status: number | undefined;
  /** ending is how the exchange ended on the client's side, and failure the client error's message if it broke. */
  readonly ending: Ending;
  readonly failure: string | undefined;
  /** tail is the end of the body of a request that did not succeed cleanly, for diagnosis. */
  readonly tail: string | undefined;
}

/** runLoad drives the load until stopping() and every request in flight has ended, and returns every request. */
export async function runLoad(options: LoadOptions): Promise<RequestRecord[]> {
  const records: RequestRecord[] = [];
  // The client's own timeouts are off: the hard timeout below is the only one, so a hang is seen as a hang.
  const dispatcher = new Agent({
    headersTimeout: 0,
    bodyTimeout: 0,
    keepAliveTimeout: 10_000,
    ...(options.ca === undefined ? {} : { connect: { ca: options.ca } }),
  });
  let sequence = 0;
  const client = async (worker: number) => {
    const random = options.random.fork(`client-${worker}`);
    const keys = options.apiKeys ?? [];
    const target = keys.length === 0 ? options : { ...options, apiKey: keys[worker % keys.length] as string };
    while (!options.stopping()) {
      const index = sequence++;
      const record = await send(target, dispatcher, random, `${options.requestIdPrefix}-${index}`);
      records.push(record);
      if (record.outcome !== "succeeded") await sleep(record.headersMs === undefined ? options.unreachablePauseMs : options.errorPauseMs);
    }
  };
  try {
    await Promise.all(Array.from({ length: options.concurrency }, (_, worker) => client(worker)));
  } finally {
    await dispatcher.close();
  }
  return records.sort((a, b) => a.startMs - b.startMs);
}

/** chatBody is a chat completion whose length and pace the simulator honours. */
export function chatBody(model: string, stream: boolean, maxTokens: number, tokensPerSecond: number, text: string): string {
  return JSON.stringify({
    model,
    stream,
    max_tokens: maxTokens,
    messages: [{ role: "user", content: text }],
    sim: { tokens_per_second: tokensPerSecond },
  });
}

/** sendChat sends one chat completion and classifies what came back; the building block of the load and the checks. */
export async function sendChat(
  dispatcher: Agent,
  target: { gatewayUrl: string; apiKey: string; now: () => number; clientTimeoutMs: number },
  id: string,
  body: string,
  stream: boolean,
  maxTokens: number,
): Promise<RequestRecord> {
  const startMs = target.now();
  let status: number | undefined;
  let contentType = "";
  let headersMs: number | undefined;
  let text = "";
  let ending: Ending = "complete";
  let failure: string | undefined;
  let lastChunkMs = startMs;
  let maxGapMs = 0;
  let timedOut = false;
  const controller = new AbortController();
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new Error(`client timeout after ${target.clientTimeoutMs} ms`));
  }, target.clientTimeoutMs);
  try {
    const response = await request(`${target.gatewayUrl}/v1/chat/completions`, {
      method: "POST",
      dispatcher,
      headers: { authorization: `Bearer ${target.apiKey}`, "content-type": "application/json", "x-request-id": id },
      body,
      signal: controller.signal,
    });
    status = response.statusCode;
    headersMs = target.now();
    lastChunkMs = headersMs;
    const type = response.headers["content-type"];
    contentType = (Array.isArray(type) ? type[0] : type) ?? "";
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      const at = target.now();
      maxGapMs = Math.max(maxGapMs, at - lastChunkMs);
      lastChunkMs = at;
      text += chunk.toString("utf8");
    }
  } catch (error) {
    ending = timedOut ? "timeout" : "reset";
    failure = describe(error);
  } finally {
    clearTimeout(timer);
  }
  const endMs = target.now();
  if (ending !== "complete" && headersMs !== undefined) maxGapMs = Math.max(maxGapMs, endMs - lastChunkMs);
  const verdict = classifyAnswer({ stream, status, contentType, body: text, ending, failure });
  const tail = verdict.outcome === "succeeded" && verdict.anomalies.length === 0 ? undefined : text.slice(-400);
  return { ...verdict, id, stream, maxTokens, startMs, endMs, headersMs, maxGapMs, status, ending, failure, tail };
}

async function send(options: LoadOptions, dispatcher: Agent, random: Random, id: string): Promise<RequestRecord> {
  const stream = random.next() < options.streamShare;
  const maxTokens = random.int(options.tokens[0], options.tokens[1]);
  const body = chatBody(options.model, stream, maxTokens, options.tokensPerSecond, `fault suite request ${id}`);
  return sendChat(dispatcher, options, id, body, stream, maxTokens);
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
  return `${typeof code === "string" ? `${code} ` : ""}${error.message}${cause}`;
}
