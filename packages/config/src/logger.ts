import { type Logger, pino } from "pino";

export type { Logger } from "pino";

/** The levels LOG_LEVEL takes; "silent" logs nothing. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Structured JSON logs (one line per event) for a process. Handles and credentials are redacted
 * wherever a caller passes them by mistake.
 */
export function createLogger(config: { LOG_LEVEL: LogLevel }, service: string): Logger {
  return pino({
    level: config.LOG_LEVEL,
    base: { service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: [
        "requestHandle",
        "*.requestHandle",
        "handle",
        "*.handle",
        "authorization",
        "*.authorization",
        "password",
        "*.password",
        "token",
        "*.token",
      ],
      censor: "[redacted]",
    },
  });
}

/**
 * The per-request line's logger (the gateway's access log, the worker's job log): the process logger
 * without redaction. Those lines are built field by field from values that are never a handle or a
 * credential, and pino's wildcard redaction paths (`*.requestHandle`, ...) otherwise run on every field
 * of every line: about half the cost of a log line, measured in BENCHMARKS.md.
 */
export function perRequestLogger(log: Logger): Logger {
  return log.child({}, { redact: [] });
}
