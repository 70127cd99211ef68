import { describe, expect, it } from "vitest";
import { CANCEL_RULES, schedulerTransition, TIMEOUT_STATES } from "./scheduler-transitions.js";
import { isTerminal, STATE_NAMES } from "./states.js";

const NOW = 1_700_000_000_000;

describe("scheduler transitions (ess-semantics §4)", () => {
  it("cancel: WAIT/READY/BLOCKED/HOLD end at once, RUNNING/COMPLETED ask the job; no other state takes it", () => {
    const at = (s: string) => CANCEL_RULES[s as keyof typeof CANCEL_RULES]?.to;
    expect(["WAIT", "READY", "BLOCKED", "HOLD"].map(at)).toEqual(Array(4).fill("CANCELLED"));
    expect(["RUNNING", "COMPLETED"].map(at)).toEqual(["CANCELLING", "CANCELLING"]);
    for (const s of STATE_NAMES.filter(
      (x) => !["WAIT", "READY", "BLOCKED", "HOLD", "RUNNING", "COMPLETED"].includes(x),
    ))
      expect(schedulerTransition(s, { kind: "cancel" }, NOW)).toEqual({
        kind: "refused",
        refusal: "UNSUPPORTED_STATE",
      });
    expect(schedulerTransition(null, { kind: "cancel" }, NOW)).toEqual({ kind: "refused", refusal: "NOT_FOUND" });
  });

  it("forceCancel ends CANCELLING once quiet, and is too early before", () => {
    expect(schedulerTransition("CANCELLING", { kind: "forceCancel", quietUntil: NOW + 1 }, NOW)).toEqual({
      kind: "refused",
      refusal: "TOO_EARLY",
    });
    expect(schedulerTransition("CANCELLING", { kind: "forceCancel", quietUntil: NOW }, NOW)).toMatchObject({
      kind: "applied",
      to: "CANCELLED",
      event: "REQUEST_CANCELLED",
      changes: { state: "CANCELLED", cause: "SCHEDULER_CANCEL", processEndTime: NOW, completedTime: NOW },
    });
  });

  it("register re-arms any state but a terminal one; resumed needs PAUSED, except for a new request", () => {
    for (const s of STATE_NAMES) {
      const out = schedulerTransition(s, { kind: "register", resumed: false }, NOW);
      expect(out.kind).toBe(isTerminal(s) ? "refused" : "applied");
    }
    expect(schedulerTransition("RUNNING", { kind: "register", resumed: true }, NOW)).toEqual({
      kind: "refused",
      refusal: "NOT_PAUSED",
    });
    expect(schedulerTransition("PAUSED", { kind: "register", resumed: true }, NOW)).toMatchObject({
      to: "RUNNING",
      changes: { state: "RUNNING", cause: "SCHEDULER_DISPATCH", isTimedOut: null, processStartTime: NOW },
    });
    expect(schedulerTransition(null, { kind: "register", resumed: true }, NOW)).toMatchObject({ kind: "applied" });
  });

  it("a timeout marks the states that take callbacks (policy mark) or ends them in ERROR (policy error)", () => {
    for (const s of STATE_NAMES) {
      const out = schedulerTransition(s, { kind: "timeout", policy: "mark", requestTimeout: 5 }, NOW);
      if (!(TIMEOUT_STATES as readonly string[]).includes(s)) expect(out).toEqual({ kind: "dropped" });
      else expect(out).toMatchObject({ to: s, event: "REQUEST_TIMED_OUT", changes: { isTimedOut: "true" } });
    }
    expect(schedulerTransition("RUNNING", { kind: "timeout", policy: "error", requestTimeout: 5 }, NOW)).toMatchObject({
      to: "ERROR",
      changes: {
        state: "ERROR",
        errorType: "TIMEOUT",
        cause: "PROCESS_ERROR",
        errorWarningMessage: "no callback or check-in within requestTimeout (5 min)",
        processEndTime: NOW,
      },
    });
  });
});
