import { isObject } from "../shared/json-object.js";
import type { LlamaError } from "./llama-errors.js";
import { invalidRequest } from "./llama-errors.js";
import type { ChatMessageLike } from "./simulated-text.js";

/** ConvertedMessages are chat messages made from another API's request, or the error llama-server answers. */
export type ConvertedMessages =
  | { readonly ok: true; readonly messages: readonly ChatMessageLike[] }
  | { readonly ok: false; readonly error: LlamaError };

type Fields = Readonly<Record<string, unknown>>;

/**
 * responsesMessages turns an OpenAI Responses request's `instructions` and `input` into chat messages the way
 * llama-server's convert_responses_to_chatcmpl does, with its checks and messages (all 400s): `instructions` becomes a
 * system message, a string `input` one user message, and an `input` list its messages (content a string or
 * input_text parts), assistant output messages, function calls and their outputs.
 */
export function responsesMessages(fields: Fields): ConvertedMessages {
  if (!("input" in fields)) return refuse("'input' is required");
  const previous = fields["previous_response_id"];
  if (typeof previous === "string" && previous !== "") return refuse("llama.cpp does not support 'previous_response_id'.");
  const messages: ChatMessageLike[] = [];
  if ("instructions" in fields) {
    const instructions = fields["instructions"];
    messages.push({ role: "system", content: typeof instructions === "string" ? instructions : "" });
  }
  const input = fields["input"];
  if (typeof input === "string") {
    messages.push({ role: "user", content: input });
    return { ok: true, messages };
  }
  if (!Array.isArray(input)) return refuse("'input' must be a string or array of objects");
  for (const entry of input as readonly unknown[]) {
    const item: Fields = isObject(entry) ? entry : {};
    const converted = convertItem(item);
    if (typeof converted === "string") return refuse(converted);
    if (converted !== undefined) messages.push(converted);
  }
  return { ok: true, messages };
}

/** convertItem converts one input item into a chat message, undefined for one that adds no text, or an error message. */
function convertItem(item: Fields): ChatMessageLike | undefined | string {
  const role = item["role"];
  // Only an input message's content may be a plain string; it stands for one input_text part.
  const content = typeof item["content"] === "string" ? [{ text: item["content"], type: "input_text" }] : item["content"];
  if (Array.isArray(content) && (role === "user" || role === "system" || role === "developer")) {
    const parts: Array<{ type: string; text: unknown }> = [];
    for (const part of content as readonly unknown[]) {
      const fields: Fields = isObject(part) ? part : {};
      switch (fields["type"]) {
        case "input_text":
          if (!("text" in fields)) return "'Input text' requires 'text'";
          parts.push({ type: "text", text: fields["text"] });
          break;
        case "input_image":
          if (!("image_url" in fields)) return "'image_url' is required";
          // llama-server passes images on; a server without a vision projector then refuses them (see checkMessages).
          parts.push({ type: "image_url", text: undefined });
          break;
        case "input_file":
          return "'input_file' is not supported by llamacpp at this moment";
        default:
          return "'type' must be one of 'input_text', 'input_image', or 'input_file'";
      }
    }
    return { role, content: parts };
  }
  if (Array.isArray(content) && role === "assistant" && item["type"] === "message") {
    const parts: Array<{ type: string; text: string }> = [];
    for (const part of content as readonly unknown[]) {
      const fields: Fields = isObject(part) ? part : {};
      if (fields["type"] !== "output_text") return "'type' must be 'output_text'";
      const text = fields["text"];
      if (typeof text !== "string") return "'Output text' requires 'text'";
      parts.push({ type: "text", text });
    }
    return { role: "assistant", content: parts };
  }
  const type = item["type"];
  if (type === "function_call" && ["arguments", "call_id", "name"].every((key) => typeof item[key] === "string")) {
    return { role: "assistant", content: null };
  }
  const output = item["output"];
  if (type === "function_call_output" && typeof item["call_id"] === "string" && (typeof output === "string" || Array.isArray(output))) {
    return { role: "tool", content: typeof output === "string" ? output : [] };
  }
  if (type === "reasoning" && Array.isArray(item["summary"])) return undefined;
  return "Cannot determine type of 'item'";
}

function refuse(message: string): ConvertedMessages {
  return { ok: false, error: invalidRequest(message) };
}
