/**
 * Request states, in the order and with the numeric codes of the ESS `State` enum
 * (WAIT=1 … ERROR_MANUAL_RECOVERY=19).
 */
export const STATES = [
  { code: 1, name: "WAIT", terminal: false },
  { code: 2, name: "READY", terminal: false },
  { code: 3, name: "RUNNING", terminal: false },
  { code: 4, name: "COMPLETED", terminal: false },
  { code: 5, name: "BLOCKED", terminal: false },
  { code: 6, name: "HOLD", terminal: false },
  { code: 7, name: "CANCELLING", terminal: false },
  { code: 8, name: "EXPIRED", terminal: true },
  { code: 9, name: "CANCELLED", terminal: true },
  { code: 10, name: "ERROR", terminal: true },
  { code: 11, name: "WARNING", terminal: true },
  { code: 12, name: "SUCCEEDED", terminal: true },
  { code: 13, name: "PAUSED", terminal: false },
  { code: 14, name: "PENDING_VALIDATION", terminal: false },
  { code: 15, name: "VALIDATION_FAILED", terminal: true },
  { code: 16, name: "SCHEDULE_ENDED", terminal: true },
  { code: 17, name: "FINISHED", terminal: true },
  { code: 18, name: "ERROR_AUTO_RETRY", terminal: false },
  { code: 19, name: "ERROR_MANUAL_RECOVERY", terminal: false },
] as const;

export type RequestState = (typeof STATES)[number]["name"];

export const STATE_NAMES: readonly RequestState[] = STATES.map((s) => s.name);

const byName = new Map<string, (typeof STATES)[number]>(STATES.map((s) => [s.name, s]));

/** True when `s` names a request state. */
export function isRequestState(s: string): s is RequestState {
  return byName.has(s);
}

/** True for states a request never leaves (SUCCEEDED, ERROR, CANCELLED, ...). */
export function isTerminal(s: RequestState): boolean {
  return byName.get(s)?.terminal === true;
}

/** The ESS numeric code of a state. */
export function stateCode(s: RequestState): number {
  const entry = byName.get(s);
  if (!entry) throw new Error(`unknown state ${s}`);
  return entry.code;
}

/** The only states in which a job's callbacks are accepted (ess-semantics §3). */
export const CALLBACK_STATES = ["RUNNING", "CANCELLING"] as const;
export type CallbackState = (typeof CALLBACK_STATES)[number];

/** True when the request takes executionStatus callbacks in state `s`. */
export function acceptsCallbacks(s: string): s is CallbackState {
  return s === "RUNNING" || s === "CANCELLING";
}
