/**
 * SIMULATED_WORDS is the simulator's vocabulary: plain ASCII words, so that each token's JSON encoding is the word
 * between quotes and streams can be written from templates.
 */
export const SIMULATED_WORDS: readonly string[] = Object.freeze([
  "alpha",
  "bravo",
  "charlie",
  "delta",
  "echo",
  "foxtrot",
  "golf",
  "hotel",
  "india",
  "juliet",
  "kilo",
  "lima",
  "mike",
  "november",
  "oscar",
  "papa",
  "quebec",
  "romeo",
  "sierra",
  "tango",
  "uniform",
  "victor",
  "whiskey",
  "xray",
  "yankee",
  "zulu",
  "amber",
  "basalt",
  "cedar",
  "dune",
  "ember",
  "fjord",
  "granite",
  "harbor",
  "island",
  "jasper",
  "kelp",
  "lagoon",
  "meadow",
  "nectar",
  "orchid",
  "pebble",
  "quartz",
  "river",
  "summit",
  "tundra",
  "upland",
  "valley",
  "willow",
  "yarrow",
  "zephyr",
  "anchor",
  "beacon",
  "compass",
  "drift",
  "estuary",
  "ferry",
  "glacier",
  "horizon",
  "inlet",
  "jetty",
  "keel",
  "lantern",
  "mooring",
]);

/**
 * TOKEN_TEXTS holds each word as it is streamed: one token is one word with a leading space, as llama tokenizers
 * mark word starts.
 */
const TOKEN_TEXTS: readonly string[] = SIMULATED_WORDS.map((word) => ` ${word}`);

/** TOKEN_JSON holds each token text already encoded as a JSON string, for template-built SSE chunks. */
const TOKEN_JSON: readonly string[] = TOKEN_TEXTS.map((text) => JSON.stringify(text));

/** ChatMessageLike is the part of an OpenAI chat message the simulator reads. */
export interface ChatMessageLike {
  readonly role?: unknown;
  readonly content?: unknown;
}

/** PromptInput is a completion prompt or a list of chat messages. */
export type PromptInput = string | readonly ChatMessageLike[];

/**
 * seedText is the text a reply is a function of: a completion's prompt, or the last user message of a chat (the last
 * message when no user spoke), so that a conversation's history does not change the next answer in tests.
 */
export function seedText(input: PromptInput): string {
  if (typeof input === "string") return input;
  for (let index = input.length - 1; index >= 0; index--) {
    if (input[index]?.role === "user") return messageText(input[index]?.content);
  }
  return messageText(input[input.length - 1]?.content);
}

/** messageText flattens a chat message's content: a string, or the text parts of an array joined by newlines. */
export function messageText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  const texts: string[] = [];
  for (const part of content as readonly unknown[]) {
    if (typeof part === "object" && part !== null && "text" in part && typeof part.text === "string") {
      texts.push(part.text);
    }
  }
  return texts.join("\n");
}

/**
 * promptTokenCount is the simulated prompt size: the number of whitespace-separated words of the prompt, or of all
 * chat messages' contents.
 */
export function promptTokenCount(input: PromptInput): number {
  if (typeof input === "string") return wordCount(input);
  let total = 0;
  for (const message of input) total += wordCount(messageText(message.content));
  return total;
}

/** wordCount counts whitespace-separated words without allocating, since prompts can be long. */
export function wordCount(text: string): number {
  let count = 0;
  let inWord = false;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    const space = code === 32 || (code >= 9 && code <= 13) || code === 160;
    if (!space && !inWord) count++;
    inWord = !space;
  }
  return count;
}

/** hashText is 32-bit FNV-1a over UTF-16 code units; it seeds a reply. */
export function hashText(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index++) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** choiceSeed derives the seed of one choice (`n` > 1 gives different texts) from a reply's seed. */
export function choiceSeed(seed: number, choiceIndex: number): number {
  return mix32(seed ^ Math.imul(choiceIndex + 1, 0x9e3779b9));
}

/** tokenWordIndex picks the vocabulary index of token tokenIndex of a choice. */
export function tokenWordIndex(seedOfChoice: number, tokenIndex: number): number {
  return mix32((seedOfChoice + Math.imul(tokenIndex + 1, 0x85ebca6b)) >>> 0) % SIMULATED_WORDS.length;
}

/** tokenText is the text of a vocabulary entry as streamed (" word"). */
export function tokenText(wordIndex: number): string {
  return TOKEN_TEXTS[wordIndex] ?? "";
}

/** tokenJson is tokenText encoded as a JSON string literal. */
export function tokenJson(wordIndex: number): string {
  return TOKEN_JSON[wordIndex] ?? '""';
}

/**
 * expectedCompletionText is the exact text the simulator answers for input with the given number of tokens, for
 * choice choiceIndex; tests use it to predict replies.
 */
export function expectedCompletionText(input: PromptInput, tokens: number, choiceIndex = 0): string {
  const seed = choiceSeed(hashText(seedText(input)), choiceIndex);
  let text = "";
  for (let index = 0; index < tokens; index++) text += tokenText(tokenWordIndex(seed, index));
  return text;
}

/** mix32 is murmur3's finalizer: a cheap bijective scrambler of 32-bit integers. */
export function mix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
