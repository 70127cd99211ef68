/**
 * Transport-agnostic failure codes. Packages throw EssError with one of these; exactly one module
 * (packages/contract, errors.ts) maps a code to an HTTP status and a SimpleExceptionDetail.
 */
export const ERROR_CODES = [
  "INVALID_REQUEST_ID",
  "MALFORMED_JSON",
  "INVALID_BODY",
  "UNKNOWN_PROPERTY",
  "UNSUPPORTED_MEDIA_TYPE",
  "PAYLOAD_TOO_LARGE",
  "REQUEST_NOT_FOUND",
  "STALE_HANDLE",
  "NOT_ACCEPTING_CALLBACKS",
  "ALREADY_TERMINAL",
  "UNSUPPORTED_STATE",
  "IDEMPOTENCY_KEY_INVALID",
  "IDEMPOTENCY_KEY_REUSED",
  "IDEMPOTENCY_KEY_IN_FLIGHT",
  "ROUTE_NOT_FOUND",
  // scheduler side
  "FORCE_CANCEL_TOO_EARLY",
  "INVALID_EXECUTION_CONTEXT",
  "INVALID_EVENT_ID",
  "METHOD_NOT_ALLOWED",
  "UNAVAILABLE",
  "INTERNAL",
  "UNAUTHENTICATED",
  "FORBIDDEN",
  "RATE_LIMITED",
  "OVERLOADED",
  "STORE_OUT_OF_MEMORY",
  "REPLICAS_UNACKNOWLEDGED",
  // operator console: an action the request's (or bulk action's) current state does not allow
  "ACTION_CONFLICT",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** A failure the caller can be told about: a code from the closed union and a precise detail. */
export class EssError extends Error {
  readonly code: ErrorCode;
  readonly detail: string;
  /** Seconds a client should wait before retrying (503/429). */
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, detail: string, options?: { retryAfter?: number; cause?: unknown }) {
    super(`${code}: ${detail}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "EssError";
    this.code = code;
    this.detail = detail;
    this.retryAfter = options?.retryAfter;
  }
}

/** Exhaustiveness guard for switches over closed unions. */
export function assertNever(x: never): never {
  throw new Error(`unexpected value ${String(x)}`);
}
