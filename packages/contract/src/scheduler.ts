import { EssError, parseRequestId } from "@ess/domain";
import { z } from "zod";
import { webhookSecretSchema } from "./webhook-signing.js";

/** Body of POST .../requests/{requestId}/checkInCancelling (ESS). */
export const checkInBodySchema = z.strictObject({
  requestExecutionContext: z.string().min(1, "requestExecutionContext must not be empty").max(600),
});

const callbackUrlSchema = z
  .string()
  .max(2048)
  .refine((u) => {
    try {
      const url = new URL(u);
      return (url.protocol === "http:" || url.protocol === "https:") && url.username === "" && url.password === "";
    } catch {
      return false;
    }
  }, "callbackUrl must be an absolute http or https URL without credentials");

/** Body of POST .../requests/{requestId}/subscribe: the URL, and optionally the signing secret to use. */
export const subscribeBodySchema = z.strictObject({
  callbackUrl: callbackUrlSchema,
  /** `whsec_…`; absent: the gateway generates one and answers it once */
  secret: webhookSecretSchema.optional(),
});

/** Body of DELETE .../requests/{requestId}/subscribe. */
export const unsubscribeBodySchema = z.strictObject({ callbackUrl: callbackUrlSchema });

/** Body of POST .../subscriptions/{subscriptionId}/rotate. */
export const rotateSecretBodySchema = z.strictObject({
  /** the new `whsec_…`; absent: generated and answered once */
  secret: webhookSecretSchema.optional(),
  /** how long the previous secret stays valid (its signature is sent too); absent: WEBHOOK_ROTATION_GRACE_SECONDS */
  graceSeconds: z
    .number()
    .int()
    .min(0)
    .max(30 * 86400)
    .optional(),
});

/** Body of POST .../subscriptions/{subscriptionId}/redeliver: the CloudEvent id of the event to send again. */
export const redeliverBodySchema = z.strictObject({
  eventId: z
    .string()
    .regex(/^[0-9]{1,20}-[0-9]{1,20}\/[0-9]{1,4}$/, "eventId must be an event id like 1732841234567-0/3"),
});

/** Version tag that starts every requestExecutionContext this project issues. */
export const EXECUTION_CONTEXT_PREFIX = "ess1";

/**
 * The requestExecutionContext string (our format): `ess1:<requestId>:<requestHandle>`. The id is
 * canonical decimal; the handle is everything after the second colon (it may hold colons itself).
 */
export function formatExecutionContext(requestId: string, requestHandle: string): string {
  return `${EXECUTION_CONTEXT_PREFIX}:${requestId}:${requestHandle}`;
}

/** Parses a requestExecutionContext; 400 INVALID_EXECUTION_CONTEXT naming what was wrong (never the handle). */
export function parseExecutionContext(context: string): { requestId: string; requestHandle: string } {
  const first = context.indexOf(":");
  const second = first < 0 ? -1 : context.indexOf(":", first + 1);
  if (first < 0 || second < 0 || context.slice(0, first) !== EXECUTION_CONTEXT_PREFIX) {
    throw new EssError(
      "INVALID_EXECUTION_CONTEXT",
      `requestExecutionContext must have the form '${EXECUTION_CONTEXT_PREFIX}:<requestId>:<requestHandle>'`,
    );
  }
  const requestId = parseRequestId(context.slice(first + 1, second));
  const requestHandle = context.slice(second + 1);
  if (requestId === null) {
    throw new EssError("INVALID_EXECUTION_CONTEXT", "the request id in requestExecutionContext is not a valid id");
  }
  if (requestHandle.length === 0) {
    throw new EssError("INVALID_EXECUTION_CONTEXT", "the request handle in requestExecutionContext is empty");
  }
  return { requestId, requestHandle };
}

/**
 * A webhook delivery job on a partition's webhook queue. `ordered`: the head of its subscription's
 * queue for the request (its completion releases the next event); `redelivery`: one event sent again
 * on request, outside the order.
 */
export const webhookJobSchema = z.strictObject({
  v: z.literal(2),
  kind: z.enum(["ordered", "redelivery"]),
  requestId: z.string(),
  subscriptionId: z.string(),
  url: z.string().url(),
  /** the event's id (CloudEvent id, webhook-id) */
  eventId: z.string(),
  /** the request's event sequence number */
  seq: z.number().int().min(1),
  /** the CloudEvent JSON exactly as POSTed */
  body: z.string(),
});
export type WebhookJob = z.output<typeof webhookJobSchema>;
