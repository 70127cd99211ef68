import { STATE_NAMES } from "@ess/domain";
import { z } from "zod";
import { subscribeBodySchema } from "./scheduler.js";
import { PARAM_TYPES } from "./schemas.js";

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

/**
 * 200 answer of GET /ess/rest/scheduler/v1/requests/{requestId} (ESS field names, never the handle);
 * `fields` / `excludeFields` keep or drop fields.
 */
export const requestDetailsSchema = z.object({
  requestId: z.number().int().positive(),
  state: stateSchema,
  stateDescription: z.string(),
  stateChangeTime: isoOrNull.meta({ description: "When the request entered its current state (our addition)" }),
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
  isHoldable: z
    .literal(false)
    .meta({ description: "ESS's hold does not apply to an asynchronous execution: always false" }),
  schedule: z.null().meta({ description: "ESS schedules do not apply here: always null" }),
  submissionTime: isoOrNull.meta({ description: "First registration" }),
  processStartTime: isoOrNull,
  processEndTime: isoOrNull,
  completedTime: isoOrNull,
  elapsedTime: z.number().nullable(),
  pausedState: z.string().nullable(),
  lastCheckInTime: isoOrNull,
  jobDefinitionId: z.string().nullable(),
  application: z.string().nullable(),
  submitter: z.string().nullable(),
  description: z.string().nullable(),
  priority: z.number().int().nullable(),
  requestType: z.string().nullable(),
  requestParameters: z
    .array(
      z.object({ name: z.string(), paramType: z.enum(PARAM_TYPES), value: z.string(), scope: z.string().optional() }),
    )
    .nullable(),
  links: z.array(linkSchema),
  history: z.array(z.record(z.string(), z.unknown())),
});

/**
 * 200 answer of GET /ess/rest/scheduler/v1/requests: one page of RequestDetails (without history;
 * only the selected fields with `fields` / `excludeFields`), and a `next` link while more may match.
 */
export const requestListSchema = z.object({
  items: z.array(requestDetailsSchema.omit({ history: true }).partial()),
  count: z.number().int().min(0),
  hasMore: z.boolean(),
  limit: z.number().int().min(1),
  links: z.array(linkSchema).meta({ description: "self, and next (same query, the opaque cursor) while hasMore" }),
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
