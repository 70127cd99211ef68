import { toExceptionDetail } from "@ess/contract";
import { type ErrorCode, EssError } from "@ess/domain";
import { isOutOfMemory } from "@ess/store";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { AppEnv, GatewayDeps } from "./context.js";

/** The vendor media type a client may ask for; error bodies echo it when the request used it. */
export const VENDOR_JSON = "application/vnd.oracle.resource+json";

/** The challenge every 401 carries: both schemes, whichever kinds are configured. */
export const CHALLENGE = 'Basic realm="ess-gateway", charset="UTF-8", Bearer realm="ess-gateway"';

/** A SimpleExceptionDetail answer, transport-free: what Hono and the node:http callback route both send. */
export interface Problem {
  status: number;
  body: string;
  headers: Record<string, string>;
}

/** The answer of a failure code; `contentType` is the request's (an error echoes the vendor type). */
export function problemOf(
  contentType: string | undefined,
  code: ErrorCode,
  detail: string,
  extra?: { retryAfter?: number | undefined; title?: string },
): Problem {
  const body = toExceptionDetail(code, detail, extra?.title);
  const vendor = contentType?.startsWith(VENDOR_JSON) === true;
  const headers: Record<string, string> = { "content-type": vendor ? VENDOR_JSON : "application/json" };
  if (extra?.retryAfter !== undefined) headers["retry-after"] = String(extra.retryAfter);
  if (code === "PAYLOAD_TOO_LARGE") headers.connection = "close";
  if (code === "UNAUTHENTICATED") headers["www-authenticate"] = CHALLENGE;
  return { status: body.status, body: JSON.stringify(body), headers };
}

/** Answers a failure code as a SimpleExceptionDetail. */
export function problem(
  c: Context,
  code: ErrorCode,
  detail: string,
  extra?: { retryAfter?: number | undefined; title?: string },
) {
  return send(c, problemOf(c.req.header("content-type"), code, detail, extra));
}

function send(c: Context, p: Problem) {
  return c.body(p.body, p.status as ContentfulStatusCode, p.headers);
}

const UNAVAILABLE_MESSAGES = [
  "Connection is closed",
  "Stream isn't writeable",
  "Command timed out",
  "enqueue timed out",
  "LOADING",
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "Reached the max retries per request limit",
];

/** True for errors that mean Redis is unreachable or not ready (answered 503, not 500). */
export function isRedisUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === "MaxRetriesPerRequestError") return true;
  return UNAVAILABLE_MESSAGES.some((m) => err.message.includes(m));
}

/** The request an error is answered for, as errorProblem needs it. */
export interface FailedRequest {
  method: string;
  path: string;
  requestId: string | undefined;
  contentType: string | undefined;
}

/**
 * The answer of an error: ours, Hono's HTTPException, Redis outages, and the unknown (500, logged
 * through deps.logError, never shown).
 */
export function errorProblem(err: unknown, deps: GatewayDeps | undefined, req: FailedRequest): Problem {
  const ct = req.contentType;
  if (err instanceof EssError) {
    const title = err.code === "UNSUPPORTED_STATE" ? "Unsupported state for operation" : undefined;
    return problemOf(ct, err.code, err.detail, { retryAfter: err.retryAfter, ...(title ? { title } : {}) });
  }
  if (err instanceof HTTPException) {
    const status = err.status;
    const code: ErrorCode =
      status === 413
        ? "PAYLOAD_TOO_LARGE"
        : status === 404
          ? "ROUTE_NOT_FOUND"
          : status < 500
            ? "INVALID_BODY"
            : "INTERNAL";
    return problemOf(ct, code, err.message || "the request could not be processed");
  }
  if (isRedisUnavailable(err)) {
    return problemOf(ct, "UNAVAILABLE", "the scheduling store is unreachable; retry later", { retryAfter: 1 });
  }
  if (isOutOfMemory(err)) {
    // overload, not a defect: Redis refused the write before changing anything (the scripts declare
    // their flags, so a full Redis refuses a script whole); the client retries after Retry-After
    deps?.ops?.metrics?.redisOutOfMemory.inc();
    deps?.logWarn?.("Redis is full (maxmemory, noeviction): write refused, answered 503", {
      method: req.method,
      path: req.path,
      requestId: req.requestId,
    });
    return problemOf(ct, "STORE_OUT_OF_MEMORY", "the scheduling store is full; retry later", {
      retryAfter: deps?.ops?.retryAfterSeconds ?? 1,
    });
  }
  deps?.logError(err, { method: req.method, path: req.path });
  return problemOf(ct, "INTERNAL", "an unexpected error occurred; it has been logged");
}

/** The app's onError (errorProblem). */
export function handleError(err: Error, c: Context<AppEnv>) {
  return send(
    c,
    errorProblem(err, c.get("deps"), {
      method: c.req.method,
      path: c.req.path,
      requestId: c.get("requestId"),
      contentType: c.req.header("content-type"),
    }),
  );
}
