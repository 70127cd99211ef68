import { EssError, isRequestState, isTerminal, type RequestState, STATE_NAMES } from "@ess/domain";
import { z } from "zod";

/** The time fields a query can range over (ms since the epoch, bounds inclusive). */
export const QUERY_TIME_FIELDS = ["submissionTime", "stateChangeTime", "completedTime", "lastCheckInTime"] as const;
export type QueryTimeField = (typeof QUERY_TIME_FIELDS)[number];

/** The fields a query can order by: each is the time order of an index. */
export const QUERY_ORDER_FIELDS = ["submissionTime", "stateChangeTime"] as const;
export type QueryOrderField = (typeof QUERY_ORDER_FIELDS)[number];

/** The equality fields of `q` besides state. */
export const QUERY_TEXT_FIELDS = ["errorType", "jobDefinitionId", "application", "submitter", "requestType"] as const;
export type QueryTextField = (typeof QUERY_TEXT_FIELDS)[number];

/** A parsed request query: every filter ANDed; `states` is one of several. */
export interface RequestQuery {
  states?: RequestState[] | undefined;
  text: Partial<Record<QueryTextField, string>>;
  isTimedOut?: boolean | undefined;
  ranges: Partial<Record<QueryTimeField, { min?: number; max?: number }>>;
  orderBy: { field: QueryOrderField; desc: boolean };
}

/** Most items of one page, and the default. */
export const QUERY_LIMIT_MAX = 500;
export const QUERY_LIMIT_DEFAULT = 25;

const bad = (detail: string): never => {
  throw new EssError("INVALID_BODY", detail);
};

/** Parses a time value of `q`: ISO 8601 with a zone (2026-11-30T08:00:00Z) or ms since the epoch. */
function parseTime(field: string, raw: string): number {
  if (/^[0-9]{1,15}$/.test(raw)) return Number(raw);
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/.test(raw)) {
    const ms = Date.parse(raw);
    if (!Number.isNaN(ms) && ms >= 0) return ms;
  }
  return bad(`q: ${field} must be an ISO 8601 time with a zone (e.g. 2026-11-30T08:00:00Z) or ms since the epoch`);
}

/** Splits `q` at the semicolons outside single quotes; '' inside quotes is a quote. */
function clauses(q: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < q.length; i++) {
    const ch = q[i] as string;
    if (ch === "'") {
      if (quoted && q[i + 1] === "'") {
        cur += "''";
        i++;
        continue;
      }
      quoted = !quoted;
    } else if (ch === ";" && !quoted) {
      out.push(cur);
      cur = "";
      continue;
    }
    cur += ch;
  }
  if (quoted) bad("q: a quoted value is not closed");
  out.push(cur);
  return out.map((c) => c.trim()).filter((c) => c.length > 0);
}

function unquote(v: string): string {
  const t = v.trim();
  return t.length >= 2 && t.startsWith("'") && t.endsWith("'") ? t.slice(1, -1).replaceAll("''", "'") : t;
}

const CLAUSE = /^([A-Za-z]+)\s*(>=|<=|=|>|<)\s*(.*)$/s;

/**
 * Parses ESS's `q` filter, the subset this gateway supports: clauses `field op value` joined by `;`
 * (all must hold). `state=RUNNING` or `state=RUNNING,CANCELLING` (one of several);
 * `errorType`, `jobDefinitionId`, `application`, `submitter`, `requestType` with `=`;
 * `isTimedOut=true|false`; the times `submissionTime`, `stateChangeTime`, `completedTime`,
 * `lastCheckInTime` with `>=`, `>`, `<=`, `<` (`=` too). A value may be single-quoted (needed when it
 * holds `;`). Anything else is a 400 naming the clause.
 */
export function parseRequestQuery(q: string | undefined, orderBy: string | undefined): RequestQuery {
  const out: RequestQuery = { text: {}, ranges: {}, orderBy: { field: "submissionTime", desc: true } };
  for (const clause of clauses(q ?? "")) {
    const m = CLAUSE.exec(clause);
    if (!m) return bad(`q: '${clause.slice(0, 80)}' is not 'field=value' (clauses are joined by ';')`);
    const [, field = "", op = "", raw = ""] = m;
    const value = unquote(raw);
    if (value.length === 0) return bad(`q: ${field} has no value`);
    if (field === "state") {
      if (op !== "=") return bad("q: state takes '=' (several states: state=RUNNING,CANCELLING)");
      const states = value.split(",").map((s) => s.trim());
      for (const s of states) {
        if (!isRequestState(s)) return bad(`q: '${s.slice(0, 40)}' is not a state (one of ${STATE_NAMES.join(", ")})`);
      }
      // two state clauses must both hold: the intersection
      const given = new Set(states as RequestState[]);
      out.states = out.states ? out.states.filter((s) => given.has(s)) : [...given];
    } else if ((QUERY_TEXT_FIELDS as readonly string[]).includes(field)) {
      if (op !== "=") return bad(`q: ${field} takes '=' only`);
      const f = field as QueryTextField;
      if (out.text[f] !== undefined && out.text[f] !== value) return bad(`q: ${field} is given twice`);
      out.text[f] = value;
    } else if (field === "isTimedOut") {
      if (op !== "=" || (value !== "true" && value !== "false")) return bad("q: isTimedOut takes '=true' or '=false'");
      out.isTimedOut = value === "true";
    } else if ((QUERY_TIME_FIELDS as readonly string[]).includes(field)) {
      const f = field as QueryTimeField;
      const t = parseTime(field, value);
      const r = out.ranges[f] ?? {};
      out.ranges[f] = r;
      if (op === ">=" || op === "=" || op === ">") r.min = Math.max(r.min ?? 0, op === ">" ? t + 1 : t);
      if (op === "<=" || op === "=" || op === "<")
        r.max = Math.min(r.max ?? Number.MAX_SAFE_INTEGER, op === "<" ? t - 1 : t);
    } else {
      return bad(
        `q: '${field.slice(0, 40)}' cannot be queried (supported: state, ${QUERY_TEXT_FIELDS.join(", ")}, isTimedOut, ${QUERY_TIME_FIELDS.join(", ")})`,
      );
    }
  }
  if (orderBy !== undefined) {
    const m = /^([A-Za-z]+)(?::(asc|desc))?$/.exec(orderBy.trim());
    const field = m?.[1] ?? "";
    if (!m || !(QUERY_ORDER_FIELDS as readonly string[]).includes(field)) {
      return bad(`orderBy must be one of ${QUERY_ORDER_FIELDS.join(", ")}, optionally with :asc or :desc`);
    }
    out.orderBy = { field: field as QueryOrderField, desc: m[2] !== "asc" };
  } else if (out.states) {
    out.orderBy = { field: "stateChangeTime", desc: true };
  }
  if (out.orderBy.field === "stateChangeTime" && !out.states) {
    return bad("orderBy=stateChangeTime needs a state filter (q=state=...)");
  }
  return out;
}

/**
 * The range of the index time a query scans: its order field's range, and for stateChangeTime over
 * terminal states only also the completedTime range (a terminal request entered its state when it
 * completed). Undefined bounds are open.
 */
export function indexRange(q: RequestQuery): { min: number; max: number } {
  const own = q.ranges[q.orderBy.field] ?? {};
  let min = own.min ?? 0;
  let max = own.max ?? Number.MAX_SAFE_INTEGER;
  const completed = q.ranges.completedTime;
  if (q.orderBy.field === "stateChangeTime" && completed && q.states?.every((s) => isTerminal(s))) {
    min = Math.max(min, completed.min ?? 0);
    max = Math.min(max, completed.max ?? Number.MAX_SAFE_INTEGER);
  }
  return { min, max };
}

/** `fields` and `excludeFields`: ESS's field selection, on the read and the query. */
export const fieldSelectionParamsSchema = z.strictObject({
  fields: z
    .string()
    .max(2000)
    .optional()
    .meta({ description: "Comma-separated RequestDetails fields to return, and only those (fields=state)" }),
  excludeFields: z
    .string()
    .max(2000)
    .optional()
    .meta({ description: "Comma-separated RequestDetails fields to leave out; not together with fields" }),
});

/** Query string of GET /ess/rest/scheduler/v1/requests. */
export const requestQueryParamsSchema = fieldSelectionParamsSchema.extend({
  q: z
    .string()
    .max(4000)
    .optional()
    .meta({
      description:
        "ESS filter, clauses joined by ';' (all must hold): state=RUNNING or state=RUNNING,CANCELLING; " +
        "errorType, jobDefinitionId, application, submitter, requestType with '='; isTimedOut=true|false; " +
        "submissionTime, stateChangeTime, completedTime, lastCheckInTime with >=, >, <=, < or = and an ISO 8601 " +
        "time or ms since the epoch. Quote a value holding ';' in single quotes.",
    }),
  orderBy: z
    .string()
    .max(100)
    .optional()
    .meta({
      description:
        "submissionTime or stateChangeTime (needs a state filter), optionally :asc or :desc (default desc); " +
        "default stateChangeTime:desc with a state filter, else submissionTime:desc",
    }),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(QUERY_LIMIT_MAX)
    .optional()
    .meta({ description: `Items per page, 1-${QUERY_LIMIT_MAX} (default ${QUERY_LIMIT_DEFAULT})` }),
  cursor: z.string().max(1000).optional().meta({ description: "Opaque: from the previous page's next link" }),
});

/** The job's descriptive fields ESS's RequestDetails carries, as registration takes them. */
export const REQUEST_METADATA_FIELDS = [
  "jobDefinitionId",
  "application",
  "submitter",
  "description",
  "priority",
  "requestType",
  "requestParameters",
] as const;

/** The RequestDetails fields a client can select (`fields`, `excludeFields`). */
export const REQUEST_DETAILS_FIELDS = [
  "requestId",
  "state",
  "stateDescription",
  "stateChangeTime",
  "isAsynchronous",
  "execution",
  "retriedCount",
  "maxRetries",
  "requestTimeout",
  "errorType",
  "cause",
  "errorWarningMessage",
  "errorWarningTime",
  "isTimedOut",
  "isCancellable",
  "isForceCancelAllowed",
  "isHoldable",
  "schedule",
  "submissionTime",
  "processStartTime",
  "processEndTime",
  "completedTime",
  "elapsedTime",
  "pausedState",
  "lastCheckInTime",
  ...REQUEST_METADATA_FIELDS,
  "links",
  "history",
] as const;
export type RequestDetailsField = (typeof REQUEST_DETAILS_FIELDS)[number];

/**
 * ESS's field selection: `fields=a,b` keeps only those, `excludeFields=a,b` drops those; both at
 * once, or an unknown name, is a 400 naming it. Returns null when neither is given (all fields).
 */
export function parseFieldSelection(
  fields: string | undefined,
  excludeFields: string | undefined,
): ReadonlySet<RequestDetailsField> | null {
  if (fields !== undefined && excludeFields !== undefined) bad("give fields or excludeFields, not both");
  const raw = fields ?? excludeFields;
  if (raw === undefined) return null;
  const param = fields !== undefined ? "fields" : "excludeFields";
  const names = raw
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (names.length === 0) bad(`${param} names no field`);
  for (const n of names) {
    if (!(REQUEST_DETAILS_FIELDS as readonly string[]).includes(n)) {
      bad(`${param}: '${n.slice(0, 40)}' is not a RequestDetails field (one of ${REQUEST_DETAILS_FIELDS.join(", ")})`);
    }
  }
  const named = new Set(names as RequestDetailsField[]);
  return new Set(fields !== undefined ? named : REQUEST_DETAILS_FIELDS.filter((f) => !named.has(f)));
}
