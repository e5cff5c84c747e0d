import type { ServerResponse } from "node:http";
import { bodyFields, parsePrompt, selectGenerationModel } from "./generation-request.js";
import { sendError, sendJson } from "./http-replies.js";
import type { JsonBody } from "./llama-replies.js";
import type { SimulatorConfig } from "./simulator-options.js";

/**
 * answerCountTokens answers Anthropic's /v1/messages/count_tokens as llama-server does: the request is read and
 * checked as /v1/messages reads it, and the answer, `{"input_tokens":N}`, comes at once, without generating (so no
 * pacing and no injected failure); N is the simulated prompt size (see promptTokenCount).
 */
export function answerCountTokens(res: ServerResponse, posted: JsonBody, config: SimulatorConfig): void {
  if (!posted.valid) {
    sendError(res, posted.error);
    return;
  }
  const fields = bodyFields(posted.value);
  const selection = selectGenerationModel(fields["model"], "message", config);
  if (!selection.ok) {
    sendError(res, selection.error);
    return;
  }
  const prompt = parsePrompt("message", fields);
  if (!prompt.ok) {
    sendError(res, prompt.error);
    return;
  }
  sendJson(res, 200, JSON.stringify({ input_tokens: prompt.promptTokens }));
}
