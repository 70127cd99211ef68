import { acceptsCallbacks, type CallbackState, isTerminal, type RequestState } from "./states.js";
import type { CallbackStatus, Cause, ErrorType, EventName } from "./statuses.js";

/**
 * One cell of the ESS transition table: what a callback status does to a request in a state that
 * takes callbacks. Pure data: the worker's Lua apply script receives this very table, serialised
 * (see packages/store), so there is exactly one copy of the rules.
 */
export interface Rule {
  /** The state the request moves to (the same state for a check-in). */
  readonly to: RequestState;
  /** The event published for the move; null when the state does not change. */
  readonly event: EventName | null;
  readonly cause?: Cause;
  readonly errorType?: ErrorType;
  /** The request field that receives statusMessage, if any. */
  readonly message?: "errorWarningMessage" | "pausedState";
  /** The callback counts as a check-in (sets lastCheckInTime). */
  readonly checkIn?: true;
  /** Replaces this rule while retriedCount < maxRetries (and then increments retriedCount). */
  readonly retry?: Omit<Rule, "retry">;
}

/** The ESS transition table (ess-semantics §3): RUNNING and CANCELLING columns, one row per status. */
export const TRANSITIONS: Readonly<Record<CallbackState, Readonly<Record<CallbackStatus, Rule>>>> = {
  RUNNING: {
    SUCCESS: { to: "SUCCEEDED", event: "REQUEST_SUCCEEDED", cause: "PROCESS_SUCCESS" },
    UPDATE: { to: "RUNNING", event: null, checkIn: true },
    PAUSE: { to: "PAUSED", event: "REQUEST_PAUSED", cause: "PROCESS_PAUSE", message: "pausedState" },
    WARNING: {
      to: "WARNING",
      event: "REQUEST_WARNING",
      cause: "PROCESS_WARNING",
      message: "errorWarningMessage",
    },
    ERROR: {
      to: "ERROR",
      event: "REQUEST_ERROR",
      cause: "PROCESS_ERROR",
      errorType: "SYSTEM",
      message: "errorWarningMessage",
      retry: {
        to: "ERROR_AUTO_RETRY",
        event: "REQUEST_RETRY",
        cause: "PROCESS_ERROR",
        message: "errorWarningMessage",
      },
    },
    BUSINESS_ERROR: {
      to: "ERROR",
      event: "REQUEST_ERROR",
      cause: "PROCESS_BUSINESS_ERROR",
      errorType: "BUSINESS",
      message: "errorWarningMessage",
    },
    CANCEL: { to: "CANCELLED", event: "REQUEST_CANCELLED", cause: "PROCESS_CANCEL" },
    SUSPEND: {
      to: "ERROR_MANUAL_RECOVERY",
      event: "REQUEST_ERROR_MANUAL_RECOVERY",
      cause: "PROCESS_SUSPEND",
    },
  },
  CANCELLING: {
    SUCCESS: { to: "SUCCEEDED", event: "REQUEST_SUCCEEDED", cause: "PROCESS_SUCCESS" },
    UPDATE: { to: "CANCELLING", event: null, checkIn: true },
    PAUSE: { to: "CANCELLED", event: "REQUEST_CANCELLED", cause: "PROCESS_CANCEL" },
    WARNING: {
      to: "WARNING",
      event: "REQUEST_WARNING",
      cause: "PROCESS_WARNING",
      message: "errorWarningMessage",
    },
    ERROR: {
      to: "ERROR",
      event: "REQUEST_ERROR",
      cause: "PROCESS_ERROR",
      errorType: "SYSTEM",
      message: "errorWarningMessage",
    },
    BUSINESS_ERROR: {
      to: "ERROR",
      event: "REQUEST_ERROR",
      cause: "PROCESS_BUSINESS_ERROR",
      errorType: "BUSINESS",
      message: "errorWarningMessage",
    },
    CANCEL: { to: "CANCELLED", event: "REQUEST_CANCELLED", cause: "PROCESS_CANCEL" },
    SUSPEND: { to: "CANCELLED", event: "REQUEST_CANCELLED", cause: "PROCESS_CANCEL" },
  },
};

/** What the worker knows of a request when it applies a callback. */
export interface RequestSnapshot {
  readonly state: RequestState;
  readonly execution: number;
  readonly retriedCount: number;
  readonly maxRetries: number;
}

/** One accepted callback, as the worker applies it. */
export interface AppliedCallback {
  readonly status: CallbackStatus;
  /** The execution (registration) whose handle the callback was admitted under. */
  readonly execution: number;
  /** Already truncated to STATUS_MESSAGE_MAX. */
  readonly message?: string | undefined;
}

/** Field values a transition writes on the request; null deletes the field. */
export type Changes = Record<string, string | number | null>;

export type Outcome =
  | {
      readonly kind: "applied";
      readonly from: CallbackState;
      readonly to: RequestState;
      readonly event: EventName | null;
      readonly changes: Changes;
    }
  | { readonly kind: "ignored"; readonly from: RequestState; readonly reason: string };

/**
 * Applies one callback to a request: the ESS transition table plus the rules around it (stale
 * executions and states that take no callbacks are ignored, with a reason). Pure; `now` in ms.
 */
export function transition(req: RequestSnapshot, cb: AppliedCallback, now: number): Outcome {
  if (cb.execution !== req.execution) {
    return {
      kind: "ignored",
      from: req.state,
      reason: `stale execution ${cb.execution} (current ${req.execution})`,
    };
  }
  if (!acceptsCallbacks(req.state)) {
    return { kind: "ignored", from: req.state, reason: `request is ${req.state}` };
  }
  const base = TRANSITIONS[req.state][cb.status];
  const retrying = base.retry !== undefined && req.retriedCount < req.maxRetries;
  const rule: Omit<Rule, "retry"> = retrying && base.retry ? base.retry : base;
  const changes: Changes = { state: rule.to };
  if (rule.cause) changes.cause = rule.cause;
  if (rule.errorType) changes.errorType = rule.errorType;
  if (rule.message) {
    changes[rule.message] = cb.message ?? null;
    if (rule.message === "errorWarningMessage") changes.errorWarningTime = now;
  }
  if (rule.checkIn) changes.lastCheckInTime = now;
  if (retrying) changes.retriedCount = req.retriedCount + 1;
  if (isTerminal(rule.to)) {
    changes.processEndTime = now;
    changes.completedTime = now;
  }
  return { kind: "applied", from: req.state, to: rule.to, event: rule.event, changes };
}
