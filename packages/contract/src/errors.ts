import { assertNever, type ErrorCode } from "@ess/domain";
import { z } from "zod";

/** The error body of every non-2xx answer (Oracle's SimpleExceptionDetail). */
export const simpleExceptionDetailSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  errorCode: z.string().regex(/^ESS-\d{5}$/),
});
export type SimpleExceptionDetail = z.output<typeof simpleExceptionDetailSchema>;

interface ErrorInfo {
  readonly status: 400 | 401 | 403 | 404 | 405 | 409 | 413 | 415 | 422 | 429 | 500 | 503;
  readonly errorCode: string;
}

/** The one mapping from failure code to HTTP status and ESS error code (distinct per cause). */
export function errorInfo(code: ErrorCode): ErrorInfo {
  switch (code) {
    case "INVALID_REQUEST_ID":
      return { status: 400, errorCode: "ESS-40001" };
    case "MALFORMED_JSON":
      return { status: 400, errorCode: "ESS-40002" };
    case "INVALID_BODY":
      return { status: 400, errorCode: "ESS-40003" };
    case "UNKNOWN_PROPERTY":
      return { status: 400, errorCode: "ESS-40004" };
    case "UNSUPPORTED_STATE":
      return { status: 400, errorCode: "ESS-40005" };
    case "IDEMPOTENCY_KEY_INVALID":
      return { status: 400, errorCode: "ESS-40006" };
    case "FORCE_CANCEL_TOO_EARLY":
      return { status: 400, errorCode: "ESS-40007" };
    case "INVALID_EXECUTION_CONTEXT":
      return { status: 400, errorCode: "ESS-40008" };
    case "INVALID_EVENT_ID":
      return { status: 400, errorCode: "ESS-40009" };
    case "STALE_HANDLE":
      return { status: 403, errorCode: "ESS-40301" };
    case "NOT_ACCEPTING_CALLBACKS":
      return { status: 403, errorCode: "ESS-40302" };
    case "REQUEST_NOT_FOUND":
      return { status: 404, errorCode: "ESS-40401" };
    case "ROUTE_NOT_FOUND":
      return { status: 404, errorCode: "ESS-40402" };
    case "METHOD_NOT_ALLOWED":
      return { status: 405, errorCode: "ESS-40501" };
    case "ALREADY_TERMINAL":
      return { status: 409, errorCode: "ESS-40901" };
    case "IDEMPOTENCY_KEY_IN_FLIGHT":
      return { status: 409, errorCode: "ESS-40902" };
    case "ACTION_CONFLICT":
      return { status: 409, errorCode: "ESS-40903" };
    case "PAYLOAD_TOO_LARGE":
      return { status: 413, errorCode: "ESS-41301" };
    case "UNSUPPORTED_MEDIA_TYPE":
      return { status: 415, errorCode: "ESS-41501" };
    case "IDEMPOTENCY_KEY_REUSED":
      return { status: 422, errorCode: "ESS-42201" };
    case "INTERNAL":
      return { status: 500, errorCode: "ESS-50001" };
    case "UNAVAILABLE":
      return { status: 503, errorCode: "ESS-50301" };
    case "UNAUTHENTICATED":
      return { status: 401, errorCode: "ESS-40101" };
    case "FORBIDDEN":
      return { status: 403, errorCode: "ESS-40303" };
    case "RATE_LIMITED":
      return { status: 429, errorCode: "ESS-42901" };
    case "OVERLOADED":
      return { status: 503, errorCode: "ESS-50302" };
    case "STORE_OUT_OF_MEMORY":
      return { status: 503, errorCode: "ESS-50303" };
    case "REPLICAS_UNACKNOWLEDGED":
      return { status: 503, errorCode: "ESS-50304" };
    default:
      return assertNever(code);
  }
}

const TITLES: Readonly<Record<number, string>> = {
  400: "Invalid input",
  401: "Authentication required",
  403: "Not allowed for this operation",
  404: "Request ID not found",
  405: "Method not allowed",
  409: "Conflict",
  413: "Payload too large",
  415: "Unsupported media type",
  422: "Unprocessable content",
  429: "Too many requests",
  500: "A scheduling sub-system error occurred",
  503: "Service unavailable",
};

const RFC9110 = "https://www.rfc-editor.org/rfc/rfc9110#section-";
const TYPES: Readonly<Record<number, string>> = {
  400: `${RFC9110}15.5.1`,
  401: `${RFC9110}15.5.2`,
  403: `${RFC9110}15.5.4`,
  404: `${RFC9110}15.5.5`,
  405: `${RFC9110}15.5.6`,
  409: `${RFC9110}15.5.10`,
  413: `${RFC9110}15.5.14`,
  415: `${RFC9110}15.5.16`,
  422: `${RFC9110}15.5.21`,
  429: "https://www.rfc-editor.org/rfc/rfc6585#section-4",
  500: `${RFC9110}15.6.1`,
  503: `${RFC9110}15.6.4`,
};

/** Builds the SimpleExceptionDetail for a failure code. */
export function toExceptionDetail(code: ErrorCode, detail: string, title?: string): SimpleExceptionDetail {
  const { status, errorCode } = errorInfo(code);
  return {
    type: TYPES[status] ?? `${RFC9110}15`,
    title: title ?? TITLES[status] ?? "Error",
    status,
    detail,
    errorCode,
  };
}
