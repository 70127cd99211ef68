import { parseRequestId } from "@ess/domain";
import { z } from "zod";
import { simpleExceptionDetailSchema } from "./errors.js";
import { fieldSelectionParamsSchema, requestQueryParamsSchema } from "./queries.js";
import {
  checkInResponseSchema,
  deliveriesResponseSchema,
  healthSchema,
  readinessSchema,
  redeliverResponseSchema,
  registrationResponseSchema,
  requestDetailsSchema,
  requestListSchema,
  rotateSecretResponseSchema,
  stateChangeResponseSchema,
  subscribeResponseSchema,
  subscriptionListSchema,
  subscriptionSchema,
  unsubscribeResponseSchema,
} from "./responses.js";
import {
  checkInBodySchema,
  redeliverBodySchema,
  rotateSecretBodySchema,
  subscribeBodySchema,
  unsubscribeBodySchema,
} from "./scheduler.js";
import { callbackBodySchema, parseCallbackBody, registrationBodySchema } from "./schemas.js";

/**
 * The roles a credential may carry. `job` posts callbacks, `scheduler` registers, reads and cancels
 * requests, `viewer` reads the operator console and its API, `operator` also takes single actions
 * there (cancel, re-arm, replay), `admin` covers every operation (bulk actions and purges too).
 */
export const ROLES = ["job", "scheduler", "admin", "viewer", "operator"] as const;
export type Role = (typeof ROLES)[number];

/**
 * Who may read the operator console's API (admin is always allowed): viewers, operators, and
 * schedulers, which already read requests over the ESS API.
 */
export const CONSOLE_READ_ROLES = ["viewer", "operator", "scheduler"] as const satisfies readonly Role[];
/**
 * Who may take single actions there (admin is always allowed): operators, and schedulers, which can
 * already cancel, forceCancel and re-register a request over the ESS API.
 */
export const CONSOLE_ACTION_ROLES = ["operator", "scheduler"] as const satisfies readonly Role[];

/** A media type's body: a zod schema (named in the document) or a plain JSON Schema. */
export interface MediaContent {
  schema: z.ZodType | Record<string, unknown>;
}

/** One answer of an operation (OpenAPI's Response Object, with zod schemas for bodies). */
export interface ResponseDeclaration {
  description: string;
  headers?: Record<string, { description: string; schema: { type: "string" } }>;
  content?: Record<string, MediaContent>;
}

/**
 * One route, declared once: method, path (OpenAPI `{param}` syntax), roles, request and response
 * schemas, summary. The shape is @hono/zod-openapi's RouteConfig (what `createRoute` takes) plus
 * what the gateway derives its access rules and metrics label from. Routing, validation, the access
 * rules and the OpenAPI document are all derived from these declarations.
 */
export interface RouteDeclaration {
  method: "get" | "post" | "delete";
  path: string;
  /** OpenAPI operationId (stable for generated clients). */
  operationId: string;
  /** Access-rule name and metrics/access-log label; routes of one path share it. */
  operation: string;
  /** Who may call: "public" (no credentials), or the roles allowed (admin is always allowed). */
  roles: "public" | readonly [Role, ...Role[]];
  summary: string;
  tags?: string[];
  /** Not in the OpenAPI document (operational pages and assets). */
  hide?: boolean;
  /** The declaration covers the path and everything under it (a mounted UI with its assets). */
  subtree?: boolean;
  /**
   * Served by its own module (health probes, docs, metrics, dashboard), not bound from a handler
   * table; declared here for the access rules and, unless hidden, the document.
   */
  external?: boolean;
  request?: {
    params?: z.ZodObject;
    /** Query parameters; every one optional. */
    query?: z.ZodObject;
    /** Request headers beyond X-Request-Id and Authorization. */
    headers?: z.ZodObject;
    body?: { content: Record<string, MediaContent & { schema: z.ZodType }>; required: boolean };
  };
  /**
   * A faster parser that returns what the body schema would, for a hot path; the schema stays the
   * source of the rules, the messages and the document.
   */
  parseBody?: (value: unknown) => unknown;
  /**
   * A faster check of the path parameters for a hot path: what the params schema would return for
   * the values it vouches for, undefined for anything else (the schema then decides, with its messages).
   */
  parseParams?: (value: Record<string, string>) => unknown;
  responses: Record<number, ResponseDeclaration>;
}

/** Refuses a route without a declared role list, or with an unknown role (whatever built it). */
export function assertRoles(route: Pick<RouteDeclaration, "method" | "path">): void {
  const roles: unknown = (route as { roles?: unknown }).roles;
  const ok =
    roles === "public" ||
    (Array.isArray(roles) && roles.length > 0 && roles.every((r) => (ROLES as readonly unknown[]).includes(r)));
  if (!ok) {
    throw new Error(
      `route ${route.method.toUpperCase()} ${route.path} declares no roles: give "public" or some of ${ROLES.join(", ")}`,
    );
  }
}

/** Checks a declaration at load time: a route without a role, or with an unknown one, is refused. */
export function declareRoute<const R extends RouteDeclaration>(route: R): R {
  assertRoles(route);
  return route;
}

/** The pattern of a request id in a path or query (canonical ids; parseRequestId also takes leading zeros). */
export const REQUEST_ID_PATTERN = "^[0-9]{1,19}$";

/**
 * A request id as a path or query parameter, parsed to its canonical form. Its failure carries `params.errorCode` so that the
 * gateway answers it as INVALID_REQUEST_ID (ESS-40001), not as a body error.
 */
export const requestIdSchema = z
  .string()
  .refine((s) => parseRequestId(s) !== null, {
    message: "requestId must be a positive integer of at most 9223372036854775807",
    params: { errorCode: "INVALID_REQUEST_ID" },
  })
  // canonical decimal, as the store keys it
  .transform((s) => parseRequestId(s) as string)
  .meta({ description: "ESS request id: a positive 64-bit integer", pattern: REQUEST_ID_PATTERN });

const requestIdParams = z.object({ requestId: requestIdSchema });

/** The fast path of the `{requestId}` params: what requestIdParams returns for a valid id, else undefined. */
export function parseRequestIdParams(value: Record<string, string>): { requestId: string } | undefined {
  const raw = value.requestId;
  const id = typeof raw === "string" ? parseRequestId(raw) : null;
  return id === null ? undefined : { requestId: id };
}

/** A webhook subscription id as a path parameter. */
export const subscriptionIdSchema = z
  .string()
  .regex(/^[0-9a-f]{16}$/, "subscriptionId must be 16 hex digits")
  .meta({ description: "Webhook subscription id: the first 16 hex digits of SHA-256(callbackUrl)" });

const subscriptionParams = z.object({ requestId: requestIdSchema, subscriptionId: subscriptionIdSchema });

const json = <S extends z.ZodType>(schema: S) => ({ "application/json": { schema } });
/** Request bodies: JSON, or the ESS vendor type. */
const jsonBody = <S extends z.ZodType, Required extends boolean>(schema: S, required: Required) => ({
  required,
  content: {
    "application/json": { schema },
    "application/vnd.oracle.resource+json": { schema },
  },
});
const header = (description: string) => ({ description, schema: { type: "string" as const } });
const RETRY_AFTER = { "Retry-After": header("Seconds to wait before retrying") };
const err = (description: string, headers?: ResponseDeclaration["headers"]): ResponseDeclaration => ({
  description,
  content: json(simpleExceptionDetailSchema),
  ...(headers ? { headers } : {}),
});
const AUTH_ERRORS: Record<number, ResponseDeclaration> = {
  401: err("Missing or invalid credentials", { "WWW-Authenticate": header("Basic and Bearer challenges") }),
  403: err("The credential's roles do not cover this operation (or, for a callback, the handle is not current)"),
  429: err("Per-credential rate limit exceeded, or too many password checks waiting", RETRY_AFTER),
  503: err("Redis unreachable or backlog over the limit", RETRY_AFTER),
};
const CANCEL_REQUESTED = { "X-ESS-Cancel-Requested": header("true when the job should stop") };
const REQUEST = "/ess/rest/scheduler/v1/requests/{requestId}";
const SUBSCRIPTIONS = "/gateway/v1/requests/{requestId}/subscriptions";
const NO_SUBSCRIPTION = "The request is not registered (ESS-40401) or has no such subscription (ESS-40402)";
const UNSUPPORTED_STATE = 'title "Unsupported state for operation" (ESS-40005)';

/** GET /healthz and GET /readyz: public probes, on both listeners. */
export const HEALTH_ROUTES = [
  declareRoute({
    method: "get",
    path: "/healthz",
    operationId: "healthz",
    operation: "healthz",
    roles: "public",
    external: true,
    summary: "Liveness: the process answers",
    tags: ["operations"],
    responses: { 200: { description: "Alive", content: json(healthSchema) } },
  }),
  declareRoute({
    method: "get",
    path: "/readyz",
    operationId: "readyz",
    operation: "readyz",
    roles: "public",
    external: true,
    summary: "Readiness: Redis reachable, scripts loaded, not shutting down",
    tags: ["operations"],
    responses: {
      200: { description: "Ready", content: json(readinessSchema) },
      503: { description: "Not ready", content: json(readinessSchema) },
    },
  }),
] as const;

/**
 * The API of the callback listener, one declaration per route. The gateway binds a handler to
 * each (a missing handler is a type error), derives its access rules from them, and serves the
 * OpenAPI document built from them.
 */
export const API_ROUTES = {
  postExecutionStatus: declareRoute({
    method: "post",
    path: `${REQUEST}/executionStatus`,
    operationId: "postExecutionStatus",
    operation: "executionStatus",
    roles: ["job"],
    summary: "ESS asynchronous-job callback: the job reports its status",
    tags: ["job"],
    request: {
      params: requestIdParams,
      headers: z.object({
        "Idempotency-Key": z.string().optional().meta({
          description:
            "1-255 printable ASCII characters: a retried call with the same key and body is answered as the first",
        }),
      }),
      body: jsonBody(callbackBodySchema, true),
    },
    // the hot path: a precompiled check of the common body, the schema for everything else
    parseBody: parseCallbackBody,
    parseParams: parseRequestIdParams,
    responses: {
      200: {
        description: "Accepted and durably queued; X-ESS-Cancel-Requested: true when the request is being cancelled",
        headers: CANCEL_REQUESTED,
      },
      400: err("Invalid request id, JSON or body"),
      ...AUTH_ERRORS,
      404: err("The request is not registered"),
      405: err("Method not allowed"),
      409: err("A call with this Idempotency-Key is still being processed", RETRY_AFTER),
      413: err("Body too large"),
      415: err("Content-Type is not JSON"),
      422: err("The Idempotency-Key was used with a different body"),
    },
  }),
  registerExecution: declareRoute({
    method: "post",
    path: "/gateway/v1/requests/{requestId}/executions",
    operationId: "registerExecution",
    operation: "register",
    roles: ["scheduler"],
    summary: "Register (or re-arm) an executing request; returns its request handle",
    tags: ["scheduler"],
    request: { params: requestIdParams, body: jsonBody(registrationBodySchema, false) },
    responses: {
      201: { description: "Registered; Location points at the request", content: json(registrationResponseSchema) },
      400: err("Invalid request id or body"),
      ...AUTH_ERRORS,
      409: err("The request has ended and cannot be registered again"),
      415: err("Content-Type is not JSON"),
    },
  }),
  getRequest: declareRoute({
    method: "get",
    path: REQUEST,
    operationId: "getRequest",
    operation: "getRequest",
    roles: ["scheduler"],
    summary: "Request details with ESS field names, metadata and history",
    tags: ["scheduler"],
    request: { params: requestIdParams, query: fieldSelectionParamsSchema },
    responses: {
      200: {
        description: "The request (only the selected fields with fields / excludeFields)",
        content: json(requestDetailsSchema),
      },
      400: err("Invalid request id, or an unknown field in fields / excludeFields"),
      ...AUTH_ERRORS,
      404: err("The request is not registered"),
    },
  }),
  queryRequests: declareRoute({
    method: "get",
    path: "/ess/rest/scheduler/v1/requests",
    operationId: "queryRequests",
    operation: "queryRequests",
    roles: ["scheduler"],
    summary: "Find requests: ESS's q filter (a documented subset), orderBy, limit, paged with an opaque cursor",
    tags: ["scheduler"],
    request: { query: requestQueryParamsSchema },
    responses: {
      200: {
        description: "One page of RequestDetails (without history) and a next link",
        content: json(requestListSchema),
      },
      400: err("A q clause, orderBy, limit, cursor or field outside the supported subset (the detail names it)"),
      ...AUTH_ERRORS,
    },
  }),
  cancelRequest: declareRoute({
    method: "post",
    path: `${REQUEST}/cancel`,
    operationId: "cancelRequest",
    operation: "cancel",
    roles: ["scheduler"],
    summary: "Cancel: WAIT, READY, BLOCKED, HOLD → CANCELLED at once; RUNNING, COMPLETED → CANCELLING",
    tags: ["scheduler"],
    request: { params: requestIdParams },
    responses: {
      200: { description: "The state change, with a `link` to the request", content: json(stateChangeResponseSchema) },
      400: err(`Invalid request id (ESS-40001), or the request has ended or is not cancellable: ${UNSUPPORTED_STATE}`),
      ...AUTH_ERRORS,
      404: err("The request is not registered"),
    },
  }),
  forceCancelRequest: declareRoute({
    method: "post",
    path: `${REQUEST}/forceCancel`,
    operationId: "forceCancelRequest",
    operation: "forceCancel",
    roles: ["scheduler"],
    summary: "Force cancel: CANCELLING → CANCELLED without the job, once it has been quiet for FORCE_CANCEL_QUIET_MS",
    tags: ["scheduler"],
    request: { params: requestIdParams },
    responses: {
      200: { description: "The state change, with a `link` to the request", content: json(stateChangeResponseSchema) },
      400: err(
        "Invalid request id (ESS-40001); not quiet long enough since CANCELLING began or the last check-in " +
          `(ESS-40007, detail says how long to go); or the request is not CANCELLING: ${UNSUPPORTED_STATE}`,
      ),
      ...AUTH_ERRORS,
      404: err("The request is not registered"),
    },
  }),
  checkInCancelling: declareRoute({
    method: "post",
    path: `${REQUEST}/checkInCancelling`,
    operationId: "checkInCancelling",
    operation: "checkInCancelling",
    roles: ["job"],
    summary: "The job asks whether a cancel is under way (counts as a check-in)",
    tags: ["job"],
    request: { params: requestIdParams, body: jsonBody(checkInBodySchema, true) },
    responses: {
      200: {
        description: "true while a cancel is under way (with X-ESS-Cancel-Requested: true), else false",
        content: json(checkInResponseSchema),
        headers: CANCEL_REQUESTED,
      },
      400: err(
        "Invalid request id, JSON or body; or requestExecutionContext is not ess1:<requestId>:<requestHandle> " +
          "of this request (ESS-40008)",
      ),
      ...AUTH_ERRORS,
      404: err("The request is not registered"),
      415: err("Content-Type is not JSON"),
    },
  }),
  subscribe: declareRoute({
    method: "post",
    path: `${REQUEST}/subscribe`,
    operationId: "subscribe",
    operation: "subscribe",
    roles: ["scheduler"],
    summary: "Subscribe a webhook URL to the request's state changes",
    tags: ["scheduler"],
    request: { params: requestIdParams, body: jsonBody(subscribeBodySchema, true) },
    responses: {
      200: {
        description:
          "Subscribed (added: false when it was already). A new subscription's signing secret (the one given, or a generated `whsec_…`) is answered here once",
        content: json(subscribeResponseSchema),
      },
      400: err(
        "Invalid request id, JSON or body (callbackUrl not an absolute http(s) URL without credentials, or aimed at an address the webhook address policy refuses: loopback, private, link-local, multicast, metadata)",
      ),
      ...AUTH_ERRORS,
      404: err("The request is not registered"),
      415: err("Content-Type is not JSON"),
    },
  }),
  unsubscribe: declareRoute({
    method: "delete",
    path: `${REQUEST}/subscribe`,
    operationId: "unsubscribe",
    operation: "subscribe",
    roles: ["scheduler"],
    summary: "Drop a webhook URL of the request (idempotent)",
    tags: ["scheduler"],
    request: { params: requestIdParams, body: jsonBody(unsubscribeBodySchema, true) },
    responses: {
      200: {
        description: "Unsubscribed (removed: false when it was not subscribed)",
        content: json(unsubscribeResponseSchema),
      },
      400: err("Invalid request id, JSON or body"),
      ...AUTH_ERRORS,
      404: err("The request is not registered"),
      415: err("Content-Type is not JSON"),
    },
  }),
  getEvents: declareRoute({
    method: "get",
    path: "/gateway/v1/events",
    operationId: "getEvents",
    operation: "events",
    roles: ["scheduler"],
    summary: "State changes as Server-Sent Events, optionally of one request, resumable with Last-Event-ID",
    tags: ["scheduler"],
    request: {
      query: z.object({
        requestId: requestIdSchema.optional().meta({ description: "Only this request's events" }),
        lastEventId: z.string().optional().meta({ description: "As the Last-Event-ID header (the header wins)" }),
      }),
      headers: z.object({
        "Last-Event-ID": z.string().optional().meta({
          description: "Resume right after this event id (like 1732841234567-0/3); without it the stream starts now",
        }),
      }),
    },
    responses: {
      200: {
        description:
          "An event stream: `event: ready` first, then one event per state change (id: stream entry id, " +
          "event: its name, data: the state change as a CloudEvents 1.0 JSON event), `: keep-alive` comments when idle",
        content: { "text/event-stream": { schema: { type: "string" } } },
      },
      400: err("Invalid requestId (ESS-40001) or Last-Event-ID (ESS-40009)"),
      ...AUTH_ERRORS,
    },
  }),
  listSubscriptions: declareRoute({
    method: "get",
    path: SUBSCRIPTIONS,
    operationId: "listSubscriptions",
    operation: "subscriptions",
    roles: ["scheduler"],
    summary: "The request's webhook subscriptions (never their secrets)",
    tags: ["scheduler"],
    request: { params: requestIdParams },
    responses: {
      200: { description: "The subscriptions, oldest first", content: json(subscriptionListSchema) },
      400: err("Invalid request id"),
      ...AUTH_ERRORS,
      404: err("The request is not registered"),
    },
  }),
  getSubscription: declareRoute({
    method: "get",
    path: `${SUBSCRIPTIONS}/{subscriptionId}`,
    operationId: "getSubscription",
    operation: "subscriptions",
    roles: ["scheduler"],
    summary: "One webhook subscription: where its ordered delivery stands, its rotation window",
    tags: ["scheduler"],
    request: { params: subscriptionParams },
    responses: {
      200: { description: "The subscription", content: json(subscriptionSchema) },
      400: err("Invalid request id or subscription id (16 hex digits)"),
      ...AUTH_ERRORS,
      404: err(NO_SUBSCRIPTION),
    },
  }),
  getDeliveries: declareRoute({
    method: "get",
    path: `${SUBSCRIPTIONS}/{subscriptionId}/deliveries`,
    operationId: "getDeliveries",
    operation: "subscriptions",
    roles: ["scheduler"],
    summary: "A subscription's delivery log: its last attempts, newest first",
    tags: ["scheduler"],
    request: {
      params: subscriptionParams,
      query: z.strictObject({
        limit: z.coerce
          .number()
          .int()
          .min(1)
          .max(10000)
          .optional()
          .meta({ description: "At most this many entries, 1-10000 (default: all kept)" }),
      }),
    },
    responses: {
      200: {
        description: "The attempts (time, event, HTTP status, latency, error)",
        content: json(deliveriesResponseSchema),
      },
      400: err("Invalid request id, subscription id or limit"),
      ...AUTH_ERRORS,
      404: err(NO_SUBSCRIPTION),
    },
  }),
  rotateSecret: declareRoute({
    method: "post",
    path: `${SUBSCRIPTIONS}/{subscriptionId}/rotate`,
    operationId: "rotateSecret",
    operation: "subscriptions",
    roles: ["scheduler"],
    summary: "A new signing secret; the previous one keeps signing too for graceSeconds",
    tags: ["scheduler"],
    request: { params: subscriptionParams, body: jsonBody(rotateSecretBodySchema, true) },
    responses: {
      200: { description: "Rotated: the new secret, answered this once", content: json(rotateSecretResponseSchema) },
      400: err("Invalid request id, subscription id, JSON or body (secret not whsec_…, graceSeconds out of range)"),
      ...AUTH_ERRORS,
      404: err(NO_SUBSCRIPTION),
      415: err("Content-Type is not JSON"),
    },
  }),
  redeliver: declareRoute({
    method: "post",
    path: `${SUBSCRIPTIONS}/{subscriptionId}/redeliver`,
    operationId: "redeliver",
    operation: "subscriptions",
    roles: ["scheduler"],
    summary: "Send one event to the subscription again, now, outside the order (one attempt, logged)",
    tags: ["scheduler"],
    request: { params: subscriptionParams, body: jsonBody(redeliverBodySchema, true) },
    responses: {
      202: { description: "Queued; the attempt will be in the delivery log", content: json(redeliverResponseSchema) },
      400: err("Invalid request id, subscription id, JSON or eventId"),
      ...AUTH_ERRORS,
      404: err("Unknown request (ESS-40401), subscription or event no longer in the stream (ESS-40402)"),
      415: err("Content-Type is not JSON"),
    },
  }),
} as const;

/** The OpenAPI document and the API reference page: public, not themselves documented. */
const DOCS_ROUTES = [
  declareRoute({
    method: "get",
    path: "/openapi.json",
    operationId: "openapi",
    operation: "openapi",
    roles: "public",
    hide: true,
    external: true,
    summary: "This document",
    responses: { 200: { description: "OpenAPI 3.1" } },
  }),
  declareRoute({
    method: "get",
    path: "/docs",
    operationId: "docs",
    operation: "docs",
    roles: "public",
    hide: true,
    subtree: true,
    external: true,
    summary: "Interactive API reference (Swagger UI) and its assets",
    responses: { 200: { description: "HTML page" } },
  }),
] as const;

/** Every route of the callback listener: probes, the API, the document. */
export const GATEWAY_ROUTES: readonly RouteDeclaration[] = [
  ...HEALTH_ROUTES,
  ...DOCS_ROUTES,
  ...Object.values(API_ROUTES),
];

/** Prometheus metrics and the queue dashboard, on the admin listener (admin only). */
export const ADMIN_OPERATIONS_ROUTES = {
  metrics: declareRoute({
    method: "get",
    path: "/metrics",
    operationId: "metrics",
    operation: "metrics",
    roles: ["admin"],
    hide: true,
    external: true,
    summary: "Prometheus metrics",
    responses: { 200: { description: "Prometheus text format" } },
  }),
  dashboard: declareRoute({
    method: "get",
    path: "/admin/queues",
    operationId: "dashboard",
    operation: "dashboard",
    roles: ["admin"],
    hide: true,
    subtree: true,
    external: true,
    summary: "Queue dashboard (bull-board) and its API",
    responses: { 200: { description: "HTML page" } },
  }),
} as const;
