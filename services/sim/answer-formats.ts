import type { AnswerFormat } from "./answer-format.js";
import { ChatAnswerFormat, CompletionAnswerFormat } from "./chat-answer-formats.js";
import type { GenerationRequest } from "./generation-request.js";
import { MessagesAnswerFormat } from "./messages-answer-format.js";
import { ResponsesAnswerFormat } from "./responses-answer-format.js";
import type { SimulatorConfig } from "./simulator-options.js";

/** answerFormatFor picks the framing of a generation's answer by its endpoint; id is the answer's id. */
export function answerFormatFor(request: GenerationRequest, id: string, config: SimulatorConfig): AnswerFormat {
  const identity = {
    id,
    created: Math.floor(config.now() / 1000),
    model: request.model.id,
    systemFingerprint: config.systemFingerprint,
  };
  switch (request.kind) {
    case "chat":
      return new ChatAnswerFormat(identity, request.includeUsage);
    case "completion":
      return new CompletionAnswerFormat(identity);
    case "response":
      return new ResponsesAnswerFormat(identity, config.now);
    case "message":
      return new MessagesAnswerFormat(identity, request.promptTokens);
  }
}
