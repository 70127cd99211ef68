import { toExceptionDetail } from "@ess/contract";
import { type ErrorCode, EssError } from "@ess/domain";
import { isOutOfMemory } from "@ess/store";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { AppEnv } from "./context.js";

/** The vendor media type a client may ask for; error bodies echo it when the request used it. */
export const VENDOR_JSON = "application/vnd.oracle.resource+json";

/** Answers a failure code as a SimpleExceptionDetail. */
export function problem(
  c: Context,
  code: ErrorCode,
  detail: string,
  extra?: { retryAfter?: number | undefined; title?: string },
) {
  const body = toExceptionDetail(code, detail, extra?.title);
  const vendor = c.req.header("content-type")?.startsWith(VENDOR_JSON) === true;
  const headers: Record<string, string> = { "content-type": vendor ? VENDOR_JSON : "application/json" };
  if (extra?.retryAfter !== undefined) headers["retry-after"] = String(extra.retryAfter);
  if (code === "PAYLOAD_TOO_LARGE") headers.connection = "close";
  return c.body(JSON.stringify(body), body.status as ContentfulStatusCode, headers);
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

/** The app's onError: ours, Hono's HTTPException, Redis outages, and the unknown (500, logged). */
export function handleError(err: Error, c: Context<AppEnv>) {
  if (err instanceof EssError) {
    const title = err.code === "UNSUPPORTED_STATE" ? "Unsupported state for operation" : undefined;
    return problem(c, err.code, err.detail, { retryAfter: err.retryAfter, ...(title ? { title } : {}) });
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
    return problem(c, code, err.message || "the request could not be processed");
  }
  if (isRedisUnavailable(err)) {
    return problem(c, "UNAVAILABLE", "the scheduling store is unreachable; retry later", { retryAfter: 1 });
  }
  if (isOutOfMemory(err)) {
    // overload, not a defect: Redis refused the write before changing anything (the scripts declare
    // their flags, so a full Redis refuses a script whole); the client retries after Retry-After
    const deps = c.get("deps");
    deps?.ops?.metrics?.redisOutOfMemory.inc();
    deps?.logWarn?.("Redis is full (maxmemory, noeviction): write refused, answered 503", {
      method: c.req.method,
      path: c.req.path,
      requestId: c.get("requestId"),
    });
    return problem(c, "STORE_OUT_OF_MEMORY", "the scheduling store is full; retry later", {
      retryAfter: deps?.ops?.retryAfterSeconds ?? 1,
    });
  }
  c.get("deps")?.logError(err, { method: c.req.method, path: c.req.path });
  return problem(c, "INTERNAL", "an unexpected error occurred; it has been logged");
}
