import { STATE_NAMES } from "@ess/domain";
import { z } from "zod";
import { simpleExceptionDetailSchema } from "./errors.js";
import {
  checkInBodySchema,
  redeliverBodySchema,
  rotateSecretBodySchema,
  subscribeBodySchema,
  unsubscribeBodySchema,
} from "./scheduler.js";
import { callbackBodySchema, registrationBodySchema } from "./schemas.js";

/** 201 answer of registration. */
export const registrationResponseSchema = z.object({
  requestId: z.number().int().positive(),
  requestHandle: z.string().min(1),
  state: z.literal("RUNNING"),
  execution: z.number().int().min(1),
  pausedState: z.string().nullable().optional(),
});

const linkSchema = z.object({ rel: z.string(), href: z.string() });
const isoOrNull = z.string().nullable();
const stateSchema = z.enum(STATE_NAMES as [string, ...string[]]);

/** 200 answer of GET /ess/rest/scheduler/v1/requests/{requestId} (ESS field names, never the handle). */
export const requestDetailsSchema = z.object({
  requestId: z.number().int().positive(),
  state: stateSchema,
  stateDescription: z.string(),
  isAsynchronous: z.boolean(),
  execution: z.number().int(),
  retriedCount: z.number().int(),
  maxRetries: z.number().int(),
  requestTimeout: z.number().int().nullable(),
  errorType: z.string().nullable(),
  cause: z.string().nullable(),
  errorWarningMessage: z.string().nullable(),
  errorWarningTime: isoOrNull,
  isTimedOut: z.boolean(),
  isCancellable: z.boolean(),
  isForceCancelAllowed: z.boolean(),
  processStartTime: isoOrNull,
  processEndTime: isoOrNull,
  completedTime: isoOrNull,
  elapsedTime: z.number().nullable(),
  pausedState: z.string().nullable(),
  lastCheckInTime: isoOrNull,
  links: z.array(linkSchema),
  history: z.array(z.record(z.string(), z.unknown())),
});

/** 200 answer of cancel and forceCancel: the state change and a `link` to the request (ESS). */
export const stateChangeResponseSchema = z.object({
  requestId: z.number().int().positive(),
  state: stateSchema,
  previousState: stateSchema,
  link: linkSchema,
});

/** 200 answer of POST and DELETE .../subscribe: the URL (as in the body) and a `link` to the request. */
const subscriptionResponseSchema = z.object({
  requestId: z.number().int().positive(),
  callbackUrl: subscribeBodySchema.shape.callbackUrl,
  link: linkSchema,
});
/** 200 answer of POST .../subscribe; `added` is false when the URL was subscribed already. */
export const subscribeResponseSchema = subscriptionResponseSchema.extend({
  subscribed: z.literal(true),
  added: z.boolean(),
  /** 16 hex digits: names the subscription in /gateway/v1/requests/{requestId}/subscriptions/… */
  subscriptionId: z.string().regex(/^[0-9a-f]{16}$/),
  /** the signing secret (`whsec_…`), answered only when the subscription was made by this call */
  secret: z.string().startsWith("whsec_").optional(),
});
/** 200 answer of DELETE .../subscribe; `removed` is false when the URL was not subscribed. */
export const unsubscribeResponseSchema = subscriptionResponseSchema.extend({
  subscribed: z.literal(false),
  removed: z.boolean(),
});

/** A webhook subscription as the API shows it (never its secret). */
export const subscriptionSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{16}$/),
  requestId: z.string().regex(/^[0-9]+$/),
  callbackUrl: z.string(),
  createdAt: z.number().int(),
  since: z.number().int().min(0),
  next: z.number().int().min(1),
  pending: z.number().int().min(0),
  rotatedAt: z.number().int().nullable(),
  previousSecretValidUntil: z.number().int().nullable(),
});
/** 200 answer of GET /gateway/v1/requests/{requestId}/subscriptions. */
export const subscriptionListSchema = z.object({
  requestId: z.string(),
  items: z.array(subscriptionSchema),
  count: z.number().int().min(0),
});
/** One entry of a subscription's delivery log. */
export const deliveryAttemptSchema = z.object({
  at: z.number().int(),
  eventId: z.string(),
  seq: z.number().int().min(1),
  type: z.string(),
  kind: z.enum(["ordered", "redelivery"]),
  attempt: z.number().int().min(0),
  outcome: z.enum(["delivered", "failed", "dead-lettered", "skipped", "refused"]),
  status: z.number().int().nullable(),
  latencyMs: z.number().int().nullable(),
  error: z.string().nullable(),
});
/** 200 answer of GET .../subscriptions/{subscriptionId}/deliveries: the newest attempts first. */
export const deliveriesResponseSchema = z.object({
  subscription: subscriptionSchema,
  items: z.array(deliveryAttemptSchema),
  count: z.number().int().min(0),
});
/** 200 answer of POST .../rotate: the new secret (answered once). */
export const rotateSecretResponseSchema = z.object({
  requestId: z.string(),
  subscriptionId: z.string(),
  secret: z.string().startsWith("whsec_"),
  previousSecretValidUntil: z.iso.datetime().nullable(),
});
/** 202 answer of POST .../redeliver. */
export const redeliverResponseSchema = z.object({
  requestId: z.string(),
  subscriptionId: z.string(),
  eventId: z.string(),
  seq: z.number().int().min(1),
  jobId: z.string(),
});

/** 200 answer of POST .../checkInCancelling: a JSON boolean, true while a cancel is under way. */
export const checkInResponseSchema = z.boolean();

/** GET /healthz. */
export const healthSchema = z.object({ status: z.literal("ok") });
/** GET /readyz (200 ready, 503 not). */
export const readinessSchema = z.object({
  status: z.enum(["ready", "not ready"]),
  checks: z.record(z.string(), z.string()),
});

/** One documented answer: its description and, when it has a JSON body, the body's schema. */
export interface ApiResponse {
  description: string;
  schema?: z.ZodType;
  /** Media type of a body that is not JSON (then no schema): a Server-Sent Events stream. */
  mediaType?: "text/event-stream";
  headers?: Record<string, string>;
}

/** One documented operation; the roles that may call it are listed in `roles` (admin: all). */
export interface ApiOperation {
  operationId: string;
  method: "get" | "post" | "delete";
  path: string;
  summary: string;
  tag: string;
  /** Roles allowed (besides admin); empty = public (no credentials). */
  roles: readonly string[];
  requestBody?: { schema: z.ZodType; required: boolean };
  /** Request headers beyond X-Request-Id and Authorization. */
  headers?: { name: string; description: string }[];
  /** Query parameters (all optional); `pattern` constrains the value. */
  query?: { name: string; description: string; pattern?: string }[];
  responses: Record<number, ApiResponse>;
}

const named: [z.ZodType, string][] = [
  [callbackBodySchema, "CallbackBody"],
  [registrationBodySchema, "RegistrationBody"],
  [registrationResponseSchema, "RegistrationResponse"],
  [requestDetailsSchema, "RequestDetails"],
  [checkInBodySchema, "CheckInBody"],
  [checkInResponseSchema, "CheckInResponse"],
  [subscribeBodySchema, "SubscribeBody"],
  [unsubscribeBodySchema, "UnsubscribeBody"],
  [subscribeResponseSchema, "SubscribeResponse"],
  [unsubscribeResponseSchema, "UnsubscribeResponse"],
  [stateChangeResponseSchema, "StateChangeResponse"],
  [subscriptionSchema, "Subscription"],
  [subscriptionListSchema, "SubscriptionList"],
  [deliveryAttemptSchema, "DeliveryAttempt"],
  [deliveriesResponseSchema, "DeliveriesResponse"],
  [rotateSecretBodySchema, "RotateSecretBody"],
  [rotateSecretResponseSchema, "RotateSecretResponse"],
  [redeliverBodySchema, "RedeliverBody"],
  [redeliverResponseSchema, "RedeliverResponse"],
  [simpleExceptionDetailSchema, "SimpleExceptionDetail"],
  [healthSchema, "Health"],
  [readinessSchema, "Readiness"],
];

const RETRY_AFTER = { "Retry-After": "Seconds to wait before retrying" };
const err = (description: string, headers?: Record<string, string>): ApiResponse => ({
  description,
  schema: simpleExceptionDetailSchema,
  ...(headers ? { headers } : {}),
});
const AUTH_ERRORS: Record<number, ApiResponse> = {
  401: err("Missing or invalid credentials", { "WWW-Authenticate": "Basic and Bearer challenges" }),
  403: err("The credential's roles do not cover this operation (or, for a callback, the handle is not current)"),
  429: err("Per-credential rate limit exceeded", RETRY_AFTER),
  503: err("Redis unreachable or backlog over the limit", RETRY_AFTER),
};
const REQUEST_ID = "/ess/rest/scheduler/v1/requests/{requestId}";
const REQUEST_ID_PATTERN = "^[0-9]{1,19}$";
const SUBSCRIPTIONS = "/gateway/v1/requests/{requestId}/subscriptions";
const UNSUPPORTED_STATE = 'title "Unsupported state for operation" (ESS-40005)';

/**
 * The documented API: every operation the callback listener serves. The OpenAPI description is
 * generated from this table and the zod schemas; a test checks each entry against the running app.
 */
export const API_OPERATIONS: readonly ApiOperation[] = [
  {
    operationId: "postExecutionStatus",
    method: "post",
    path: `${REQUEST_ID}/executionStatus`,
    summary: "ESS asynchronous-job callback: the job reports its status",
    tag: "job",
    roles: ["job"],
    requestBody: { schema: callbackBodySchema, required: true },
    headers: [
      {
        name: "Idempotency-Key",
        description:
          "1-255 printable ASCII characters: a retried call with the same key and body is answered as the first",
      },
    ],
    responses: {
      200: {
        description: "Accepted and durably queued; X-ESS-Cancel-Requested: true when the request is being cancelled",
        headers: { "X-ESS-Cancel-Requested": "true when the job should stop" },
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
  },
  {
    operationId: "registerExecution",
    method: "post",
    path: "/gateway/v1/requests/{requestId}/executions",
    summary: "Register (or re-arm) an executing request; returns its request handle",
    tag: "scheduler",
    roles: ["scheduler"],
    requestBody: { schema: registrationBodySchema, required: false },
    responses: {
      201: { description: "Registered; Location points at the request", schema: registrationResponseSchema },
      400: err("Invalid request id or body"),
      ...AUTH_ERRORS,
      409: err("The request has ended and cannot be registered again"),
      415: err("Content-Type is not JSON"),
    },
  },
  {
    operationId: "getRequest",
    method: "get",
    path: REQUEST_ID,
    summary: "Request details with ESS field names and history",
    tag: "scheduler",
    roles: ["scheduler"],
    responses: {
      200: { description: "The request", schema: requestDetailsSchema },
      400: err("Invalid request id"),
      ...AUTH_ERRORS,
      404: err("The request is not registered"),
    },
  },
  {
    operationId: "cancelRequest",
    method: "post",
    path: `${REQUEST_ID}/cancel`,
    summary: "Cancel: WAIT, READY, BLOCKED, HOLD → CANCELLED at once; RUNNING, COMPLETED → CANCELLING",
    tag: "scheduler",
    roles: ["scheduler"],
    responses: {
      200: { description: "The state change, with a `link` to the request", schema: stateChangeResponseSchema },
      400: err(`Invalid request id (ESS-40001), or the request has ended or is not cancellable: ${UNSUPPORTED_STATE}`),
      ...AUTH_ERRORS,
      404: err("The request is not registered"),
    },
  },
  {
    operationId: "forceCancelRequest",
    method: "post",
    path: `${REQUEST_ID}/forceCancel`,
    summary: "Force cancel: CANCELLING → CANCELLED without the job, once it has been quiet for FORCE_CANCEL_QUIET_MS",
    tag: "scheduler",
    roles: ["scheduler"],
    responses: {
      200: { description: "The state change, with a `link` to the request", schema: stateChangeResponseSchema },
      400: err(
        "Invalid request id (ESS-40001); not quiet long enough since CANCELLING began or the last check-in " +
          `(ESS-40007, detail says how long to go); or the request is not CANCELLING: ${UNSUPPORTED_STATE}`,
      ),
      ...AUTH_ERRORS,
      404: err("The request is not registered"),
    },
  },
  {
    operationId: "checkInCancelling",
    method: "post",
    path: `${REQUEST_ID}/checkInCancelling`,
    summary: "The job asks whether a cancel is under way (counts as a check-in)",
    tag: "job",
    roles: ["job"],
    requestBody: { schema: checkInBodySchema, required: true },
    responses: {
      200: {
        description: "true while a cancel is under way (with X-ESS-Cancel-Requested: true), else false",
        schema: checkInResponseSchema,
        headers: { "X-ESS-Cancel-Requested": "true when the job should stop" },
      },
      400: err(
        "Invalid request id, JSON or body; or requestExecutionContext is not ess1:<requestId>:<requestHandle> " +
          "of this request (ESS-40008)",
      ),
      ...AUTH_ERRORS,
      404: err("The request is not registered"),
      415: err("Content-Type is not JSON"),
    },
  },
  {
    operationId: "subscribe",
    method: "post",
    path: `${REQUEST_ID}/subscribe`,
    summary: "Subscribe a webhook URL to the request's state changes",
    tag: "scheduler",
    roles: ["scheduler"],
    requestBody: { schema: subscribeBodySchema, required: true },
    responses: {
      200: {
        description:
          "Subscribed (added: false when it was already). A new subscription's signing secret (the one given, or a generated `whsec_…`) is answered here once",
        schema: subscribeResponseSchema,
      },
      400: err(
        "Invalid request id, JSON or body (callbackUrl not an absolute http(s) URL without credentials, or aimed at an address the webhook address policy refuses: loopback, private, link-local, multicast, metadata)",
      ),
      ...AUTH_ERRORS,
      404: err("The request is not registered"),
      415: err("Content-Type is not JSON"),
    },
  },
  {
    operationId: "unsubscribe",
    method: "delete",
    path: `${REQUEST_ID}/subscribe`,
    summary: "Drop a webhook URL of the request (idempotent)",
    tag: "scheduler",
    roles: ["scheduler"],
    requestBody: { schema: unsubscribeBodySchema, required: true },
    responses: {
      200: {
        description: "Unsubscribed (removed: false when it was not subscribed)",
        schema: unsubscribeResponseSchema,
      },
      400: err("Invalid request id, JSON or body"),
      ...AUTH_ERRORS,
      404: err("The request is not registered"),
      415: err("Content-Type is not JSON"),
    },
  },
  {
    operationId: "getEvents",
    method: "get",
    path: "/gateway/v1/events",
    summary: "State changes as Server-Sent Events, optionally of one request, resumable with Last-Event-ID",
    tag: "scheduler",
    roles: ["scheduler"],
    query: [
      { name: "requestId", description: "Only this request's events", pattern: REQUEST_ID_PATTERN },
      { name: "lastEventId", description: "As the Last-Event-ID header (the header wins)" },
    ],
    headers: [
      {
        name: "Last-Event-ID",
        description: "Resume right after this event id (like 1732841234567-0/3); without it the stream starts now",
      },
    ],
    responses: {
      200: {
        description:
          "An event stream: `event: ready` first, then one event per state change (id: stream entry id, " +
          "event: its name, data: the state change as a CloudEvents 1.0 JSON event), `: keep-alive` comments when idle",
        mediaType: "text/event-stream",
      },
      400: err("Invalid requestId (ESS-40001) or Last-Event-ID (ESS-40009)"),
      ...AUTH_ERRORS,
    },
  },
  {
    operationId: "listSubscriptions",
    method: "get",
    path: SUBSCRIPTIONS,
    summary: "The request's webhook subscriptions (never their secrets)",
    tag: "scheduler",
    roles: ["scheduler"],
    responses: {
      200: { description: "The subscriptions, oldest first", schema: subscriptionListSchema },
      400: err("Invalid request id"),
      ...AUTH_ERRORS,
      404: err("The request is not registered"),
    },
  },
  {
    operationId: "getSubscription",
    method: "get",
    path: `${SUBSCRIPTIONS}/{subscriptionId}`,
    summary: "One webhook subscription: where its ordered delivery stands, its rotation window",
    tag: "scheduler",
    roles: ["scheduler"],
    responses: {
      200: { description: "The subscription", schema: subscriptionSchema },
      400: err("Invalid request id or subscription id (16 hex digits)"),
      ...AUTH_ERRORS,
      404: err("The request is not registered (ESS-40401) or has no such subscription (ESS-40402)"),
    },
  },
  {
    operationId: "getDeliveries",
    method: "get",
    path: `${SUBSCRIPTIONS}/{subscriptionId}/deliveries`,
    summary: "A subscription's delivery log: its last attempts, newest first",
    tag: "scheduler",
    roles: ["scheduler"],
    query: [{ name: "limit", description: "At most this many entries (default: all kept)", pattern: "^[0-9]{1,5}$" }],
    responses: {
      200: { description: "The attempts (time, event, HTTP status, latency, error)", schema: deliveriesResponseSchema },
      400: err("Invalid request id, subscription id or limit"),
      ...AUTH_ERRORS,
      404: err("The request is not registered (ESS-40401) or has no such subscription (ESS-40402)"),
    },
  },
  {
    operationId: "rotateSecret",
    method: "post",
    path: `${SUBSCRIPTIONS}/{subscriptionId}/rotate`,
    summary: "A new signing secret; the previous one keeps signing too for graceSeconds",
    tag: "scheduler",
    roles: ["scheduler"],
    requestBody: { schema: rotateSecretBodySchema, required: true },
    responses: {
      200: { description: "Rotated: the new secret, answered this once", schema: rotateSecretResponseSchema },
      400: err("Invalid request id, subscription id, JSON or body (secret not whsec_…, graceSeconds out of range)"),
      ...AUTH_ERRORS,
      404: err("The request is not registered (ESS-40401) or has no such subscription (ESS-40402)"),
      415: err("Content-Type is not JSON"),
    },
  },
  {
    operationId: "redeliver",
    method: "post",
    path: `${SUBSCRIPTIONS}/{subscriptionId}/redeliver`,
    summary: "Send one event to the subscription again, now, outside the order (one attempt, logged)",
    tag: "scheduler",
    roles: ["scheduler"],
    requestBody: { schema: redeliverBodySchema, required: true },
    responses: {
      202: { description: "Queued; the attempt will be in the delivery log", schema: redeliverResponseSchema },
      400: err("Invalid request id, subscription id, JSON or eventId"),
      ...AUTH_ERRORS,
      404: err("Unknown request (ESS-40401), subscription or event no longer in the stream (ESS-40402)"),
      415: err("Content-Type is not JSON"),
    },
  },
  {
    operationId: "healthz",
    method: "get",
    path: "/healthz",
    summary: "Liveness: the process answers",
    tag: "operations",
    roles: [],
    responses: { 200: { description: "Alive", schema: healthSchema } },
  },
  {
    operationId: "readyz",
    method: "get",
    path: "/readyz",
    summary: "Readiness: Redis reachable, scripts loaded, not shutting down",
    tag: "operations",
    roles: [],
    responses: {
      200: { description: "Ready", schema: readinessSchema },
      503: { description: "Not ready", schema: readinessSchema },
    },
  },
];

function jsonSchema(schema: z.ZodType, io: "input" | "output"): Record<string, unknown> {
  const out = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as Record<string, unknown>;
  delete out.$schema;
  return out;
}

/** Builds the OpenAPI 3.1 description from API_OPERATIONS and the zod schemas. */
export function buildOpenApi(info: { version: string; serverUrl?: string } = { version: "0.1.0" }) {
  const names = new Map(named);
  const ref = (s: z.ZodType) => ({ $ref: `#/components/schemas/${names.get(s) ?? "Unknown"}` });
  const schemas: Record<string, unknown> = {};
  for (const [s, name] of named) {
    // request bodies are described as accepted (input), answers as sent (output)
    const io = name.endsWith("Body") ? "input" : "output";
    schemas[name] = jsonSchema(s, io);
  }
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of API_OPERATIONS) {
    const params = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) =>
      m[1] === "subscriptionId"
        ? {
            name: m[1],
            in: "path",
            required: true,
            description: "Webhook subscription id: the first 16 hex digits of SHA-256(callbackUrl)",
            schema: { type: "string", pattern: "^[0-9a-f]{16}$" },
          }
        : {
            name: m[1],
            in: "path",
            required: true,
            description: "ESS request id: a positive 64-bit integer",
            schema: { type: "string", pattern: REQUEST_ID_PATTERN },
          },
    );
    const responses: Record<string, unknown> = {};
    for (const [code, r] of Object.entries(op.responses)) {
      const entry: Record<string, unknown> = { description: r.description };
      if (r.schema) entry.content = { "application/json": { schema: ref(r.schema) } };
      if (r.mediaType) entry.content = { [r.mediaType]: { schema: { type: "string" } } };
      if (r.headers) {
        entry.headers = Object.fromEntries(
          Object.entries(r.headers).map(([h, d]) => [h, { description: d, schema: { type: "string" } }]),
        );
      }
      responses[code] = entry;
    }
    const operation: Record<string, unknown> = {
      operationId: op.operationId,
      summary: op.summary,
      tags: [op.tag],
      "x-roles": [...op.roles, ...(op.roles.length > 0 ? ["admin"] : [])],
      security: op.roles.length > 0 ? [{ basicAuth: [] }, { bearerAuth: [] }] : [],
      parameters: [
        ...params,
        ...(op.query ?? []).map((q) => ({
          name: q.name,
          in: "query",
          required: false,
          description: q.description,
          schema: { type: "string", ...(q.pattern ? { pattern: q.pattern } : {}) },
        })),
        ...(op.headers ?? []).map((h) => ({
          name: h.name,
          in: "header",
          required: false,
          description: h.description,
          schema: { type: "string" },
        })),
        {
          name: "X-Request-Id",
          in: "header",
          required: false,
          description: "Correlation id (returned; generated when absent)",
          schema: { type: "string", maxLength: 128 },
        },
      ],
      responses,
    };
    if (op.requestBody) {
      operation.requestBody = {
        required: op.requestBody.required,
        content: {
          "application/json": { schema: ref(op.requestBody.schema) },
          "application/vnd.oracle.resource+json": { schema: ref(op.requestBody.schema) },
        },
      };
    }
    paths[op.path] ??= {};
    (paths[op.path] as Record<string, unknown>)[op.method] = operation;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "ESS callback gateway",
      version: info.version,
      description:
        "Answers Oracle Enterprise Scheduler's asynchronous-job callback and check-in, and the scheduler's registration, " +
        "reads, cancel and forceCancel, webhook subscriptions and event stream. " +
        "Roles: job (executionStatus, checkInCancelling), scheduler (registration, read, cancel, forceCancel, subscribe, events), admin (everything).",
    },
    ...(info.serverUrl ? { servers: [{ url: info.serverUrl }] } : {}),
    tags: [
      { name: "job", description: "Called by the running job (role job)" },
      { name: "scheduler", description: "Called by the scheduler (role scheduler)" },
      { name: "operations", description: "Probes (no credentials)" },
    ],
    paths,
    components: {
      schemas,
      securitySchemes: {
        basicAuth: { type: "http", scheme: "basic" },
        bearerAuth: { type: "http", scheme: "bearer" },
      },
    },
  };
}
