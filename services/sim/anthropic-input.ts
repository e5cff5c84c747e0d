import { isObject } from "../shared/json-object.js";
import { serverError } from "./llama-errors.js";
import type { ConvertedMessages } from "./responses-input.js";
import type { ChatMessageLike } from "./simulated-text.js";

type Fields = Readonly<Record<string, unknown>>;

/**
 * anthropicMessages turns an Anthropic Messages request's `system` and `messages` into chat messages the way
 * llama-server's convert_anthropic_to_oai does: `system` (a string, or text blocks joined) becomes a system message;
 * each message keeps a string content, its text blocks become text parts, tool_use blocks tool calls and tool_result
 * blocks tool messages. Like llama-server it checks little itself: a missing `messages` is its 500, and what it passes
 * on unconverted is checked afterwards as a chat's messages are.
 */
export function anthropicMessages(fields: Fields): ConvertedMessages {
  const messages: ChatMessageLike[] = [];
  const system = fields["system"];
  if (system !== undefined && system !== null) {
    messages.push({ role: "system", content: typeof system === "string" ? system : blocksText(system) });
  }
  if (!("messages" in fields)) return { ok: false, error: serverError("'messages' is required") };
  const given = fields["messages"];
  // llama-server skips a `messages` that is not a list rather than refusing it.
  if (!Array.isArray(given)) return { ok: true, messages };
  for (const entry of given as readonly unknown[]) {
    const message: Fields = isObject(entry) ? entry : {};
    const role = message["role"];
    if (!("content" in message)) {
      if (role !== "assistant") messages.push(message);
      continue;
    }
    const content = message["content"];
    if (!Array.isArray(content)) {
      messages.push(message);
      continue;
    }
    const parts: Array<{ type: string; text?: unknown }> = [];
    const toolResults: ChatMessageLike[] = [];
    let toolCalls = false;
    for (const block of content as readonly unknown[]) {
      const fields: Fields = isObject(block) ? block : {};
      switch (fields["type"]) {
        case "text":
          parts.push(fields as { type: string; text?: unknown });
          break;
        case "image":
          // An image becomes an image_url part, which a server without a vision projector refuses (see checkMessages).
          parts.push({ type: "image_url" });
          break;
        case "tool_use":
          toolCalls = true;
          break;
        case "tool_result":
          toolResults.push({
            role: "tool",
            content: typeof fields["content"] === "string" ? fields["content"] : blocksText(fields["content"]),
          });
          break;
      }
    }
    if (parts.length > 0) messages.push({ role, content: parts });
    else if (toolCalls) messages.push({ role, content: "" });
    messages.push(...toolResults);
  }
  return { ok: true, messages };
}

/** blocksText joins the text of a list of text blocks, without separators, as llama-server does. */
function blocksText(blocks: unknown): string {
  if (!Array.isArray(blocks)) return "";
  let text = "";
  for (const block of blocks as readonly unknown[]) {
    if (isObject(block) && block["type"] === "text" && typeof block["text"] === "string") text += block["text"];
  }
  return text;
}
