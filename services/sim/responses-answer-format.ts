import type { AnswerEnding, AnswerFormat } from "./answer-format.js";
import { newOutputItemId } from "./completion-id.js";
import type { LlamaError } from "./llama-errors.js";
import { sseEvent, sseFrame } from "./sse.js";

/** ResponseIdentity is what every event of one /v1/responses answer repeats. */
export interface ResponseIdentity {
  /** id is "resp_" and 32 alphanumerics. */
  readonly id: string;
  /** created is the answer's Unix time in seconds. */
  readonly created: number;
  readonly model: string;
}

/**
 * ResponsesAnswerFormat frames OpenAI Responses answers as llama-server does (see the responses and responses_stream
 * captures): one output message with one output_text part; streamed as named events, each an `event:` line, a
 * `data:` line and a blank line, from response.created to response.completed, which carries usage and timings, with
 * no [DONE] after it. llama-server reports status "completed" even when max_output_tokens cut the text.
 */
export class ResponsesAnswerFormat implements AnswerFormat {
  /** itemId is the output message's id, "msg_" and 32 alphanumerics. */
  readonly itemId = newOutputItemId();
  private readonly deltaHead: string;

  /** now is the wall clock in milliseconds, for completed_at. */
  constructor(
    private readonly identity: ResponseIdentity,
    private readonly now: () => number,
  ) {
    const type = "response.output_text.delta";
    this.deltaHead = `event: ${type}\ndata: {"type":"${type}","item_id":${JSON.stringify(this.itemId)},"delta":`;
  }

  opening(): string {
    const progress = { id: this.identity.id, object: "response", status: "in_progress" };
    return (
      event("response.created", { response: progress }) +
      event("response.in_progress", { response: progress }) +
      event("response.output_item.added", {
        item: { content: [], id: this.itemId, role: "assistant", status: "in_progress", type: "message" },
      }) +
      event("response.content_part.added", { item_id: this.itemId, part: { type: "output_text", text: "" } })
    );
  }

  content(_choice: number, tokenJson: string): string {
    return `${this.deltaHead}${tokenJson}}\n\n`;
  }

  closing(ending: AnswerEnding): string {
    const text = ending.text(0);
    const item = this.completedItem(text);
    return (
      event("response.output_text.done", { item_id: this.itemId, text }) +
      event("response.content_part.done", { item_id: this.itemId, part: outputText(text) }) +
      event("response.output_item.done", { item }) +
      event("response.completed", {
        response: {
          id: this.identity.id,
          object: "response",
          created_at: this.identity.created,
          status: "completed",
          model: this.identity.model,
          output: [item],
          usage: responseUsage(ending),
        },
        timings: ending.timings,
      })
    );
  }

  failure(error: LlamaError): string {
    // llama-server frames a mid-stream error of every OpenAI route alike: one data line, no event name.
    return sseFrame(error.body);
  }

  whole(ending: AnswerEnding): string {
    return JSON.stringify({
      completed_at: Math.floor(this.now() / 1000),
      created_at: this.identity.created,
      id: this.identity.id,
      model: this.identity.model,
      object: "response",
      output: [{ content: [outputText(ending.text(0))], id: this.itemId, role: "assistant", status: "completed", type: "message" }],
      status: "completed",
      usage: responseUsage(ending),
    });
  }

  private completedItem(text: string): Readonly<Record<string, unknown>> {
    return { type: "message", status: "completed", id: this.itemId, content: [outputText(text)], role: "assistant" };
  }
}

/** event frames one Responses event; its type leads the data object, as llama-server writes it. */
function event(type: string, fields: Readonly<Record<string, unknown>>): string {
  return sseEvent(type, JSON.stringify({ type, ...fields }));
}

function outputText(text: string): Readonly<Record<string, unknown>> {
  return { type: "output_text", annotations: [], logprobs: [], text };
}

/** responseUsage is the Responses usage object; the simulator has no prompt cache, so cached_tokens is 0. */
function responseUsage(ending: AnswerEnding): Readonly<Record<string, unknown>> {
  return {
    input_tokens: ending.promptTokens,
    output_tokens: ending.completionTokens,
    total_tokens: ending.promptTokens + ending.completionTokens,
    input_tokens_details: { cached_tokens: 0 },
  };
}
