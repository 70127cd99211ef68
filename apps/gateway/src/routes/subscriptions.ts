import type { API_ROUTES } from "@ess/contract";
import { WEBHOOK_QUEUE } from "@ess/store";
import type { RouteHandlers } from "./bind.js";
import { webhookStore } from "./scheduler.js";

/** Default rotation window when WEBHOOK_ROTATION_GRACE_SECONDS is not wired: one day. */
const DEFAULT_GRACE_MS = 86400000;

/**
 * Webhook subscriptions of a request (scheduler role): list them, rotate a secret, read the delivery
 * log, redeliver one event. Subscribing itself is ESS's `.../subscribe` (routes/scheduler.ts).
 */
export const subscriptionHandlers: RouteHandlers<
  Pick<typeof API_ROUTES, "listSubscriptions" | "getSubscription" | "getDeliveries" | "rotateSecret" | "redeliver">
> = {
  listSubscriptions: async (c, { params: { requestId } }) => {
    const items = await webhookStore(c).list(requestId);
    return c.json({ requestId, items, count: items.length });
  },
  getSubscription: async (c, { params: { requestId, subscriptionId } }) => {
    return c.json(await webhookStore(c).require(requestId, subscriptionId));
  },
  getDeliveries: async (c, { params: { requestId, subscriptionId }, query }) => {
    const store = webhookStore(c);
    const subscription = await store.require(requestId, subscriptionId);
    const items = await store.deliveries(requestId, subscriptionId, query.limit ?? store.logLimit);
    return c.json({ subscription, items, count: items.length });
  },
  rotateSecret: async (c, { params: { requestId, subscriptionId }, body }) => {
    const grace =
      body.graceSeconds !== undefined
        ? body.graceSeconds * 1000
        : (c.get("deps").scheduler?.webhookRotationGraceMs ?? DEFAULT_GRACE_MS);
    const r = await webhookStore(c).rotate(requestId, subscriptionId, grace, body.secret);
    return c.json({
      requestId,
      subscriptionId,
      // answered once; stored only encrypted
      secret: r.secret,
      previousSecretValidUntil:
        r.previousSecretValidUntil === null ? null : new Date(r.previousSecretValidUntil).toISOString(),
    });
  },
  redeliver: async (c, { params: { requestId, subscriptionId }, body }) => {
    const { queues } = c.get("deps");
    const r = await webhookStore(c).redeliver(requestId, subscriptionId, body.eventId, (p) =>
      queues.queue(p, WEBHOOK_QUEUE),
    );
    return c.json({ requestId, subscriptionId, eventId: body.eventId, seq: r.seq, jobId: r.jobId }, 202);
  },
};
