/**
 * jsonParseErrorMessage words why input is not JSON the way nlohmann::json (which llama-server parses bodies with)
 * does, e.g. "[json.exception.parse_error.101] parse error at line 1, column 46: syntax error while parsing object
 * key - unexpected end of input; expected string literal". It is called only after JSON.parse failed, so it favours
 * clarity over speed. Positions count bytes, as nlohmann does; UTF-8 validity and surrogate pairs are not checked.
 */
export function jsonParseErrorMessage(input: Uint8Array): string {
  const prefix = "[json.exception.parse_error.101] parse error";
  if (input.length === 0) {
    return `${prefix} at line 1, column 1: attempting to parse an empty input; check that your input string or stream contains the expected JSON`;
  }
  const failure = new NlohmannParser(input).parse();
  if (failure === undefined) {
    return `${prefix} at line 1, column 1: syntax error while parsing value - invalid literal`;
  }
  return `${prefix} at line ${failure.line}, column ${failure.column}: ${failure.message}`;
}

type Token =
  | "true literal"
  | "false literal"
  | "null literal"
  | "string literal"
  | "number literal"
  | "'['"
  | "'{'"
  | "']'"
  | "'}'"
  | "':'"
  | "','"
  | "<parse error>"
  | "end of input";

/** Expected is what the parser wanted where it failed, named as nlohmann's token_type_name does. */
type Expected = Token | "'[', '{', or a literal" | undefined;

interface ParseFailure {
  readonly line: number;
  readonly column: number;
  readonly message: string;
}

const EOF = -1;

/** CONTROL_NAMES are the ASCII names nlohmann uses when a string holds a raw control character. */
const CONTROL_NAMES = [
  "NUL",
  "SOH",
  "STX",
  "ETX",
  "EOT",
  "ENQ",
  "ACK",
  "BEL",
  "BS",
  "HT",
  "LF",
  "VT",
  "FF",
  "CR",
  "SO",
  "SI",
  "DLE",
  "DC1",
  "DC2",
  "DC3",
  "DC4",
  "NAK",
  "SYN",
  "ETB",
  "CAN",
  "EM",
  "SUB",
  "ESC",
  "FS",
  "GS",
  "RS",
  "US",
];
const SHORT_ESCAPES: Readonly<Record<number, string>> = { 8: "b", 9: "t", 10: "n", 12: "f", 13: "r" };

/**
 * NlohmannParser replays nlohmann::json's lexer (position bookkeeping included) and its parser's error contexts,
 * stopping at the first error.
 */
class NlohmannParser {
  private index = 0;
  private current = EOF;
  private nextUnget = false;
  private linesRead = 0;
  private charsReadCurrentLine = 0;
  private tokenBytes: number[] = [];
  private lexError = "";
  private lastToken: Token = "end of input";

  constructor(private readonly input: Uint8Array) {}

  parse(): ParseFailure | undefined {
    const failure = this.parseValue(this.scan());
    if (failure !== undefined) return failure;
    if (this.scan() !== "end of input") return this.fail("end of input", "value");
    return undefined;
  }

  private parseValue(token: Token): ParseFailure | undefined {
    switch (token) {
      case "'{'":
        return this.parseObject();
      case "'['":
        return this.parseArray();
      case "true literal":
      case "false literal":
      case "null literal":
      case "string literal":
      case "number literal":
        return undefined;
      case "<parse error>":
        return this.fail(undefined, "value");
      default:
        return this.fail("'[', '{', or a literal", "value");
    }
  }

  private parseObject(): ParseFailure | undefined {
    if (this.scan() === "'}'") return undefined;
    for (;;) {
      if (this.lastToken !== "string literal") return this.fail("string literal", "object key");
      if (this.scan() !== "':'") return this.fail("':'", "object separator");
      const failure = this.parseValue(this.scan());
      if (failure !== undefined) return failure;
      const next = this.scan();
      if (next === "'}'") return undefined;
      if (next !== "','") return this.fail("'}'", "object");
      this.scan();
    }
  }

  private parseArray(): ParseFailure | undefined {
    let token = this.scan();
    if (token === "']'") return undefined;
    for (;;) {
      const failure = this.parseValue(token);
      if (failure !== undefined) return failure;
      const next = this.scan();
      if (next === "']'") return undefined;
      if (next !== "','") return this.fail("']'", "array");
      token = this.scan();
    }
  }

  private fail(expected: Expected, context: string): ParseFailure {
    let message = `syntax error while parsing ${context} - `;
    message += this.lastToken === "<parse error>" ? `${this.lexError}; last read: '${this.tokenString()}'` : `unexpected ${this.lastToken}`;
    if (expected !== undefined) message += `; expected ${expected}`;
    return { line: this.linesRead + 1, column: this.charsReadCurrentLine, message };
  }

  private scan(): Token {
    this.lastToken = this.scanToken();
    return this.lastToken;
  }

  private scanToken(): Token {
    this.tokenBytes = [];
    do this.get();
    while (this.current === 0x20 || this.current === 0x09 || this.current === 0x0a || this.current === 0x0d);
    switch (this.current) {
      case 0x5b:
        return "'['";
      case 0x5d:
        return "']'";
      case 0x7b:
        return "'{'";
      case 0x7d:
        return "'}'";
      case 0x3a:
        return "':'";
      case 0x2c:
        return "','";
      case 0x74:
        return this.scanLiteral("true", "true literal");
      case 0x66:
        return this.scanLiteral("false", "false literal");
      case 0x6e:
        return this.scanLiteral("null", "null literal");
      case 0x22:
        return this.scanString();
      case 0x00:
      case EOF:
        return "end of input";
      default:
        if (this.current === 0x2d || (this.current >= 0x30 && this.current <= 0x39)) return this.scanNumber();
        return this.lexFail("invalid literal");
    }
  }

  private scanLiteral(literal: string, token: Token): Token {
    for (let at = 1; at < literal.length; at++) {
      if (this.get() !== literal.charCodeAt(at)) return this.lexFail("invalid literal");
    }
    return token;
  }

  private scanString(): Token {
    for (;;) {
      const byte = this.get();
      if (byte === EOF) return this.lexFail("invalid string: missing closing quote");
      if (byte === 0x22) return "string literal";
      if (byte === 0x5c) {
        const escaped = this.get();
        if (escaped === 0x75) {
          for (let digit = 0; digit < 4; digit++) {
            if (!isHexDigit(this.get())) return this.lexFail("invalid string: '\\u' must be followed by 4 hex digits");
          }
        } else if (!isSimpleEscape(escaped)) {
          return this.lexFail("invalid string: forbidden character after backslash");
        }
        continue;
      }
      if (byte < 0x20) return this.lexFail(controlCharacterMessage(byte));
    }
  }

  private scanNumber(): Token {
    if (this.current === 0x2d && !isDigit(this.get())) {
      return this.lexFail("invalid number; expected digit after '-'");
    }
    if (this.current !== 0x30) {
      while (isDigit(this.get()));
    } else {
      this.get();
    }
    if (this.current === 0x2e) {
      if (!isDigit(this.get())) return this.lexFail("invalid number; expected digit after '.'");
      while (isDigit(this.get()));
    }
    if (this.current === 0x65 || this.current === 0x45) {
      const afterExponent = this.get();
      if (afterExponent === 0x2b || afterExponent === 0x2d) {
        if (!isDigit(this.get())) return this.lexFail("invalid number; expected digit after exponent sign");
      } else if (!isDigit(afterExponent)) {
        return this.lexFail("invalid number; expected '+', '-', or digit after exponent");
      }
      while (isDigit(this.get()));
    }
    // The lexer reads one byte past a number to find its end, then gives it back.
    this.unget();
    return "number literal";
  }

  private lexFail(message: string): Token {
    this.lexError = message;
    return "<parse error>";
  }

  private get(): number {
    this.charsReadCurrentLine++;
    if (this.nextUnget) {
      this.nextUnget = false;
    } else {
      this.current = this.index < this.input.length ? (this.input[this.index++] ?? EOF) : EOF;
    }
    if (this.current !== EOF) this.tokenBytes.push(this.current);
    if (this.current === 0x0a) {
      this.linesRead++;
      this.charsReadCurrentLine = 0;
    }
    return this.current;
  }

  private unget(): void {
    this.nextUnget = true;
    if (this.charsReadCurrentLine === 0) {
      if (this.linesRead > 0) this.linesRead--;
    } else {
      this.charsReadCurrentLine--;
    }
    if (this.current !== EOF) this.tokenBytes.pop();
  }

  private tokenString(): string {
    let text = "";
    let run: number[] = [];
    const flush = (): void => {
      text += Buffer.from(run).toString("utf8");
      run = [];
    };
    for (const byte of this.tokenBytes) {
      if (byte <= 0x1f) {
        flush();
        text += `<U+${byte.toString(16).toUpperCase().padStart(4, "0")}>`;
      } else {
        run.push(byte);
      }
    }
    flush();
    return text;
  }
}

function isDigit(byte: number): boolean {
  return byte >= 0x30 && byte <= 0x39;
}

function isHexDigit(byte: number): boolean {
  return isDigit(byte) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66);
}

function isSimpleEscape(byte: number): boolean {
  // " \ / b f n r t
  return [0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74].includes(byte);
}

function controlCharacterMessage(byte: number): string {
  const hex = byte.toString(16).toUpperCase().padStart(4, "0");
  const short = SHORT_ESCAPES[byte];
  const escapes = short === undefined ? `\\u${hex}` : `\\u${hex} or \\${short}`;
  return `invalid string: control character U+${hex} (${CONTROL_NAMES[byte] ?? "?"}) must be escaped to ${escapes}`;
}
