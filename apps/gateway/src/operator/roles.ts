import type { Principal } from "../auth/authenticator.js";

/**
 * The operator console's three roles. They are derived from a credential's roles (AUTH_USERS /
 * AUTH_TOKENS), never stored apart:
 *   admin               → admin     (everything, bulk actions and purges included)
 *   operator, scheduler → operator  (single actions: cancel, forceCancel, re-arm, replay; a scheduler
 *                                    credential can already cancel and re-register over the ESS API,
 *                                    so the console gives it no power it lacks)
 *   viewer              → viewer    (reads only)
 *   job alone           → none      (job callers never reach the console)
 * The highest role a credential maps to wins.
 */
export type ConsoleRole = "viewer" | "operator" | "admin";

/** What the console lets a role do. */
export type ConsoleAction =
  /** read requests, dead letters, bulk actions and the audit log */
  | "read"
  /** cancel, forceCancel, re-arm a request; replay its dead letters */
  | "requestAction"
  /** replay one dead letter */
  | "replayDeadLetter"
  /** purge one dead letter */
  | "purgeDeadLetter"
  /** create, confirm and abort bulk replays and purges */
  | "bulk";

const RANK: Record<ConsoleRole, number> = { viewer: 0, operator: 1, admin: 2 };

/** The least role each action needs. */
const NEEDS: Record<ConsoleAction, ConsoleRole> = {
  read: "viewer",
  requestAction: "operator",
  replayDeadLetter: "operator",
  purgeDeadLetter: "admin",
  bulk: "admin",
};

/** The console role of a principal (see ConsoleRole), or undefined when it has none. */
export function consoleRole(principal: Principal | undefined): ConsoleRole | undefined {
  if (!principal) return undefined;
  const r = principal.roles;
  if (r.has("admin")) return "admin";
  if (r.has("operator") || r.has("scheduler")) return "operator";
  if (r.has("viewer")) return "viewer";
  return undefined;
}

/** True when `role` may perform `action` (a higher role may do what a lower one may). */
export function can(role: ConsoleRole | undefined, action: ConsoleAction): boolean {
  return role !== undefined && RANK[role] >= RANK[NEEDS[action]];
}

/** The least console role an action needs (for messages). */
export function roleNeeded(action: ConsoleAction): ConsoleRole {
  return NEEDS[action];
}
