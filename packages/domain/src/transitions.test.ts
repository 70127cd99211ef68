import { describe, expect, it } from "vitest";
import { CALLBACK_STATES, STATE_NAMES } from "./states.js";
import { CALLBACK_STATUSES, type CallbackStatus } from "./statuses.js";
import { type RequestSnapshot, transition } from "./transitions.js";

const NOW = 1_700_000_000_000;
const running: RequestSnapshot = { state: "RUNNING", execution: 1, retriedCount: 0, maxRetries: 0 };
const cancelling: RequestSnapshot = { ...running, state: "CANCELLING" };

function apply(req: RequestSnapshot, status: CallbackStatus, message?: string) {
  return transition(req, { status, execution: req.execution, message }, NOW);
}

// ess-semantics §3, row by row: [status, to from RUNNING, to from CANCELLING]
const TABLE: [CallbackStatus, string, string][] = [
  ["SUCCESS", "SUCCEEDED", "SUCCEEDED"],
  ["UPDATE", "RUNNING", "CANCELLING"],
  ["PAUSE", "PAUSED", "CANCELLED"],
  ["WARNING", "WARNING", "WARNING"],
  ["ERROR", "ERROR", "ERROR"],
  ["BUSINESS_ERROR", "ERROR", "ERROR"],
  ["CANCEL", "CANCELLED", "CANCELLED"],
  ["SUSPEND", "ERROR_MANUAL_RECOVERY", "CANCELLED"],
];

describe("the ESS transition table", () => {
  it("covers every status", () => {
    expect(TABLE.map((r) => r[0]).sort()).toEqual([...CALLBACK_STATUSES].sort());
  });

  for (const [status, fromRunning, fromCancelling] of TABLE) {
    it(`${status} from RUNNING moves to ${fromRunning}`, () => {
      const out = apply(running, status, "msg");
      expect(out.kind).toBe("applied");
      if (out.kind === "applied") expect(out.to).toBe(fromRunning);
    });
    it(`${status} from CANCELLING moves to ${fromCancelling}`, () => {
      const out = apply(cancelling, status, "msg");
      expect(out.kind).toBe("applied");
      if (out.kind === "applied") expect(out.to).toBe(fromCancelling);
    });
  }

  it("SUCCESS from RUNNING has cause PROCESS_SUCCESS, ends the request and publishes REQUEST_SUCCEEDED", () => {
    const out = apply(running, "SUCCESS");
    expect(out).toMatchObject({
      event: "REQUEST_SUCCEEDED",
      changes: { state: "SUCCEEDED", cause: "PROCESS_SUCCESS", processEndTime: NOW, completedTime: NOW },
    });
  });

  it("UPDATE is a check-in: state unchanged, lastCheckInTime set, no event", () => {
    for (const req of [running, cancelling]) {
      const out = apply(req, "UPDATE", "ignored text");
      expect(out).toMatchObject({ kind: "applied", to: req.state, event: null });
      if (out.kind === "applied") {
        expect(out.changes).toEqual({ state: req.state, lastCheckInTime: NOW });
      }
    }
  });

  it("PAUSE from RUNNING stores statusMessage as pausedState", () => {
    expect(apply(running, "PAUSE", "step 3 of 7")).toMatchObject({
      event: "REQUEST_PAUSED",
      changes: { state: "PAUSED", pausedState: "step 3 of 7" },
    });
  });

  it("PAUSE from CANCELLING cancels with cause PROCESS_CANCEL", () => {
    expect(apply(cancelling, "PAUSE", "x")).toMatchObject({
      event: "REQUEST_CANCELLED",
      changes: { state: "CANCELLED", cause: "PROCESS_CANCEL" },
    });
  });

  it("WARNING stores errorWarningMessage and errorWarningTime, from both states", () => {
    for (const req of [running, cancelling]) {
      expect(apply(req, "WARNING", "disk 91%")).toMatchObject({
        event: "REQUEST_WARNING",
        changes: { state: "WARNING", errorWarningMessage: "disk 91%", errorWarningTime: NOW, processEndTime: NOW },
      });
    }
  });

  it("ERROR with no retries left ends in ERROR, errorType SYSTEM", () => {
    expect(apply(running, "ERROR", "boom")).toMatchObject({
      event: "REQUEST_ERROR",
      changes: { state: "ERROR", errorType: "SYSTEM", errorWarningMessage: "boom", cause: "PROCESS_ERROR" },
    });
  });

  it("ERROR with retries left moves to ERROR_AUTO_RETRY, counts the retry, publishes REQUEST_RETRY", () => {
    const out = apply({ ...running, retriedCount: 1, maxRetries: 2 }, "ERROR", "boom");
    expect(out).toMatchObject({
      to: "ERROR_AUTO_RETRY",
      event: "REQUEST_RETRY",
      changes: { state: "ERROR_AUTO_RETRY", retriedCount: 2, errorWarningMessage: "boom", cause: "PROCESS_ERROR" },
    });
    if (out.kind === "applied") {
      expect(out.changes).not.toHaveProperty("errorType");
      expect(out.changes).not.toHaveProperty("processEndTime");
    }
  });

  it("ERROR once retriedCount reached maxRetries is final", () => {
    expect(apply({ ...running, retriedCount: 2, maxRetries: 2 }, "ERROR")).toMatchObject({ to: "ERROR" });
  });

  it("ERROR from CANCELLING is never retried", () => {
    expect(apply({ ...cancelling, maxRetries: 5 }, "ERROR", "e")).toMatchObject({
      to: "ERROR",
      changes: { errorType: "SYSTEM", errorWarningMessage: "e" },
    });
  });

  it("BUSINESS_ERROR ends in ERROR with errorType BUSINESS and is never retried", () => {
    for (const req of [
      { ...running, maxRetries: 3 },
      { ...cancelling, maxRetries: 3 },
    ]) {
      expect(apply(req, "BUSINESS_ERROR", "bad input")).toMatchObject({
        to: "ERROR",
        event: "REQUEST_ERROR",
        changes: { errorType: "BUSINESS", errorWarningMessage: "bad input" },
      });
    }
  });

  it("an error without statusMessage clears an earlier message", () => {
    expect(apply(running, "ERROR")).toMatchObject({ changes: { errorWarningMessage: null } });
  });

  it("CANCEL cancels with cause PROCESS_CANCEL from both states", () => {
    for (const req of [running, cancelling]) {
      expect(apply(req, "CANCEL")).toMatchObject({
        event: "REQUEST_CANCELLED",
        changes: { state: "CANCELLED", cause: "PROCESS_CANCEL" },
      });
    }
  });

  it("SUSPEND from RUNNING needs manual recovery (cause PROCESS_SUSPEND); from CANCELLING it cancels", () => {
    expect(apply(running, "SUSPEND")).toMatchObject({
      event: "REQUEST_ERROR_MANUAL_RECOVERY",
      changes: { state: "ERROR_MANUAL_RECOVERY", cause: "PROCESS_SUSPEND" },
    });
    expect(apply(cancelling, "SUSPEND")).toMatchObject({ changes: { state: "CANCELLED", cause: "PROCESS_CANCEL" } });
  });

  it("every state other than RUNNING and CANCELLING ignores every callback, naming the state", () => {
    for (const state of STATE_NAMES.filter((s) => !(CALLBACK_STATES as readonly string[]).includes(s))) {
      for (const status of CALLBACK_STATUSES) {
        expect(apply({ ...running, state }, status)).toEqual({
          kind: "ignored",
          from: state,
          reason: `request is ${state}`,
        });
      }
    }
  });

  it("a callback of an earlier execution is ignored as stale", () => {
    const out = transition({ ...running, execution: 2 }, { status: "SUCCESS", execution: 1 }, NOW);
    expect(out).toEqual({ kind: "ignored", from: "RUNNING", reason: "stale execution 1 (current 2)" });
  });
});
