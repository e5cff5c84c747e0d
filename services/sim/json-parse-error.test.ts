import { expect } from "chai";
import { jsonParseErrorMessage } from "./json-parse-error.js";

function messageFor(text: string): string {
  return jsonParseErrorMessage(Buffer.from(text, "utf8"));
}

describe("jsonParseErrorMessage", () => {
  const prefix = "[json.exception.parse_error.101] parse error at ";

  it("words an empty input as nlohmann does", () => {
    expect(messageFor("")).to.equal(
      `${prefix}line 1, column 1: attempting to parse an empty input; check that your input string or stream contains the expected JSON`,
    );
  });

  it("reports an input cut where an object key is due at the column after the last byte", () => {
    expect(messageFor('{"model":"sim-llama-xy","stream":false,"n":1,')).to.equal(
      `${prefix}line 1, column 46: syntax error while parsing object key - unexpected end of input; expected string literal`,
    );
  });

  it("names the bad literal and what was read of it", () => {
    expect(messageFor("invalid")).to.equal(`${prefix}line 1, column 1: syntax error while parsing value - invalid literal; last read: 'i'`);
    expect(messageFor('{"a":tru}')).to.equal(
      `${prefix}line 1, column 9: syntax error while parsing value - invalid literal; last read: 'tru}'`,
    );
  });

  it("names the unexpected token and the expected one, in each context", () => {
    expect(messageFor('{"a":}')).to.equal(
      `${prefix}line 1, column 6: syntax error while parsing value - unexpected '}'; expected '[', '{', or a literal`,
    );
    expect(messageFor("[1,2")).to.equal(
      `${prefix}line 1, column 5: syntax error while parsing array - unexpected end of input; expected ']'`,
    );
    expect(messageFor('{"a":1 "b"')).to.equal(
      `${prefix}line 1, column 10: syntax error while parsing object - unexpected string literal; expected '}'`,
    );
    expect(messageFor('{"a":1}x')).to.equal(
      `${prefix}line 1, column 8: syntax error while parsing value - invalid literal; last read: 'x'; expected end of input`,
    );
  });

  it("counts lines and resets the column after each newline", () => {
    expect(messageFor('{\n"a"\n}')).to.equal(
      `${prefix}line 3, column 1: syntax error while parsing object separator - unexpected '}'; expected ':'`,
    );
  });

  it("reports unterminated strings and raw control characters", () => {
    expect(messageFor('"abc')).to.equal(
      `${prefix}line 1, column 5: syntax error while parsing value - invalid string: missing closing quote; last read: '"abc'`,
    );
    expect(messageFor('"a\tb"')).to.equal(
      `${prefix}line 1, column 3: syntax error while parsing value - invalid string: control character U+0009 (HT) must be escaped to \\u0009 or \\t; last read: '"a<U+0009>'`,
    );
  });
});
