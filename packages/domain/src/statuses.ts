/** The statuses an asynchronous job may report through executionStatus (exact case). */
export const CALLBACK_STATUSES = [
  "SUCCESS",
  "UPDATE",
  "PAUSE",
  "WARNING",
  "ERROR",
  "BUSINESS_ERROR",
  "CANCEL",
  "SUSPEND",
] as const;

export type CallbackStatus = (typeof CALLBACK_STATUSES)[number];

/** Oracle's limit on statusMessage, in Unicode code points; longer messages are truncated. */
export const STATUS_MESSAGE_MAX = 1000;

/** Truncates a status message to STATUS_MESSAGE_MAX code points (never splits a surrogate pair). */
export function truncateMessage(message: string): string {
  // Fast path: a string of at most MAX UTF-16 units has at most MAX code points.
  if (message.length <= STATUS_MESSAGE_MAX) return message;
  let out = "";
  let n = 0;
  for (const ch of message) {
    if (n === STATUS_MESSAGE_MAX) break;
    out += ch;
    n++;
  }
  return out;
}

/** Events published on every state change, named as ESS names them. */
export const EVENT_NAMES = [
  "REQUEST_RUNNING",
  "REQUEST_CANCELLING",
  "REQUEST_SUCCEEDED",
  "REQUEST_WARNING",
  "REQUEST_ERROR",
  "REQUEST_CANCELLED",
  "REQUEST_PAUSED",
  "REQUEST_RETRY",
  "REQUEST_TIMED_OUT",
  "REQUEST_ERROR_MANUAL_RECOVERY",
] as const;
export type EventName = (typeof EVENT_NAMES)[number];

/** Why a request reached its state (the ESS "cause" of a state change). */
export type Cause =
  | "PROCESS_SUCCESS"
  | "PROCESS_WARNING"
  | "PROCESS_ERROR"
  | "PROCESS_BUSINESS_ERROR"
  | "PROCESS_CANCEL"
  | "PROCESS_PAUSE"
  | "PROCESS_SUSPEND"
  | "SCHEDULER_DISPATCH"
  | "SCHEDULER_CANCEL";

export type ErrorType = "SYSTEM" | "BUSINESS" | "TIMEOUT";
