import type { FinishReason } from "./generation-request.js";
import type { LlamaError } from "./llama-errors.js";
import type { Timings } from "./llama-payloads.js";

/** AnswerEnding is what the end of an answer reports: why it ended, its token counts, its timings and its texts. */
export interface AnswerEnding {
  readonly finishReason: FinishReason;
  readonly promptTokens: number;
  /** completionTokens is the number of tokens each choice produced. */
  readonly completionTokens: number;
  readonly timings: Timings;
  /** text rebuilds the whole text of a choice; only formats that repeat the text at the end call it. */
  text(choice: number): string;
}

/**
 * AnswerFormat writes one generated answer in one API's framing: OpenAI chat or completions, OpenAI Responses or
 * Anthropic Messages. A Generation decides what is produced and when; its format decides only the bytes, so each API
 * keeps llama-server's exact key order and event names in one place.
 */
export interface AnswerFormat {
  /** opening is what a stream sends before the first token of a choice, or "". */
  opening(choice: number): string;
  /** content is the frame carrying one token of a choice, given as a JSON string literal (the hot path). */
  content(choice: number, tokenJson: string): string;
  /** closing is everything a stream sends after its last token. */
  closing(ending: AnswerEnding, choices: number): string;
  /** failure is the last frame of a stream that fails after it began. */
  failure(error: LlamaError): string;
  /** whole is the body of an answer that is not streamed. */
  whole(ending: AnswerEnding, choices: number): string;
}
