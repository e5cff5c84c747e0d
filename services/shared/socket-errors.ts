/** NEVER_CONNECTED are the socket errors that say a call never reached a server: nothing listens there, or its host is gone. */
export const NEVER_CONNECTED: ReadonlySet<string> = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"]);

/** MAX_CAUSES bounds the walk down an error's causes, which real errors nest two or three deep. */
const MAX_CAUSES = 8;

/** causedBy tells whether an error, or one of its causes, has one of the given Node error codes. */
export function causedBy(error: unknown, codes: ReadonlySet<string>): boolean {
  for (let cause = error, depth = 0; cause instanceof Error && depth < MAX_CAUSES; cause = cause.cause, depth++) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (typeof code === "string" && codes.has(code)) return true;
  }
  return false;
}

/** neverConnected tells whether an error's causes say the call never reached a server, so that nothing of it was done. */
export function neverConnected(error: unknown): boolean {
  return causedBy(error, NEVER_CONNECTED);
}
