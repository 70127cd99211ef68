import { EssError } from "@ess/domain";

/**
 * Every code a script replies with as its first element, in one enum: one number means one thing in
 * every script. The loader injects it into each script as the Lua table CODE (`--@include codes`),
 * and `decodeReply` is the one place that turns a code into a result or an EssError.
 * Positive: the script did its work. Negative: it refused, and changed nothing.
 */
export const REPLY = {
  /** admit: seq assigned, the gateway must enqueue it */
  ADMITTED: 1,
  /** admit: repeat of the closing callback or of an answered Idempotency-Key: answer 200, enqueue nothing */
  REPEAT: 2,
  /** admit: repeat of a call whose gateway did not finish it: enqueue it again under its first seq */
  RESUMED: 3,
  /** register: a new request */
  CREATED: 4,
  /** register: an existing request re-armed under a new handle */
  REARMED: 5,
  /** cancel/forceCancel: now CANCELLED */
  CANCELLED: 6,
  /** cancel: now CANCELLING (the job is asked to stop) */
  CANCELLING: 7,
  /** sweepTimeouts: marked (or ended) as timed out */
  TIMED_OUT: 8,
  /** sweepTimeouts: a callback or check-in came since; re-scored to its new due time */
  RESCHEDULED: 9,
  /** sweepTimeouts: gone, ended or no longer taking callbacks; left the deadline set */
  DROPPED: 10,
  /** sweepTimeouts: no longer due (another sweeper handled it first): nothing done */
  NOT_DUE: 11,
  /** subscribe: the webhook subscription was added */
  SUBSCRIBED: 12,
  /** subscribe: the URL was subscribed already: nothing changed */
  ALREADY_SUBSCRIBED: 13,

  NOT_FOUND: -1,
  STALE_HANDLE: -2,
  /** the request is in a state that takes no callbacks (the state is in the reply) */
  NOT_ACCEPTING: -3,
  IDEMPOTENCY_REUSED: -4,
  IDEMPOTENCY_IN_FLIGHT: -5,
  /** register: the request has ended (the state is in the reply) */
  ALREADY_TERMINAL: -6,
  /** register with resumed=true: the request is not PAUSED (the state is in the reply) */
  NOT_PAUSED: -7,
  /** cancel/forceCancel: not possible in the request's state (the state is in the reply) */
  UNSUPPORTED_STATE: -8,
  /** forceCancel: the quiet period has not passed (ms to go in the reply) */
  TOO_EARLY: -9,
} as const;

export type ReplyName = keyof typeof REPLY;
/** The names of the codes that mean refusal (negative). */
export type RefusalReply =
  | "NOT_FOUND"
  | "STALE_HANDLE"
  | "NOT_ACCEPTING"
  | "IDEMPOTENCY_REUSED"
  | "IDEMPOTENCY_IN_FLIGHT"
  | "ALREADY_TERMINAL"
  | "NOT_PAUSED"
  | "UNSUPPORTED_STATE"
  | "TOO_EARLY";
/** The names of the codes that mean success (positive). */
export type SuccessReply = Exclude<ReplyName, RefusalReply>;

const NAMES = new Map<number, ReplyName>(Object.entries(REPLY).map(([name, code]) => [code, name as ReplyName]));

/** What a refusal's message needs: the request, the operation, and the reply's detail (a state or ms). */
export interface ReplyContext {
  requestId: string;
  /** the operation, in messages ("cancel", "forceCancel") */
  op?: string;
  /** forceCancel's quiet period (ms), in its message */
  quietMs?: number;
}

/** Where in its reply a refusal carries its detail (the request's state, or ms to wait). */
const DETAIL_AT: Partial<Record<RefusalReply, number>> = {
  NOT_ACCEPTING: 1, // admit: { code, state, 0, 0 }
  ALREADY_TERMINAL: 2, // register: { code, 0, state, false }
  NOT_PAUSED: 2,
  UNSUPPORTED_STATE: 1, // cancel: { code, state, 0 }
  TOO_EARLY: 2, // cancel: { code, state, ms }
};

/**
 * Decodes a script's reply (code first): the name of a success code, or throws the EssError of a
 * refusal, its message built from `ctx` and the detail the reply carries.
 */
export function decodeReply(reply: readonly unknown[], ctx: ReplyContext): SuccessReply {
  const code = reply[0];
  const name = NAMES.get(Number(code));
  const at = name === undefined ? undefined : DETAIL_AT[name as RefusalReply];
  const detail = at === undefined ? undefined : reply[at];
  const { requestId } = ctx;
  switch (name) {
    case undefined:
      throw new Error(`script replied with unknown code ${String(code)}`);
    case "NOT_FOUND":
      throw new EssError("REQUEST_NOT_FOUND", `request ${requestId} is not registered`);
    case "STALE_HANDLE":
      throw new EssError("STALE_HANDLE", `requestHandle is not the handle of request ${requestId}'s current execution`);
    case "NOT_ACCEPTING":
      throw new EssError(
        "NOT_ACCEPTING_CALLBACKS",
        `request ${requestId} is ${String(detail)}, a state that takes no callbacks`,
      );
    case "IDEMPOTENCY_REUSED":
      throw new EssError(
        "IDEMPOTENCY_KEY_REUSED",
        "Idempotency-Key was already used with a different status, requestHandle or statusMessage",
      );
    case "IDEMPOTENCY_IN_FLIGHT":
      throw new EssError(
        "IDEMPOTENCY_KEY_IN_FLIGHT",
        "a call with this Idempotency-Key is still being processed; retry shortly",
        { retryAfter: 1 },
      );
    case "ALREADY_TERMINAL":
      throw new EssError(
        "ALREADY_TERMINAL",
        `request ${requestId} has ended (${String(detail)}) and cannot be registered again`,
      );
    case "NOT_PAUSED":
      throw new EssError(
        "UNSUPPORTED_STATE",
        `resumed=true needs a PAUSED request; request ${requestId} is ${String(detail)}`,
      );
    case "UNSUPPORTED_STATE":
      throw new EssError(
        "UNSUPPORTED_STATE",
        `${ctx.op ?? "the operation"} is not possible while request ${requestId} is ${String(detail)}`,
      );
    case "TOO_EARLY": {
      const seconds = Math.ceil(Number(detail) / 1000);
      throw new EssError(
        "FORCE_CANCEL_TOO_EARLY",
        `forceCancel is allowed once request ${requestId} has been quiet for ${Math.ceil((ctx.quietMs ?? 0) / 1000)} s since CANCELLING began or its last check-in; ${seconds} s to go`,
      );
    }
    default:
      return name as SuccessReply;
  }
}
