import { formatExecutionContext } from "@ess/contract";
import { CANCEL_RULES, EssError, OPERATOR_REARM_STATES, type RequestState } from "@ess/domain";
import {
  type AuditEntry,
  AuditLog,
  type AuditOutcome,
  type AuditQuery,
  type BulkAction,
  type BulkKind,
  type DeadLetterFilter,
  SchedulerStore,
} from "@ess/store";
import type { Context } from "hono";
import type { Principal } from "../auth/authenticator.js";
import type { AppEnv, GatewayDeps } from "../context.js";
import { mintHandle } from "../routes/requests.js";
import { DEFAULT_FORCE_CANCEL_QUIET_MS } from "../routes/scheduler.js";
import { type ConsoleAction, type ConsoleRole, can, consoleRole, roleNeeded } from "./roles.js";

/** Who acts: the credential's name and the console role it acts with. */
export interface Operator {
  actor: string;
  role: ConsoleRole;
}

/** The operator of a principal, or undefined when its credential has no console role. */
export function operatorOf(principal: Principal | undefined): Operator | undefined {
  const role = consoleRole(principal);
  return principal && role ? { actor: principal.name, role } : undefined;
}

/** The caller of a route as an operator; 403 when its credential has no console role. */
export function operatorFrom(c: Context<AppEnv>): Operator {
  const op = operatorOf(c.get("principal"));
  if (!op) throw new EssError("FORBIDDEN", "the credential has no console role");
  return op;
}

/** The actions the console offers on one request. */
export const REQUEST_ACTIONS = ["cancel", "forceCancel", "rearm", "replayDeadLetters"] as const;
export type RequestAction = (typeof REQUEST_ACTIONS)[number];

/** One request action in the current state: valid or not, and why not. */
export interface RequestActionState {
  action: RequestAction;
  valid: boolean;
  /** why it is not valid now */
  why?: string;
  /** forceCancel in CANCELLING: when it becomes allowed (ms) */
  allowedAt?: number;
  /** replayDeadLetters: how many dead letters the request has */
  count?: number;
}

/** What an action on a request did. */
export interface RequestActionResult {
  requestId: string;
  action: RequestAction;
  /** the state before and after (equal for a replay of dead letters) */
  from: RequestState;
  to: RequestState;
  /** the audit entry's id */
  auditId: string;
  /** rearm: the new execution, its handle (the job needs it to call back) and context */
  execution?: number;
  requestHandle?: string;
  requestExecutionContext?: string;
  /** rearm of a PAUSED request: the state the job saved */
  pausedState?: string | null;
  /** replayDeadLetters: how many were replayed, and how many were gone meanwhile */
  replayed?: number;
  notFound?: number;
}

/** What an action on one dead letter did. */
export interface DeadLetterActionResult {
  id: string;
  result: "replayed" | "purged";
  auditId: string;
}

/** A reason is required for every action, and bounded. */
export const MAX_REASON_LENGTH = 1000;
/** Dead letters one "replay the request's dead letters" action replays at most. */
export const MAX_REQUEST_DEAD_LETTERS = 1000;

/** Refusals that mean "not in the current state": answered 409 (ACTION_CONFLICT). */
const CONFLICTS = new Set(["UNSUPPORTED_STATE", "FORCE_CANCEL_TOO_EARLY", "ALREADY_TERMINAL", "ACTION_CONFLICT"]);

/** What a piece of work reports for its audit entry. */
interface Done<T> {
  result: T;
  count?: number;
  filter?: DeadLetterFilter;
  detail?: string;
  /** the target when only the work knows it (a bulk action's id) */
  target?: string;
}

/**
 * The operator console's service layer, shared by the admin API and the console pages: every
 * action checks the operator's role, requires a reason, refuses what the current state does not
 * allow (409), and records an audit entry with its outcome (refusals included). Actions on a request
 * also leave an `operator` entry (action, actor, reason) in the request's history, written by the
 * same script as the move itself.
 */
export class OperatorActions {
  readonly audit: AuditLog;
  private readonly scheduler: SchedulerStore;

  constructor(private readonly deps: GatewayDeps) {
    this.audit = deps.audit ?? new AuditLog(deps.store.redis, deps.store.keys);
    this.scheduler = new SchedulerStore(deps.store);
  }

  private get quietMs(): number {
    return this.deps.scheduler?.forceCancelQuietMs ?? DEFAULT_FORCE_CANCEL_QUIET_MS;
  }

  /** The actions valid on a request in its current state (empty when it is not registered). */
  async validActions(requestId: string, now = Date.now()): Promise<RequestAction[]> {
    return (await this.actionStates(requestId, now)).filter((a) => a.valid).map((a) => a.action);
  }

  /**
   * Every request action with whether it is valid now and, when not, why (for a console that shows
   * an action disabled with its reason); forceCancel in CANCELLING also says when it becomes allowed.
   */
  async actionStates(requestId: string, now = Date.now()): Promise<RequestActionState[]> {
    const stored = await this.deps.store.read(requestId);
    const deadLetters = await this.deps.deadLetters.countMatching({ requestId });
    const state = stored?.fields.state as RequestState | undefined;
    const out: RequestActionState[] = [];
    const missing = `request ${requestId} is not registered`;
    out.push(
      !state
        ? { action: "cancel", valid: false, why: missing }
        : CANCEL_RULES[state]
          ? { action: "cancel", valid: true }
          : { action: "cancel", valid: false, why: `cancel is not possible while the request is ${state}` },
    );
    if (state === "CANCELLING") {
      const f = stored?.fields ?? {};
      const allowedAt = Math.max(Number(f.cancellingSince ?? 0), Number(f.lastCheckInTime ?? 0)) + this.quietMs;
      out.push(
        allowedAt <= now
          ? { action: "forceCancel", valid: true }
          : {
              action: "forceCancel",
              valid: false,
              why: "the job has not been quiet long enough since CANCELLING began or its last check-in",
              allowedAt,
            },
      );
    } else {
      out.push({ action: "forceCancel", valid: false, why: state ? "only a CANCELLING request" : missing });
    }
    out.push(
      state && OPERATOR_REARM_STATES.includes(state)
        ? { action: "rearm", valid: true }
        : { action: "rearm", valid: false, why: state ? `only ${OPERATOR_REARM_STATES.join(" or ")}` : missing },
    );
    out.push(
      deadLetters > 0
        ? { action: "replayDeadLetters", valid: true, count: deadLetters }
        : { action: "replayDeadLetters", valid: false, why: "the request has no dead letters" },
    );
    return out;
  }

  /** ESS cancel, from the console. */
  cancel(op: Operator, requestId: string, reason: string): Promise<RequestActionResult> {
    return this.onRequest(op, "cancel", requestId, reason, async (note) => {
      const r = await this.scheduler.cancel(requestId, Date.now(), note);
      return { from: r.from, to: r.to };
    });
  }

  /** ESS forceCancel (once the quiet period has passed), from the console. */
  forceCancel(op: Operator, requestId: string, reason: string): Promise<RequestActionResult> {
    return this.onRequest(op, "forceCancel", requestId, reason, async (note) => {
      const r = await this.scheduler.forceCancel(requestId, this.quietMs, Date.now(), note);
      return { from: r.from, to: r.to };
    });
  }

  /**
   * Operator recovery: re-registers a request that waits for a person (OPERATOR_REARM_STATES) under
   * a new handle (a PAUSED one is resumed with its pausedState). The answer carries the handle, since
   * the job needs it to call back.
   */
  rearm(op: Operator, requestId: string, reason: string): Promise<RequestActionResult> {
    return this.onRequest(op, "rearm", requestId, reason, async (note) => {
      const before = await this.deps.store.state(requestId);
      const handle = mintHandle();
      const r = await this.deps.store.register(requestId, handle, { operator: note });
      return {
        from: (before ?? "RUNNING") as RequestState,
        to: "RUNNING" as RequestState,
        execution: r.execution,
        requestHandle: handle,
        requestExecutionContext: formatExecutionContext(requestId, handle),
        pausedState: r.pausedState,
      };
    });
  }

  /** Replays every dead letter of a request (up to MAX_REQUEST_DEAD_LETTERS), oldest first. */
  replayRequestDeadLetters(op: Operator, requestId: string, reason: string): Promise<RequestActionResult> {
    return this.onRequest(op, "replayDeadLetters", requestId, reason, async (note) => {
      const { deadLetters } = this.deps;
      const page = await deadLetters.list({ requestId }, { limit: MAX_REQUEST_DEAD_LETTERS });
      if (page.items.length === 0) {
        throw new EssError("ACTION_CONFLICT", `request ${requestId} has no dead letters to replay`);
      }
      await this.scheduler.operatorNote(requestId, note);
      let replayed = 0;
      let notFound = 0;
      for (const e of page.items) {
        if ((await deadLetters.replay(e.id)) === "replayed") replayed++;
        else notFound++;
      }
      const state = ((await this.deps.store.state(requestId)) ?? "RUNNING") as RequestState;
      return { from: state, to: state, replayed, notFound, count: replayed };
    });
  }

  /** Replays one dead letter (and notes it in its request's history, when the request is still there). */
  async replayDeadLetter(op: Operator, id: string, reason: string): Promise<DeadLetterActionResult> {
    const [r, auditId] = await this.run(
      op,
      "replayDeadLetter",
      "deadLetter.replay",
      `dead-letter/${id}`,
      reason,
      async () => {
        const entry = await this.deps.deadLetters.get(id);
        if (!entry) throw new EssError("ROUTE_NOT_FOUND", `no dead letter ${id.slice(0, 80)}`);
        if ((await this.deps.deadLetters.replay(id)) === "not-found") {
          throw new EssError("ROUTE_NOT_FOUND", `no dead letter ${id.slice(0, 80)}`);
        }
        if (entry.requestId) {
          await this.scheduler
            .operatorNote(entry.requestId, { action: "replayDeadLetter", actor: op.actor, reason: reason.trim() })
            .catch(() => {});
        }
        return { result: { id, result: "replayed" as const }, count: 1 };
      },
    );
    return { ...r, auditId };
  }

  /** Removes one dead letter for good (admin). */
  async purgeDeadLetter(op: Operator, id: string, reason: string): Promise<DeadLetterActionResult> {
    const [r, auditId] = await this.run(
      op,
      "purgeDeadLetter",
      "deadLetter.purge",
      `dead-letter/${id}`,
      reason,
      async () => {
        if (!(await this.deps.deadLetters.remove(id))) {
          throw new EssError("ROUTE_NOT_FOUND", `no dead letter ${id.slice(0, 80)}`);
        }
        return { result: { id, result: "purged" as const }, count: 1 };
      },
    );
    return { ...r, auditId };
  }

  /**
   * Step 1 of a bulk action (admin): the server snapshots the filter (bounded by now) and counts what
   * it matches; the action waits in state `estimated` for the typed confirmation.
   */
  async createBulk(op: Operator, kind: BulkKind, filter: DeadLetterFilter): Promise<BulkAction> {
    return this.result(op, "bulk", `bulk.create.${kind}`, "bulk/new", "", async () => {
      if (kind !== "replay" && kind !== "purge") throw new EssError("INVALID_BODY", "kind must be replay or purge");
      const partitions = this.deps.store.keys.partitions;
      if (filter.partition !== undefined && (filter.partition < 0 || filter.partition >= partitions)) {
        throw new EssError("INVALID_BODY", `partition must be below ${partitions}`);
      }
      const action = await this.deps.deadLetters.bulk.create(kind, filter, op.actor);
      return { result: action, count: action.estimate, filter: action.filter, target: `bulk/${action.id}` };
    });
  }

  /**
   * Step 2 (admin): the operator types the count; unless it is the estimate the action is refused.
   * The matching ids are snapshotted and a worker replays or purges exactly those.
   */
  async confirmBulk(op: Operator, id: string, typedCount: number, reason: string): Promise<BulkAction> {
    return this.result(op, "bulk", "bulk.confirm", `bulk/${id}`, reason, async () => {
      if (!Number.isSafeInteger(typedCount) || typedCount < 0) {
        throw new EssError("INVALID_BODY", "count must be the number of dead letters the action covers");
      }
      const action = await this.deps.deadLetters.bulk.confirm(
        id,
        typedCount,
        { actor: op.actor, reason: reason.trim() },
        this.deps.queues.ops(),
        this.deps.replayRate,
      );
      return { result: action, count: action.estimate, filter: action.filter };
    });
  }

  /** Stops a bulk action (admin): at once when not yet confirmed, else after the worker's current batch. */
  abortBulk(op: Operator, id: string, reason: string): Promise<BulkAction> {
    return this.result(op, "bulk", "bulk.abort", `bulk/${id}`, reason, async () => {
      const action = await this.deps.deadLetters.bulk.abort(id, { actor: op.actor, reason: reason.trim() });
      return { result: action, count: action.processed, filter: action.filter };
    });
  }

  /** One bulk action, or undefined. */
  async getBulk(id: string): Promise<BulkAction | undefined> {
    return this.deps.deadLetters.bulk.get(id);
  }

  /** The retained bulk actions, newest first. */
  listBulk(): Promise<BulkAction[]> {
    return this.deps.deadLetters.bulk.list();
  }

  /** The audit log, newest first. */
  listAudit(q: AuditQuery = {}): Promise<{ items: AuditEntry[]; next?: string }> {
    return this.audit.list(q);
  }

  /**
   * Audits a call of the older admin API (dead-letter replay and purge routes, which take no reason):
   * the actor from the principal, reason "" when none was given.
   */
  recordAdminCall(
    principal: Principal | undefined,
    action: string,
    target: string,
    outcome: AuditOutcome,
    extra: { reason?: string; count?: number; filter?: DeadLetterFilter; detail?: string } = {},
  ): Promise<AuditEntry> {
    return this.audit.record({
      actor: principal?.name ?? "anonymous",
      role: consoleRole(principal) ?? "none",
      action,
      target,
      reason: extra.reason ?? "",
      outcome,
      ...(extra.count === undefined ? {} : { count: extra.count }),
      ...(extra.filter === undefined ? {} : { filter: extra.filter }),
      ...(extra.detail === undefined ? {} : { detail: extra.detail }),
    });
  }

  /** An action on a request: role, reason, the move (with its history note), the audit entry. */
  private async onRequest(
    op: Operator,
    action: RequestAction,
    requestId: string,
    reason: string,
    work: (note: {
      action: string;
      actor: string;
      reason: string;
    }) => Promise<Omit<RequestActionResult, "requestId" | "action" | "auditId"> & { count?: number }>,
  ): Promise<RequestActionResult> {
    const [out, auditId] = await this.run(
      op,
      "requestAction",
      `request.${action}`,
      `request/${requestId}`,
      reason,
      async () => {
        const { count, ...r } = await work({ action, actor: op.actor, reason: reason.trim() });
        return {
          result: { requestId, action, ...r, auditId: "" } as RequestActionResult,
          detail: r.from === r.to ? r.to : `${r.from} → ${r.to}`,
          ...(count === undefined ? {} : { count }),
        };
      },
    );
    return { ...out, auditId };
  }

  /** run() without the audit id. */
  private async result<T>(...args: Parameters<OperatorActions["run"]>): Promise<T> {
    return (await this.run(...args))[0] as T;
  }

  /**
   * Runs one audited action: checks the role (403, audited) and the reason (400, not audited: nothing
   * was attempted), runs the work, and records the outcome: succeeded, refused (403, 404, 409, bad input) or
   * failed (anything else). State refusals are answered 409.
   */
  private async run<T>(
    op: Operator,
    need: ConsoleAction,
    action: string,
    target: string,
    reason: string,
    work: () => Promise<Done<T>>,
  ): Promise<[T, string]> {
    const why = typeof reason === "string" ? reason.trim() : "";
    const base = { actor: op.actor, role: op.role, action, target, reason: why };
    if (!can(op.role, need)) {
      const detail = `'${op.actor}' (${op.role}) may not ${action}: it needs the ${roleNeeded(need)} role`;
      await this.audit.record({ ...base, outcome: "refused", detail });
      throw new EssError("FORBIDDEN", detail);
    }
    // bulk creation takes no reason (the confirmation does); every other action requires one
    if (!action.startsWith("bulk.create")) {
      if (why === "") throw new EssError("INVALID_BODY", "reason is required: say why you take this action");
      if (why.length > MAX_REASON_LENGTH) {
        throw new EssError("INVALID_BODY", `reason is longer than ${MAX_REASON_LENGTH} characters`);
      }
    }
    let done: Done<T>;
    try {
      done = await work();
    } catch (err) {
      if (!(err instanceof EssError)) {
        await this.audit
          .record({ ...base, outcome: "failed", detail: err instanceof Error ? err.message.slice(0, 300) : "error" })
          .catch(() => {});
        throw err;
      }
      const conflict = CONFLICTS.has(err.code);
      await this.audit.record({ ...base, outcome: "refused", detail: err.detail });
      throw conflict && err.code !== "ACTION_CONFLICT" ? new EssError("ACTION_CONFLICT", err.detail) : err;
    }
    const entry = await this.audit.record({
      ...base,
      target: done.target ?? target,
      outcome: "succeeded",
      ...(done.count === undefined ? {} : { count: done.count }),
      ...(done.filter === undefined ? {} : { filter: done.filter }),
      ...(done.detail === undefined ? {} : { detail: done.detail }),
    });
    return [done.result, entry.id];
  }
}

const CACHE = new WeakMap<GatewayDeps, OperatorActions>();

/** The service layer over a gateway's dependencies (one per deps object). */
export function operatorActions(deps: GatewayDeps): OperatorActions {
  let actions = CACHE.get(deps);
  if (!actions) {
    actions = new OperatorActions(deps);
    CACHE.set(deps, actions);
  }
  return actions;
}
