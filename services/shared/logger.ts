import { type Logger, pino } from "pino";

export type { Logger } from "pino";

/** LOG_LEVELS are the levels --log-level accepts. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** REDACTED_PATHS are fields that may hold a credential; they are never written out. */
export const REDACTED_PATHS = [
  "apiKey",
  "meshToken",
  "agentToken",
  "*.apiKey",
  "*.meshToken",
  "*.agentToken",
  "req.headers.authorization",
  "headers.authorization",
];

/**
 * createLogger makes a JSON logger on stderr, so that stdout stays free for what a command prints for people and
 * scripts (a new key, the dev environment's export lines).
 */
export function createLogger(service: string, level: string = "info"): Logger {
  return pino(
    { name: service, level, redact: { paths: REDACTED_PATHS, censor: "[redacted]" }, base: { service } },
    pino.destination({ fd: 2, sync: false }),
  );
}
