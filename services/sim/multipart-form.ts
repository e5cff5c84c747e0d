/** MAX_PART_HEADER_BYTES bounds one part's header block, so that a body without a blank line cannot grow a buffer. */
const MAX_PART_HEADER_BYTES = 16 * 1024;
/** MAX_BOUNDARY_LINE_BYTES bounds what may follow a boundary before its line ends (RFC 2046 transport padding). */
const MAX_BOUNDARY_LINE_BYTES = 256;
const CRLF = Buffer.from("\r\n", "latin1");
const BLANK_LINE = Buffer.from("\r\n\r\n", "latin1");

/** PartInfo is what a part's headers say about it. */
export interface PartInfo {
  /** name is the form field's name (Content-Disposition `name`). */
  readonly name: string;
  /** filename is set for file parts (Content-Disposition `filename*` or `filename`), "" when sent empty. */
  readonly filename: string | undefined;
  /** contentType is the part's Content-Type header, when it has one. */
  readonly contentType: string | undefined;
}

/** PartSink receives one part's body bytes as they arrive, then end(). */
export interface PartSink {
  write(bytes: Buffer): void;
  end(): void;
}

/** MultipartError is a malformed multipart/form-data body. */
export class MultipartError extends Error {
  override readonly name = "MultipartError";
}

type State = "preamble" | "after-boundary" | "headers" | "body" | "done";

/**
 * MultipartParser parses a multipart/form-data body (RFC 7578) as it streams in: write() takes chunks of any size,
 * split anywhere, and passes each part's body to the sink onPart returned for it, holding back only the few bytes
 * that could begin a boundary. It never holds a whole part, so files of any size pass through in constant memory.
 */
export class MultipartParser {
  private state: State = "preamble";
  private readonly delimiter: Buffer;
  // The body opens with "--boundary" and no CRLF before it; seeding one lets every delimiter be "\r\n--boundary".
  private pending: Buffer = Buffer.from(CRLF);
  private sink: PartSink | undefined;

  constructor(
    boundary: string,
    private readonly onPart: (info: PartInfo) => PartSink,
  ) {
    this.delimiter = Buffer.from(`\r\n--${boundary}`, "latin1");
  }

  /** done tells whether the closing boundary has been seen. */
  get done(): boolean {
    return this.state === "done";
  }

  /** write parses the next chunk of the body; it throws MultipartError when the body is malformed. */
  write(chunk: Buffer): void {
    if (this.state === "done") return;
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    this.parse();
  }

  /** end checks that the body was complete. */
  end(): void {
    if (this.state !== "done") throw new MultipartError("multipart body ended before its closing boundary");
  }

  private parse(): void {
    for (;;) {
      switch (this.state) {
        case "preamble": {
          const at = this.pending.indexOf(this.delimiter);
          if (at === -1) {
            this.keepTail();
            return;
          }
          this.pending = this.pending.subarray(at + this.delimiter.length);
          this.state = "after-boundary";
          continue;
        }
        case "after-boundary": {
          if (this.pending.length < 2) return;
          if (this.pending[0] === 0x2d && this.pending[1] === 0x2d) {
            this.state = "done";
            this.pending = Buffer.alloc(0);
            return;
          }
          const lineEnd = this.pending.indexOf(CRLF);
          if (lineEnd === -1) {
            if (this.pending.length > MAX_BOUNDARY_LINE_BYTES) throw new MultipartError("malformed multipart boundary line");
            return;
          }
          if (this.pending.subarray(0, lineEnd).toString("latin1").trim() !== "") {
            throw new MultipartError("malformed multipart boundary line");
          }
          this.pending = this.pending.subarray(lineEnd + 2);
          this.state = "headers";
          continue;
        }
        case "headers": {
          // A part may have no header lines at all, and then its blank line comes at once.
          const end = this.pending.subarray(0, 2).equals(CRLF) ? -2 : this.pending.indexOf(BLANK_LINE);
          if (end === -1) {
            if (this.pending.length > MAX_PART_HEADER_BYTES) throw new MultipartError("multipart part headers too large");
            return;
          }
          const info = parsePartHeaders(end < 0 ? "" : this.pending.toString("utf8", 0, end));
          this.pending = this.pending.subarray(end + 4);
          this.sink = this.onPart(info);
          this.state = "body";
          continue;
        }
        case "body": {
          const at = this.pending.indexOf(this.delimiter);
          if (at === -1) {
            const safe = this.pending.length - (this.delimiter.length - 1);
            if (safe > 0) {
              this.sink?.write(this.pending.subarray(0, safe));
              this.pending = this.pending.subarray(safe);
            }
            return;
          }
          if (at > 0) this.sink?.write(this.pending.subarray(0, at));
          this.sink?.end();
          this.sink = undefined;
          this.pending = this.pending.subarray(at + this.delimiter.length);
          this.state = "after-boundary";
          continue;
        }
        case "done":
          return;
      }
    }
  }

  /** keepTail drops what cannot hold the start of a delimiter any more. */
  private keepTail(): void {
    const keep = this.delimiter.length - 1;
    if (this.pending.length > keep) this.pending = this.pending.subarray(this.pending.length - keep);
  }
}

/** multipartBoundary reads the boundary of a multipart/form-data Content-Type; undefined for any other type. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  if (contentType === undefined || !/^multipart\/form-data\s*(;|$)/i.test(contentType)) return undefined;
  const match = /;\s*boundary=(?:"([^"]{1,70})"|([^";\s]{1,70}))/i.exec(contentType);
  return match?.[1] ?? match?.[2];
}

/** parsePartHeaders reads a part's Content-Disposition and Content-Type; header text is UTF-8 as clients send it. */
function parsePartHeaders(text: string): PartInfo {
  let disposition: string | undefined;
  let contentType: string | undefined;
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "content-disposition") disposition = value;
    else if (name === "content-type") contentType = value;
  }
  if (disposition === undefined) throw new MultipartError("multipart part without Content-Disposition");
  const params = dispositionParams(disposition);
  const name = params.get("name");
  if (name === undefined) throw new MultipartError("multipart part without a field name");
  const extended = params.get("filename*");
  const plain = params.get("filename");
  const decoded = extended === undefined ? undefined : decodeExtendedValue(extended);
  return {
    name: unescapeFormName(name),
    filename: decoded ?? (plain === undefined ? undefined : unescapeFormName(plain)),
    contentType,
  };
}

/** dispositionParams splits `form-data; name="a"; filename="b"` into lower-cased keys and unquoted values. */
function dispositionParams(value: string): Map<string, string> {
  const params = new Map<string, string>();
  let at = value.indexOf(";");
  while (at !== -1 && at < value.length) {
    at++;
    while (value[at] === " " || value[at] === "\t") at++;
    const equals = value.indexOf("=", at);
    if (equals === -1) break;
    const key = value.slice(at, equals).trim().toLowerCase();
    let cursor = equals + 1;
    let parsed = "";
    if (value[cursor] === '"') {
      cursor++;
      while (cursor < value.length && value[cursor] !== '"') {
        // A backslash quotes the next character (RFC 2616 quoted-pair), as curl writes quotes in file names.
        if (value[cursor] === "\\" && cursor + 1 < value.length) cursor++;
        parsed += value[cursor];
        cursor++;
      }
      cursor++;
    } else {
      const end = value.indexOf(";", cursor);
      parsed = value.slice(cursor, end === -1 ? value.length : end).trim();
      cursor = end === -1 ? value.length : end;
    }
    if (!params.has(key)) params.set(key, parsed);
    at = value.indexOf(";", cursor);
  }
  return params;
}

/**
 * unescapeFormName undoes the escaping the WHATWG multipart/form-data encoder (browsers, undici, so the openai SDK)
 * applies to names and file names: `"` as %22 and line breaks as %0D / %0A. A name that really contains "%22" cannot
 * be told apart; the encoder's choice, not ours.
 */
function unescapeFormName(name: string): string {
  return name.replace(/%(22|0d|0a)/gi, (sequence) => String.fromCharCode(Number.parseInt(sequence.slice(1), 16)));
}

/** decodeExtendedValue decodes an RFC 8187 value (`UTF-8''rec%20%C3%BC.wav`); undefined when malformed. */
function decodeExtendedValue(value: string): string | undefined {
  const match = /^([\w!#$%&+^`{}~-]+)'[^']*'(.*)$/.exec(value);
  if (match === null) return undefined;
  const charset = (match[1] ?? "").toLowerCase();
  const encoded = match[2] ?? "";
  try {
    if (charset === "utf-8") return decodeURIComponent(encoded);
    if (charset === "iso-8859-1")
      return encoded.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
  } catch {
    return undefined;
  }
  return undefined;
}
