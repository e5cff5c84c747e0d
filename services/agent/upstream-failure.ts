/**
 * describeUpstreamFailure turns a transport error from talking to a local server into one line a person can act on,
 * the way fastify-reply-from names ECONNREFUSED, resets and timeouts: what happened, to which server (a URL or a
 * name such as "the local llm server"), and the code.
 */
export function describeUpstreamFailure(error: unknown, server: string, timeoutMs: number): string {
  const cause = rootCause(error);
  const code = typeof cause.code === "string" ? cause.code : undefined;
  switch (code) {
    case "ECONNREFUSED":
      return `cannot connect to ${server}: connection refused (is the server running?)`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `cannot connect to ${server}: host name not found (${code})`;
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `cannot connect to ${server}: host unreachable (${code})`;
    case "UND_ERR_CONNECT_TIMEOUT":
      return `cannot connect to ${server}: connect timed out`;
    case "ECONNRESET":
    case "EPIPE":
    case "UND_ERR_SOCKET":
      return `${server} closed the connection unexpectedly (${code}: ${cause.message})`;
    case "UND_ERR_HEADERS_TIMEOUT":
      return `${server} sent no response within ${timeoutMs} ms`;
    case "UND_ERR_BODY_TIMEOUT":
      return `${server} sent nothing for ${timeoutMs} ms in the middle of its answer`;
    default:
      // A system error's message repeats the peer's address, which clients must not learn; its syscall and code suffice.
      if (typeof cause.syscall === "string" && code) return `${server}: ${cause.syscall} failed (${code})`;
      return `${server}: ${cause.message || String(error)}${code ? ` (${code})` : ""}`;
  }
}

interface ErrorWithCode {
  readonly message: string;
  readonly code?: unknown;
  readonly syscall?: unknown;
}

/** rootCause unwraps AggregateError (happy-eyeballs connects) and `cause` chains down to the error that has a code. */
function rootCause(error: unknown): ErrorWithCode {
  let current: unknown = error;
  for (let depth = 0; depth < 5; depth++) {
    if (!(current instanceof Error)) break;
    if (typeof (current as ErrorWithCode).code === "string") return current as ErrorWithCode;
    if (current instanceof AggregateError && current.errors.length > 0) current = current.errors[0];
    else if (current.cause !== undefined) current = current.cause;
    else break;
  }
  return current instanceof Error ? (current as ErrorWithCode) : { message: String(current) };
}

/**
 * CONNECTION_FAILURES are the error codes of a call that could not reach its server or lost it: refused, reset,
 * closed, unreachable, or a connect that timed out. A server that is slow to answer (headers or body timeouts) is
 * busy, not gone, and an HTTP error status is an answer.
 */
const CONNECTION_FAILURES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/**
 * isConnectionFailure tells whether an error from a call to an upstream means the server is not there (see
 * CONNECTION_FAILURES): the error the call path hands to reportUnreachable. It looks through `cause` chains and
 * AggregateErrors (happy-eyeballs connects) for the first error that carries a code.
 */
export function isConnectionFailure(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const code = (current as { readonly code?: unknown }).code;
    if (typeof code === "string") return CONNECTION_FAILURES.has(code);
    current = current instanceof AggregateError && current.errors.length > 0 ? current.errors[0] : current.cause;
  }
  return false;
}
