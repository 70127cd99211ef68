import { createHmac, timingSafeEqual } from "node:crypto";
import { EssError, parseRequestId } from "@ess/domain";
import { z } from "zod";

/** Body of POST .../requests/{requestId}/checkInCancelling (ESS). */
export const checkInBodySchema = z.strictObject({
  requestExecutionContext: z.string().min(1, "requestExecutionContext must not be empty").max(600),
});

/** Body of POST and DELETE .../requests/{requestId}/subscribe. */
export const subscribeBodySchema = z.strictObject({
  callbackUrl: z
    .string()
    .max(2048)
    .refine((u) => {
      try {
        const url = new URL(u);
        return (url.protocol === "http:" || url.protocol === "https:") && url.username === "" && url.password === "";
      } catch {
        return false;
      }
    }, "callbackUrl must be an absolute http or https URL without credentials"),
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

/** Webhook delivery headers (documented in the README). */
export const WEBHOOK_HEADERS = {
  /** ms since the epoch when the delivery was signed */
  timestamp: "X-ESS-Webhook-Timestamp",
  /** `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>` */
  signature: "X-ESS-Webhook-Signature",
  /** the same for every attempt of one delivery: receivers deduplicate on it */
  id: "X-ESS-Webhook-Id",
  /** the event name, e.g. REQUEST_SUCCEEDED */
  event: "X-ESS-Event",
} as const;

/** The signature header value of a webhook body. */
export function signWebhook(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

/** Checks a webhook signature in constant time (for receivers and tests). */
export function verifyWebhook(secret: string, timestamp: string, body: string, signature: string): boolean {
  const want = Buffer.from(signWebhook(secret, timestamp, body));
  const got = Buffer.from(signature);
  return want.length === got.length && timingSafeEqual(want, got);
}

/** A webhook delivery job on a partition's webhook queue. */
export const webhookJobSchema = z.strictObject({
  v: z.literal(1),
  url: z.string().url(),
  event: z.string(),
  /** the event JSON exactly as POSTed */
  body: z.string(),
});
export type WebhookJob = z.output<typeof webhookJobSchema>;
