import type { AnswerEnding, AnswerFormat } from "./answer-format.js";
import type { LlamaError } from "./llama-errors.js";
import type { CompletionIdentity, Timings, Usage } from "./llama-payloads.js";
import { chatCompletionBody, textCompletionBody, usageOf } from "./llama-payloads.js";
import { SSE_DONE, sseFrame } from "./sse.js";

// Content frames, the hot path, are concatenated from a per-answer template instead of serialising an object per
// token; the other frames keep llama-server's keys in its order, as captured from a real server.

/** ChatAnswerFormat frames /v1/chat/completions answers (object "chat.completion" and "chat.completion.chunk"). */
export class ChatAnswerFormat implements AnswerFormat {
  private readonly tail: string;

  /** includeUsage is stream_options.include_usage: an extra `choices: []` chunk carries usage and timings. */
  constructor(
    private readonly identity: CompletionIdentity,
    private readonly includeUsage: boolean,
  ) {
    this.tail =
      `"created":${identity.created},"id":${JSON.stringify(identity.id)},"model":${JSON.stringify(identity.model)},` +
      `"system_fingerprint":${JSON.stringify(identity.systemFingerprint)},"object":"chat.completion.chunk"}\n\n`;
  }

  opening(choice: number): string {
    return `data: {"choices":[{"finish_reason":null,"index":${choice},"delta":{"role":"assistant","content":null}}],${this.tail}`;
  }

  content(choice: number, tokenJson: string): string {
    return `data: {"choices":[{"finish_reason":null,"index":${choice},"delta":{"content":${tokenJson}}}],${this.tail}`;
  }

  closing(ending: AnswerEnding, choices: number): string {
    let out = "";
    if (this.includeUsage) {
      for (let choice = 0; choice < choices; choice++) out += this.finish(choice, ending, undefined);
      out += sseFrame(
        JSON.stringify({
          choices: [],
          ...this.chunkIdentity(),
          usage: usageOf(ending.promptTokens, ending.completionTokens),
          timings: ending.timings,
        }),
      );
    } else {
      for (let choice = 0; choice < choices; choice++) out += this.finish(choice, ending, ending.timings);
    }
    return out + SSE_DONE;
  }

  failure(error: LlamaError): string {
    // Once a stream has begun, llama-server reports an error as a last data frame and sends no [DONE].
    return sseFrame(error.body);
  }

  whole(ending: AnswerEnding, choices: number): string {
    // llama-server reports one choice's usage even when n > 1 (see the chat_n2 sample), and so does the simulator.
    const usage = usageOf(ending.promptTokens, ending.completionTokens);
    return chatCompletionBody(this.identity, textsOf(ending, choices), ending.finishReason, usage, ending.timings);
  }

  private finish(choice: number, ending: AnswerEnding, timings: Timings | undefined): string {
    return sseFrame(
      JSON.stringify({
        choices: [{ finish_reason: ending.finishReason, index: choice, delta: {} }],
        ...this.chunkIdentity(),
        ...(timings === undefined ? {} : { timings }),
      }),
    );
  }

  private chunkIdentity(): Readonly<Record<string, string | number>> {
    return {
      created: this.identity.created,
      id: this.identity.id,
      model: this.identity.model,
      system_fingerprint: this.identity.systemFingerprint,
      object: "chat.completion.chunk",
    };
  }
}

/** CompletionAnswerFormat frames /v1/completions answers (object "text_completion"), whose last chunk carries usage. */
export class CompletionAnswerFormat implements AnswerFormat {
  private readonly tail: string;

  constructor(private readonly identity: CompletionIdentity) {
    this.tail =
      `"created":${identity.created},"model":${JSON.stringify(identity.model)},` +
      `"system_fingerprint":${JSON.stringify(identity.systemFingerprint)},"object":"text_completion",` +
      `"id":${JSON.stringify(identity.id)}}\n\n`;
  }

  opening(): string {
    return "";
  }

  content(choice: number, tokenJson: string): string {
    return `data: {"choices":[{"text":${tokenJson},"index":${choice},"logprobs":null,"finish_reason":null}],${this.tail}`;
  }

  closing(ending: AnswerEnding, choices: number): string {
    // llama-server's completions put usage on the last chunk whether asked for or not, never on an extra one.
    const usage = usageOf(ending.promptTokens, ending.completionTokens);
    let out = "";
    for (let choice = 0; choice < choices; choice++) out += this.finish(choice, ending, usage);
    return out + SSE_DONE;
  }

  failure(error: LlamaError): string {
    return sseFrame(error.body);
  }

  whole(ending: AnswerEnding, choices: number): string {
    const usage = usageOf(ending.promptTokens, ending.completionTokens);
    return textCompletionBody(this.identity, textsOf(ending, choices), ending.finishReason, usage, ending.timings);
  }

  private finish(choice: number, ending: AnswerEnding, usage: Usage): string {
    return sseFrame(
      JSON.stringify({
        choices: [{ text: "", index: choice, logprobs: null, finish_reason: ending.finishReason }],
        created: this.identity.created,
        model: this.identity.model,
        system_fingerprint: this.identity.systemFingerprint,
        object: "text_completion",
        usage,
        id: this.identity.id,
        timings: ending.timings,
      }),
    );
  }
}

/** textsOf rebuilds every choice's text. */
export function textsOf(ending: AnswerEnding, choices: number): string[] {
  const texts: string[] = [];
  for (let choice = 0; choice < choices; choice++) texts.push(ending.text(choice));
  return texts;
}
