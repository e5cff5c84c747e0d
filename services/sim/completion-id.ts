import { randomBytes } from "node:crypto";

const ALPHANUMERICS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** randomId makes an id like llama-server's: prefix and 32 random alphanumerics (its random_string()). */
export function randomId(prefix: string): string {
  const bytes = randomBytes(32);
  let id = prefix;
  // The modulo bias is irrelevant for ids that only need to be unique.
  for (const byte of bytes) id += ALPHANUMERICS[byte % ALPHANUMERICS.length];
  return id;
}

/**
 * newCompletionId makes an id like llama-server's gen_chatcmplid: "chatcmpl-" and 32 random alphanumerics. llama-server
 * uses this prefix for /v1/completions and Anthropic /v1/messages answers too.
 */
export function newCompletionId(): string {
  return randomId("chatcmpl-");
}

/** newResponseId makes the id of a /v1/responses answer, "resp_" and 32 alphanumerics. */
export function newResponseId(): string {
  return randomId("resp_");
}

/** newOutputItemId makes the id of a /v1/responses output message, "msg_" and 32 alphanumerics. */
export function newOutputItemId(): string {
  return randomId("msg_");
}
