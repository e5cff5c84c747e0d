import { hashText, mix32, wordCount } from "./simulated-text.js";

// Content rules of the simulator's embeddings, shared by the route and by tests that predict them:
// - one prompt is a string, a list of token ids, or a list mixing strings and token ids (llama-server's shapes); its
//   text is the string, or the list's items written out and joined by spaces, and it counts one token per word of it;
// - its vector has EMBEDDING_DIMENSIONS components drawn from the FNV-1a hash of that text, scaled to unit length
//   (llama-server's default Euclidean normalisation) and rounded to 32-bit floats, as a float embedding is sent.

/** EMBEDDING_DIMENSIONS is the length of every simulated embedding, the n_embd that /v1/models reports. */
export const EMBEDDING_DIMENSIONS = 64;

/** EmbeddingPrompt is one input of an embeddings request: text, token ids, or a mix of both. */
export type EmbeddingPrompt = string | readonly (string | number)[];

/** embeddingText is the text a prompt's vector and token count are functions of. */
export function embeddingText(prompt: EmbeddingPrompt): string {
  return typeof prompt === "string" ? prompt : prompt.join(" ");
}

/** embeddingTokenCount is the simulated size of a prompt: a token per word of its text, so one per token id. */
export function embeddingTokenCount(prompt: EmbeddingPrompt): number {
  return wordCount(embeddingText(prompt));
}

/** expectedEmbedding is the exact vector the simulator answers for a prompt. */
export function expectedEmbedding(prompt: EmbeddingPrompt): number[] {
  const seed = hashText(embeddingText(prompt));
  const raw: number[] = [];
  let squares = 0;
  for (let dimension = 0; dimension < EMBEDDING_DIMENSIONS; dimension++) {
    const value = (mix32((seed + Math.imul(dimension + 1, 0x9e3779b9)) >>> 0) / 2 ** 32) * 2 - 1;
    raw.push(value);
    squares += value * value;
  }
  const norm = Math.sqrt(squares) || 1;
  return raw.map((value) => Math.fround(value / norm));
}

/** embeddingBase64 encodes a vector as `encoding_format: "base64"` sends it: little-endian 32-bit floats. */
export function embeddingBase64(vector: readonly number[]): string {
  const bytes = Buffer.alloc(vector.length * 4);
  for (const [index, value] of vector.entries()) bytes.writeFloatLE(value, index * 4);
  return bytes.toString("base64");
}
