import type { InjectedFault } from "./fault-injector.js";
import type { RequestRecord } from "./load-driver.js";

/** GATEWAY_KILLED opens the clean-error label of a request whose connection died with the gateway. */
export const GATEWAY_KILLED = "gateway killed";
/**
 * GATEWAY_CUT_SLACK_MS is how long after the restarted gateway is ready a broken connection is still put down to the
 * kill: a client may send on a kept-alive connection to the dead process before it has read the close.
 */
export const GATEWAY_CUT_SLACK_MS = 1_000;

/**
 * attributeGatewayCuts re-reads the requests whose connection broke (refused, or reset mid-answer) while the gateway
 * process was dead: from its SIGKILL until its restart was ready, plus GATEWAY_CUT_SLACK_MS. A dead process gives no
 * error frame; the client's connection error is the failure, immediate and unmistakable (never an answer that looks
 * whole), so such a request counts as a clean error labelled "gateway killed: CODE". Every other request keeps its
 * verdict: an answer that ended without [DONE] or an error frame and without a broken connection is still lost.
 */
export function attributeGatewayCuts(records: readonly RequestRecord[], faults: readonly InjectedFault[]): RequestRecord[] {
  const deadSpans = faults
    .filter((f) => f.kind === "gateway-kill" && f.injectedAtMs !== undefined)
    .map((f) => ({ fromMs: f.injectedAtMs as number, toMs: (f.healedAtMs ?? Number.POSITIVE_INFINITY) + GATEWAY_CUT_SLACK_MS }));
  return attributeConnectionCuts(records, deadSpans, GATEWAY_KILLED, "the connection to the gateway broke while it was dead");
}

/** DeadSpan is a stretch of time, epoch ms, in which a process a client's connection went through was dead. */
export interface DeadSpan {
  readonly fromMs: number;
  readonly toMs: number;
}

/**
 * attributeConnectionCuts makes a clean error, labelled "LABEL: CODE", of every lost request whose connection broke
 * (refused or reset) within one of deadSpans: a dead process in the way gives no error frame, and the client's
 * connection error is the failure. Every other request keeps its verdict.
 */
export function attributeConnectionCuts(
  records: readonly RequestRecord[],
  deadSpans: readonly DeadSpan[],
  label: string,
  why: string,
): RequestRecord[] {
  return records.map((record) => {
    if (record.outcome !== "lost" || record.ending !== "reset") return record;
    if (!deadSpans.some((span) => record.endMs >= span.fromMs && record.endMs <= span.toMs)) return record;
    const code = record.failure?.split(" ")[0] ?? "";
    const cause = /^[A-Z][A-Z0-9_]+$/.test(code) ? code : "connection error";
    return { ...record, outcome: "clean_error", error: `${label}: ${cause}`, detail: `${why} (${record.detail})` };
  });
}
