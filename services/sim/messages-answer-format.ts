import type { AnswerEnding, AnswerFormat } from "./answer-format.js";
import type { FinishReason } from "./generation-request.js";
import type { LlamaError } from "./llama-errors.js";
import type { CompletionIdentity } from "./llama-payloads.js";
import { sseEvent } from "./sse.js";

/** ANTHROPIC_STOP_REASONS names why a message ended in Anthropic's words. */
const ANTHROPIC_STOP_REASONS: Readonly<Record<FinishReason, string>> = Object.freeze({ length: "max_tokens", stop: "end_turn" });

/**
 * MessagesAnswerFormat frames Anthropic Messages answers as llama-server does (see the messages and messages_stream
 * captures): one text block; streamed as named events from message_start to message_stop, with no [DONE]. The id keeps
 * llama-server's "chatcmpl-" prefix, and usage splits the prompt into cache reads and the rest (all of it here: the
 * simulator has no prompt cache).
 */
export class MessagesAnswerFormat implements AnswerFormat {
  private readonly deltaHead =
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":';

  constructor(
    private readonly identity: CompletionIdentity,
    private readonly promptTokens: number,
  ) {}

  opening(): string {
    return (
      event("message_start", {
        message: {
          id: this.identity.id,
          type: "message",
          role: "assistant",
          content: [],
          model: this.identity.model,
          stop_reason: null,
          stop_sequence: null,
          usage: { cache_read_input_tokens: 0, input_tokens: this.promptTokens, output_tokens: 0 },
        },
      }) + event("content_block_start", { index: 0, content_block: { type: "text", text: "" } })
    );
  }

  content(_choice: number, tokenJson: string): string {
    return `${this.deltaHead}${tokenJson}}}\n\n`;
  }

  closing(ending: AnswerEnding): string {
    return (
      event("content_block_stop", { index: 0 }) +
      event("message_delta", {
        delta: { stop_reason: ANTHROPIC_STOP_REASONS[ending.finishReason], stop_sequence: null },
        usage: { output_tokens: ending.completionTokens },
      }) +
      event("message_stop", {})
    );
  }

  failure(error: LlamaError): string {
    // llama-server sends the error object itself, unwrapped, as an Anthropic `error` event.
    const inner = (JSON.parse(error.body) as { readonly error: unknown }).error;
    return sseEvent("error", JSON.stringify(inner));
  }

  whole(ending: AnswerEnding): string {
    return JSON.stringify({
      id: this.identity.id,
      type: "message",
      role: "assistant",
      content: [{ type: "text", text: ending.text(0) }],
      model: this.identity.model,
      stop_reason: ANTHROPIC_STOP_REASONS[ending.finishReason],
      stop_sequence: null,
      usage: { cache_read_input_tokens: 0, input_tokens: ending.promptTokens, output_tokens: ending.completionTokens },
    });
  }
}

/** event frames one Messages event; its type leads the data object, as llama-server writes it. */
function event(type: string, fields: Readonly<Record<string, unknown>>): string {
  return sseEvent(type, JSON.stringify({ type, ...fields }));
}
