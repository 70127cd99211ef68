import type { RequestDetailsField } from "@ess/contract";
import { isTerminal, type RequestState } from "@ess/domain";
import type { StoredRequest } from "@ess/store";
import type { Context } from "hono";
import type { AppEnv } from "./context.js";

const iso = (ms: string | undefined): string | null => (ms ? new Date(Number(ms)).toISOString() : null);

const CANCELLABLE: ReadonlySet<string> = new Set(["WAIT", "READY", "BLOCKED", "HOLD", "RUNNING", "COMPLETED"]);

/** A readable sentence for the state, with the reason when the request did not succeed. */
export function describeState(f: Record<string, string>): string {
  const state = f.state as RequestState;
  const why = f.errorWarningMessage ? `: ${f.errorWarningMessage}` : "";
  switch (state) {
    case "RUNNING":
      return f.isTimedOut === "true" ? "The request is running and has timed out." : "The request is running.";
    case "CANCELLING":
      return "Cancellation was requested; waiting for the job to acknowledge it.";
    case "SUCCEEDED":
      return "The request completed successfully.";
    case "WARNING":
      return `The request completed with a warning${why}.`;
    case "ERROR":
      return `The request ended in ${f.errorType ?? "SYSTEM"} error${why}.`;
    case "ERROR_AUTO_RETRY":
      return `The request failed and will be retried (attempt ${f.retriedCount ?? 0} of ${f.maxRetries ?? 0})${why}.`;
    case "ERROR_MANUAL_RECOVERY":
      return "The job suspended itself; the request needs an operator to recover it.";
    case "PAUSED":
      return "The request is paused.";
    case "CANCELLED":
      return "The request was cancelled.";
    default:
      return `The request is ${state}.`;
  }
}

/**
 * The absolute URL of a request's ESS resource, for `Location` and `links[].href`: on the configured
 * public base URL when there is one (a proxy in front, or a client-chosen Host must not steer
 * clients elsewhere), else on the URL the request came in on.
 */
export function requestHref(c: Context<AppEnv>, requestId: string): string {
  return publicHref(c, `/ess/rest/scheduler/v1/requests/${requestId}`);
}

/** The absolute URL of a path of this gateway (path and query), on the public base URL when configured. */
export function publicHref(c: Context<AppEnv>, path: string): string {
  const base = c.get("deps").publicBaseUrl;
  return base === undefined ? new URL(path, c.req.url).href : `${base.replace(/\/+$/, "")}${path}`;
}

/** Links that apply in the current state (ESS's rel names). */
function links(base: string, f: Record<string, string>) {
  const out = [{ rel: "self", href: base }];
  if (CANCELLABLE.has(f.state ?? "")) out.push({ rel: "cancel", href: `${base}/cancel` });
  if (f.state === "CANCELLING") out.push({ rel: "forceCancel", href: `${base}/forceCancel` });
  if (f.state === "RUNNING" || f.state === "CANCELLING") {
    out.push({ rel: "executionStatus", href: `${base}/executionStatus` });
  }
  return out;
}

function historyEntry(h: Record<string, unknown>) {
  const out: Record<string, unknown> = { ...h };
  for (const k of ["acceptedAt", "appliedAt"]) {
    if (typeof h[k] === "number") out[k] = new Date(h[k] as number).toISOString();
  }
  return out;
}

/** requestParameters as stored (JSON), or null. */
function parameters(raw: string | undefined): unknown {
  if (raw === undefined) return null;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return null;
  }
}

/**
 * GET /requests/{id} and the items of GET /requests: ESS field names, times as ISO 8601 UTC with ms,
 * never the handle. `select` keeps only those fields (`fields`/`excludeFields`); history is read only
 * when it is wanted. Serialised by hand so that requestId stays an exact JSON integer past 2^53.
 */
export function requestDetailsJson(
  requestId: string,
  stored: StoredRequest,
  selfHref: string,
  now = Date.now(),
  select: ReadonlySet<RequestDetailsField> | null = null,
): string {
  const f = stored.fields;
  const start = f.processStartTime ? Number(f.processStartTime) : null;
  const end = f.processEndTime ? Number(f.processEndTime) : null;
  const state = f.state as RequestState;
  const details = {
    state,
    stateDescription: describeState(f),
    stateChangeTime: iso(f.stateChangeTime),
    isAsynchronous: true,
    execution: Number(f.execution ?? 1),
    retriedCount: Number(f.retriedCount ?? 0),
    maxRetries: Number(f.maxRetries ?? 0),
    requestTimeout: f.requestTimeout ? Number(f.requestTimeout) : null,
    errorType: f.errorType ?? null,
    cause: f.cause ?? null,
    errorWarningMessage: f.errorWarningMessage ?? null,
    errorWarningTime: iso(f.errorWarningTime),
    isTimedOut: f.isTimedOut === "true",
    isCancellable: CANCELLABLE.has(state),
    isForceCancelAllowed: state === "CANCELLING",
    // ESS's hold and schedules have no meaning for an asynchronous execution registered here
    isHoldable: false,
    schedule: null,
    submissionTime: iso(f.registeredAt),
    processStartTime: iso(f.processStartTime),
    processEndTime: iso(f.processEndTime),
    completedTime: iso(f.completedTime),
    elapsedTime: start === null ? null : (end ?? (isTerminal(state) ? start : now)) - start,
    pausedState: f.pausedState ?? null,
    lastCheckInTime: iso(f.lastCheckInTime),
    jobDefinitionId: f.jobDefinitionId ?? null,
    application: f.application ?? null,
    submitter: f.submitter ?? null,
    description: f.description ?? null,
    priority: f.priority === undefined ? null : Number(f.priority),
    requestType: f.requestType ?? null,
    requestParameters: parameters(f.requestParameters),
    links: links(selfHref, f),
    history: stored.history.map(historyEntry),
  };
  if (!select) return `{"requestId":${requestId},${JSON.stringify(details).slice(1)}`;
  const kept: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(details)) if (select.has(k as RequestDetailsField)) kept[k] = v;
  const rest = JSON.stringify(kept).slice(1);
  if (!select.has("requestId")) return `{${rest}`;
  return rest === "}" ? `{"requestId":${requestId}}` : `{"requestId":${requestId},${rest}`;
}
