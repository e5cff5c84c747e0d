import { expect } from "chai";
import type { PartInfo } from "./multipart-form.js";
import { MultipartError, MultipartParser, multipartBoundary } from "./multipart-form.js";

const BOUNDARY = "----formdata-undici-0123456789";

interface ParsedPart extends PartInfo {
  readonly body: Buffer;
  readonly writes: number;
}

/** parseInChunks runs body through a parser in chunks of chunkSize bytes and collects the parts. */
function parseInChunks(body: Buffer, chunkSize: number, boundary = BOUNDARY): ParsedPart[] {
  const parts: ParsedPart[] = [];
  const parser = new MultipartParser(boundary, (info) => {
    const chunks: Buffer[] = [];
    return {
      write: (bytes) => chunks.push(Buffer.from(bytes)),
      end: () => parts.push({ ...info, body: Buffer.concat(chunks), writes: chunks.length }),
    };
  });
  for (let offset = 0; offset < body.length; offset += chunkSize) parser.write(body.subarray(offset, offset + chunkSize));
  parser.end();
  return parts;
}

/** formBody writes a multipart body from raw part header blocks and bodies. */
function formBody(parts: ReadonlyArray<readonly [string, Buffer | string]>, boundary = BOUNDARY): Buffer {
  const pieces: Buffer[] = [];
  for (const [headers, body] of parts) {
    pieces.push(Buffer.from(`--${boundary}\r\n${headers}\r\n\r\n`, "utf8"), Buffer.from(body), Buffer.from("\r\n"));
  }
  pieces.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(pieces);
}

describe("multipart form parser", () => {
  // Bytes that look like the start of a delimiter, to be split across chunks.
  const tricky = Buffer.concat([
    Buffer.from("a\r\n--"),
    Buffer.from(BOUNDARY.slice(0, 10)),
    Buffer.from([0, 255, 13, 10, 45]),
    Buffer.from("z"),
  ]);
  const body = Buffer.concat([
    Buffer.from("preamble to ignore\r\n"),
    formBody([
      ['Content-Disposition: form-data; name="model"', "whisper-1"],
      ['Content-Disposition: form-data; name="timestamp_granularities[]"', "word"],
      ['Content-Disposition: form-data; name="timestamp_granularities[]"', "segment"],
      ['Content-Disposition: form-data; name="file"; filename="rec ü %221%22.wav"\r\nContent-Type: audio/wav', tricky],
      ['Content-Disposition: form-data; name="curl"; filename="say \\"hi\\".txt"', "x"],
      ["content-disposition: form-data; name=extended; filename=\"fallback.bin\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf", ""],
    ]),
    Buffer.from("epilogue to ignore"),
  ]);

  it("parses fields, repeated fields and files whatever the chunking, one byte at a time included", () => {
    const whole = parseInChunks(body, body.length);
    for (const size of [1, 2, 3, 7, 64]) {
      expect(parseInChunks(body, size).map(({ writes: _, ...part }) => part)).to.deep.equal(whole.map(({ writes: _, ...part }) => part));
    }
    expect(whole.map((part) => [part.name, part.filename, part.contentType])).to.deep.equal([
      ["model", undefined, undefined],
      ["timestamp_granularities[]", undefined, undefined],
      ["timestamp_granularities[]", undefined, undefined],
      ["file", 'rec ü "1".wav', "audio/wav"],
      ["curl", 'say "hi".txt', undefined],
      ["extended", "résumé.pdf", undefined],
    ]);
    expect(whole.map((part) => part.body.toString("latin1"))).to.deep.equal([
      "whisper-1",
      "word",
      "segment",
      tricky.toString("latin1"),
      "x",
      "",
    ]);
  });

  it("streams a large part through in pieces instead of holding it", () => {
    const large = Buffer.alloc(1024 * 1024, 0x41);
    const parts = parseInChunks(formBody([['Content-Disposition: form-data; name="file"; filename="big.bin"', large]]), 64 * 1024);
    expect(parts[0]?.body).to.deep.equal(large);
    expect(parts[0]?.writes, "one write per received chunk").to.be.greaterThan(10);
  });

  it("refuses bodies without a closing boundary or without Content-Disposition", () => {
    const unfinished = formBody([['Content-Disposition: form-data; name="a"', "1"]]).subarray(0, -8);
    expect(() => parseInChunks(unfinished, 5)).to.throw(MultipartError, /closing boundary/);
    expect(() => parseInChunks(formBody([["Content-Type: text/plain", "1"]]), 5)).to.throw(MultipartError, /Content-Disposition/);
  });

  it("reads the boundary of multipart/form-data content types only", () => {
    expect(multipartBoundary(`multipart/form-data; boundary=${BOUNDARY}`)).to.equal(BOUNDARY);
    expect(multipartBoundary('Multipart/Form-Data; charset=utf-8; boundary="a b:c"')).to.equal("a b:c");
    expect(multipartBoundary("application/json")).to.equal(undefined);
    expect(multipartBoundary("multipart/form-data")).to.equal(undefined);
    expect(multipartBoundary(undefined)).to.equal(undefined);
  });
});
