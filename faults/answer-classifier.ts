/**
 * Outcome is what a client made of one request:
 * - succeeded: 200 and a complete body, or a stream that ended with `data: [DONE]`;
 * - clean_error: an HTTP error with OpenAI's envelope, or a stream whose last frame is one `data: {"error":...}`;
 * - hung: the client's hard timeout struck first;
 * - lost: anything else (a stream that ended without [DONE] or an error frame, a truncated body, a reset).
 */
export type Outcome = "succeeded" | "clean_error" | "hung" | "lost";

/** OUTCOMES lists the outcomes in report order. */
export const OUTCOMES: readonly Outcome[] = ["succeeded", "clean_error", "hung", "lost"];

/** Ending is how the exchange ended on the client's side. */
export type Ending = "complete" | "reset" | "timeout";

/** ObservedAnswer is everything the client saw of one request. */
export interface ObservedAnswer {
  readonly stream: boolean;
  /** status is undefined when no response head arrived. */
  readonly status: number | undefined;
  readonly contentType: string;
  readonly body: string;
  readonly ending: Ending;
  /** failure is the client error's message when the ending is not "complete". */
  readonly failure: string | undefined;
}

/** Phase says how far an answer had come when it went wrong. */
export type Phase = "before headers" | "before the first event" | "mid-stream" | "reading the body" | "complete";

/** Verdict is the classification of one answer. */
export interface Verdict {
  readonly outcome: Outcome;
  readonly phase: Phase;
  /** detail says why, in a few words, for the report. */
  readonly detail: string;
  /** events counts the stream's data events before [DONE] (0 for bodies). */
  readonly events: number;
  /** error is "STATUS type" of a clean error, such as "502 upstream_error". */
  readonly error: string | undefined;
  /** anomalies are oddities that do not change the outcome, such as an error frame after [DONE]. */
  readonly anomalies: readonly string[];
}

/** classifyAnswer turns what a client saw into a Verdict; it is pure, so every rule has a unit test's reach. */
export function classifyAnswer(answer: ObservedAnswer): Verdict {
  if (answer.status === undefined) {
    return answer.ending === "timeout"
      ? verdict("hung", "before headers", "no response head before the client's timeout")
      : verdict("lost", "before headers", `the connection failed before a response: ${answer.failure ?? "unknown"}`);
  }
  if (answer.status >= 400) return classifyErrorStatus(answer);
  if (answer.status !== 200) return verdict("lost", "complete", `unexpected status ${answer.status}`);
  if (answer.contentType.startsWith("text/event-stream")) return classifyStream(answer);
  return classifyBody(answer);
}

function classifyErrorStatus(answer: ObservedAnswer): Verdict {
  if (answer.ending === "timeout")
    return verdict("hung", "reading the body", `HTTP ${answer.status}, body unfinished at the client's timeout`);
  if (answer.ending === "reset")
    return verdict("lost", "reading the body", `HTTP ${answer.status}, then the connection broke: ${answer.failure ?? ""}`);
  const envelope = errorEnvelope(answer.body);
  if (!envelope) return verdict("lost", "complete", `HTTP ${answer.status} without OpenAI's error envelope: ${clip(answer.body)}`);
  return { ...verdict("clean_error", "complete", envelope.message), error: `${answer.status} ${envelope.type}` };
}

function classifyBody(answer: ObservedAnswer): Verdict {
  if (answer.ending === "timeout") {
    return verdict(
      "hung",
      "reading the body",
      answer.body.length === 0 ? "200 head, no body before the client's timeout" : "200, body unfinished at the client's timeout",
    );
  }
  if (answer.ending === "reset") return verdict("lost", "reading the body", `200, then the connection broke: ${answer.failure ?? ""}`);
  let json: unknown;
  try {
    json = JSON.parse(answer.body);
  } catch {
    return verdict("lost", "reading the body", `200 with a truncated or invalid JSON body: ${clip(answer.body)}`);
  }
  const choice = (json as { choices?: { message?: { content?: unknown }; finish_reason?: unknown }[] }).choices?.[0];
  if (typeof choice?.message?.content !== "string" || typeof choice.finish_reason !== "string") {
    return verdict("lost", "complete", `200 without a complete chat completion: ${clip(answer.body)}`);
  }
  return verdict("succeeded", "complete", "200 with a complete body");
}

function classifyStream(answer: ObservedAnswer): Verdict {
  const { frames, partial } = parseFrames(answer.body);
  const anomalies: string[] = [];
  if (partial !== "") anomalies.push(`a partial event at the end: ${clip(partial)}`);
  let events = 0;
  let doneAt = -1;
  const errors: { at: number; message: string; type: string }[] = [];
  for (const [at, frame] of frames.entries()) {
    if (frame === "[DONE]") {
      if (doneAt === -1) doneAt = at;
      else anomalies.push("a second [DONE]");
      continue;
    }
    let json: unknown;
    try {
      json = JSON.parse(frame);
    } catch {
      return { ...verdict("lost", "mid-stream", `a frame that is not JSON: ${clip(frame)}`), events };
    }
    const envelope = errorEnvelope(frame);
    if (envelope) errors.push({ at, ...envelope });
    else if (doneAt === -1 && typeof json === "object" && json !== null && "choices" in json) events++;
  }
  const firstError = errors[0];
  const phase: Phase = events === 0 ? "before the first event" : "mid-stream";
  if (doneAt !== -1 && (firstError === undefined || firstError.at > doneAt)) {
    if (firstError) anomalies.push("an error frame after [DONE]");
    if (answer.ending !== "complete") anomalies.push(`the connection broke after [DONE]: ${answer.failure ?? ""}`);
    return { ...verdict("succeeded", "complete", "stream ended with [DONE]"), events, anomalies };
  }
  if (firstError) {
    const last = frames.length - 1;
    if (errors.length > 1 || firstError.at !== last) {
      return {
        ...verdict(
          "lost",
          phase,
          `frames after the error frame (${errors.length} error frames, ${last - firstError.at} frames after the first)`,
        ),
        events,
        anomalies,
      };
    }
    if (answer.ending === "timeout") anomalies.push("the stream stayed open after its error frame until the client's timeout");
    return { ...verdict("clean_error", phase, firstError.message), events, error: `stream error frame ${firstError.type}`, anomalies };
  }
  if (answer.ending === "timeout") {
    return { ...verdict("hung", phase, `no [DONE] or error frame after ${events} events at the client's timeout`), events, anomalies };
  }
  if (answer.ending === "reset") {
    return {
      ...verdict("lost", phase, `the connection broke after ${events} events without an error frame: ${answer.failure ?? ""}`),
      events,
      anomalies,
    };
  }
  return { ...verdict("lost", phase, `the stream ended after ${events} events without [DONE] or an error frame`), events, anomalies };
}

/**
 * parseFrames returns the data of each complete SSE event in order, comments (keep-alives) left out, and the text of
 * an event cut off before its blank line ("" when the body ends on an event boundary).
 */
export function parseFrames(body: string): { frames: string[]; partial: string } {
  const frames: string[] = [];
  const blocks = body.split(/\r?\n\r?\n/);
  const partial = blocks.pop() ?? "";
  for (const block of blocks) {
    const data = block
      .split(/\r?\n/)
      .filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(5).replace(/^ /, ""));
    if (data.length > 0) frames.push(data.join("\n"));
  }
  return { frames, partial };
}

/** errorEnvelope reads OpenAI's `{"error": {"message", "type", ...}}`; undefined for anything else. */
function errorEnvelope(text: string): { message: string; type: string } | undefined {
  try {
    const error = (JSON.parse(text) as { error?: { message?: unknown; type?: unknown } } | null)?.error;
    if (typeof error?.message === "string" && typeof error.type === "string") return { message: error.message, type: error.type };
  } catch {
    // Not JSON: no envelope.
  }
  return undefined;
}

function verdict(outcome: Outcome, phase: Phase, detail: string): Verdict {
  return { outcome, phase, detail, events: 0, error: undefined, anomalies: [] };
}

function clip(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > 160 ? `${flat.slice(0, 160)}…` : flat;
}
