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
