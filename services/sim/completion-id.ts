import { randomBytes } from "node:crypto";

const ALPHANUMERICS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/**
 * newCompletionId makes an id like llama-server's gen_chatcmplid: "chatcmpl-" and 32 random alphanumerics. llama-server
 * uses this prefix for /v1/completions answers too.
 */
export function newCompletionId(): string {
  const bytes = randomBytes(32);
  let id = "chatcmpl-";
  // The modulo bias is irrelevant for ids that only need to be unique.
  for (const byte of bytes) id += ALPHANUMERICS[byte % ALPHANUMERICS.length];
  return id;
}
