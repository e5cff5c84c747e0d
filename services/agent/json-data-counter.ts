const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const DATA_KEY = "data";

/**
 * JsonDataCounter counts the objects in the top-level `data` array of a JSON object as its bytes pass, keeping none of
 * them: the images of an OpenAI images answer too large to keep aside. It reads bytes, not characters (every byte of a
 * multi-byte UTF-8 character is above 0x7F, so none looks like JSON's punctuation), and crosses strings, such as an
 * image's megabytes of base64, with indexOf rather than byte by byte. It does not validate: bytes that are not JSON
 * give a count that means nothing, as no JSON parser would have read them either.
 */
export class JsonDataCounter {
  /** count is the number of objects seen in `data` so far. */
  count = 0;
  #depth = 0;
  #inString = false;
  #escaped = false;
  /** #key collects the start of a string at depth 1 (enough to tell "data"), which the next ':' makes a key. */
  #key = "";
  #keyed = false;
  #lastString: string | undefined;
  #valueOfData = false;
  #inData = false;

  /** push reads the next piece of the JSON text. */
  push(chunk: Uint8Array): void {
    let at = 0;
    // Where the next quote and backslash are, found once per chunk and again only once passed: a long string with
    // many escapes costs one scan, not one per escape.
    let quote = -1;
    let backslash = -1;
    while (at < chunk.length) {
      if (this.#inString) {
        if (this.#escaped) {
          this.#escaped = false;
          this.#collect(chunk, at, at + 1);
          at++;
          continue;
        }
        if (quote !== chunk.length && quote < at) quote = indexOrEnd(chunk, QUOTE, at);
        if (backslash !== chunk.length && backslash < at) backslash = indexOrEnd(chunk, BACKSLASH, at);
        const stop = Math.min(quote, backslash);
        this.#collect(chunk, at, stop);
        if (stop === chunk.length) return;
        if (stop === backslash) this.#escaped = true;
        else this.#endString();
        at = stop + 1;
        continue;
      }
      this.#structure(chunk[at] as number);
      at++;
    }
  }

  #collect(chunk: Uint8Array, from: number, to: number): void {
    if (!this.#keyed || this.#key.length > DATA_KEY.length) return;
    this.#key += String.fromCharCode(...chunk.subarray(from, Math.min(to, from + DATA_KEY.length + 1 - this.#key.length)));
  }

  #endString(): void {
    this.#inString = false;
    this.#lastString = this.#keyed ? this.#key : undefined;
    this.#keyed = false;
    this.#key = "";
  }

  #structure(byte: number): void {
    switch (byte) {
      case QUOTE:
        this.#inString = true;
        this.#keyed = this.#depth === 1;
        break;
      case COLON:
        if (this.#depth === 1) this.#valueOfData = this.#lastString === DATA_KEY;
        break;
      case COMMA:
        if (this.#depth === 1) this.#valueOfData = false;
        break;
      case OPEN_BRACE:
      case OPEN_BRACKET:
        if (this.#inData && this.#depth === 2 && byte === OPEN_BRACE) this.count++;
        if (this.#depth === 1 && this.#valueOfData && byte === OPEN_BRACKET) this.#inData = true;
        this.#depth++;
        break;
      case CLOSE_BRACE:
      case CLOSE_BRACKET:
        this.#depth--;
        if (this.#depth === 1) this.#inData = false;
        break;
    }
  }
}

function indexOrEnd(chunk: Uint8Array, byte: number, from: number): number {
  const found = chunk.indexOf(byte, from);
  return found === -1 ? chunk.length : found;
}
