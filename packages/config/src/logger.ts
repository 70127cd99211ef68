import { type Logger, pino } from "pino";
import type { Config } from "./index.js";

export type { Logger } from "pino";

/**
 * Structured JSON logs (one line per event) for a process. Handles and credentials are redacted
 * wherever a caller passes them by mistake.
 */
export function createLogger(config: Pick<Config, "LOG_LEVEL">, service: string): Logger {
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
