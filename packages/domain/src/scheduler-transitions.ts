import { CALLBACK_STATES, type CallbackState, isTerminal, type RequestState } from "./states.js";
import type { Cause, ErrorType, EventName } from "./statuses.js";
import type { Changes } from "./transitions.js";

/**
 * The scheduler side of the state machine (ess-semantics §4): the moves the scheduler and the
 * timeout sweep make, as opposed to the job's callbacks (TRANSITIONS). Pure data: the register,
 * cancel and sweepTimeouts scripts receive these very tables, serialised by packages/store.
 */
export interface SchedulerRule {
  /** The state the request moves to; null keeps its state (a timeout under policy `mark`). */
  readonly to: RequestState | null;
  readonly event: EventName;
  readonly cause?: Cause;
  readonly errorType?: ErrorType;
}

/** The states that take a cancel, and where each goes (WAIT/READY/BLOCKED/HOLD at once; a running job is asked). */
export const CANCEL_RULES: Readonly<Partial<Record<RequestState, SchedulerRule>>> = {
  WAIT: { to: "CANCELLED", event: "REQUEST_CANCELLED", cause: "SCHEDULER_CANCEL" },
  READY: { to: "CANCELLED", event: "REQUEST_CANCELLED", cause: "SCHEDULER_CANCEL" },
  BLOCKED: { to: "CANCELLED", event: "REQUEST_CANCELLED", cause: "SCHEDULER_CANCEL" },
  HOLD: { to: "CANCELLED", event: "REQUEST_CANCELLED", cause: "SCHEDULER_CANCEL" },
  RUNNING: { to: "CANCELLING", event: "REQUEST_CANCELLING", cause: "SCHEDULER_CANCEL" },
  COMPLETED: { to: "CANCELLING", event: "REQUEST_CANCELLING", cause: "SCHEDULER_CANCEL" },
};

/** The states a forceCancel ends without the job (once quiet for the quiet period). */
export const FORCE_CANCEL_RULES: Readonly<Partial<Record<RequestState, SchedulerRule>>> = {
  CANCELLING: { to: "CANCELLED", event: "REQUEST_CANCELLED", cause: "SCHEDULER_CANCEL" },
};

/** A registration (new or re-armed): any state but a terminal one moves to RUNNING under a new handle. */
export const REGISTER_RULE: SchedulerRule = { to: "RUNNING", event: "REQUEST_RUNNING", cause: "SCHEDULER_DISPATCH" };

/** The only state a registration with resumed=true may re-arm (a new request is simply created). */
export const RESUMABLE_STATE: RequestState = "PAUSED";

/**
 * The states an operator re-arms from the console (operator recovery, ess-semantics §4): a request
 * that waits for a person. ERROR_MANUAL_RECOVERY is re-registered under a new handle; PAUSED is
 * resumed (a registration with resumed=true, which hands the job its pausedState back).
 */
export const OPERATOR_REARM_STATES: readonly RequestState[] = ["ERROR_MANUAL_RECOVERY", "PAUSED"];

/** What a passed requestTimeout does, by TIMEOUT_POLICY: `mark` keeps the state (ESS), `error` ends it. */
export const TIMEOUT_RULES = {
  mark: { to: null, event: "REQUEST_TIMED_OUT" },
  error: { to: "ERROR", event: "REQUEST_TIMED_OUT", cause: "PROCESS_ERROR", errorType: "TIMEOUT" },
} as const satisfies Record<string, SchedulerRule>;

/** The states whose requestTimeout runs: those that take callbacks (a job that is expected to report). */
export const TIMEOUT_STATES: readonly CallbackState[] = CALLBACK_STATES;

export type SchedulerOp =
  | { readonly kind: "register"; readonly resumed: boolean }
  | { readonly kind: "cancel" }
  /** `quietUntil`: ms at which the quiet period since CANCELLING began or the last check-in ends */
  | { readonly kind: "forceCancel"; readonly quietUntil: number }
  | { readonly kind: "timeout"; readonly policy: keyof typeof TIMEOUT_RULES; readonly requestTimeout: number };

/** Why a scheduler operation is refused (the store maps each to its EssError). */
export type SchedulerRefusal = "NOT_FOUND" | "ALREADY_TERMINAL" | "NOT_PAUSED" | "UNSUPPORTED_STATE" | "TOO_EARLY";

export type SchedulerOutcome =
  | {
      readonly kind: "applied";
      readonly from: RequestState | null;
      readonly to: RequestState;
      readonly event: EventName;
      readonly changes: Changes;
    }
  | { readonly kind: "refused"; readonly refusal: SchedulerRefusal }
  /** a timeout found the request gone, ended or no longer taking callbacks: it leaves the deadline set */
  | { readonly kind: "dropped" };

/** Fields a re-registration clears: what the previous execution's end, timeout and cancel left behind. */
export const REARM_CLEARS = [
  "closedHandle",
  "closedStatus",
  "isTimedOut",
  "timedOutAt",
  "errorType",
  "cause",
  "errorWarningMessage",
  "errorWarningTime",
  "processEndTime",
  "completedTime",
  "cancellingSince",
  "lastCheckInTime",
] as const;

/** The message a timeout under policy `error` stores as errorWarningMessage. */
export function timeoutMessage(requestTimeoutMinutes: number | string): string {
  return `no callback or check-in within requestTimeout (${requestTimeoutMinutes} min)`;
}

function endFields(changes: Changes, to: RequestState, now: number): void {
  if (isTerminal(to)) {
    changes.processEndTime = now;
    changes.completedTime = now;
  }
}

/**
 * A scheduler-side move of a request in `state` (null: not registered): the rules above plus the
 * fields each writes. Pure; `now` in ms. The register, cancel and sweepTimeouts scripts do the same.
 */
export function schedulerTransition(state: RequestState | null, op: SchedulerOp, now: number): SchedulerOutcome {
  switch (op.kind) {
    case "register": {
      if (state && isTerminal(state)) return { kind: "refused", refusal: "ALREADY_TERMINAL" };
      if (state && op.resumed && state !== RESUMABLE_STATE) return { kind: "refused", refusal: "NOT_PAUSED" };
      const changes: Changes = {};
      if (state) for (const f of REARM_CLEARS) changes[f] = null;
      Object.assign(changes, {
        state: REGISTER_RULE.to,
        cause: REGISTER_RULE.cause,
        processStartTime: now,
        updatedAt: now,
      });
      return { kind: "applied", from: state, to: "RUNNING", event: REGISTER_RULE.event, changes };
    }
    case "cancel":
    case "forceCancel": {
      if (!state) return { kind: "refused", refusal: "NOT_FOUND" };
      const rule = (op.kind === "cancel" ? CANCEL_RULES : FORCE_CANCEL_RULES)[state];
      if (!rule?.to) return { kind: "refused", refusal: "UNSUPPORTED_STATE" };
      if (op.kind === "forceCancel" && op.quietUntil > now) return { kind: "refused", refusal: "TOO_EARLY" };
      const changes: Changes = { state: rule.to, updatedAt: now, cause: rule.cause ?? null };
      if (rule.to === "CANCELLING") changes.cancellingSince = now;
      endFields(changes, rule.to, now);
      return { kind: "applied", from: state, to: rule.to, event: rule.event, changes };
    }
    case "timeout": {
      if (!state || !(TIMEOUT_STATES as readonly string[]).includes(state)) return { kind: "dropped" };
      const rule: SchedulerRule = TIMEOUT_RULES[op.policy];
      const to = rule.to ?? state;
      const changes: Changes = { isTimedOut: "true", timedOutAt: now, updatedAt: now };
      if (rule.to) {
        changes.state = rule.to;
        if (rule.errorType) changes.errorType = rule.errorType;
        if (rule.cause) changes.cause = rule.cause;
        changes.errorWarningMessage = timeoutMessage(op.requestTimeout);
        changes.errorWarningTime = now;
      }
      endFields(changes, to, now);
      return { kind: "applied", from: state, to, event: rule.event, changes };
    }
  }
}
