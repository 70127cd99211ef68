import { parseOrThrow, redeliverBodySchema, rotateSecretBodySchema } from "@ess/contract";
import { WEBHOOK_QUEUE } from "@ess/store";
import { Hono } from "hono";
import { z } from "zod";
import { readJson, requireJsonMediaType, requireRequestId } from "../body.js";
import type { AppEnv } from "../env.js";
import { methodNotAllowed } from "./method.js";
import { webhookStore } from "./scheduler.js";

const BASE = "/gateway/v1/requests/:requestId/subscriptions";
const ONE = `${BASE}/:subscriptionId`;
/** Default rotation window when WEBHOOK_ROTATION_GRACE_SECONDS is not wired: one day. */
const DEFAULT_GRACE_MS = 86400000;

const subscriptionIdSchema = z.string().regex(/^[0-9a-f]{16}$/, "subscriptionId must be 16 hex digits");
const deliveriesQuerySchema = z.strictObject({ limit: z.coerce.number().int().min(1).max(10000).optional() });

function ids(requestId: string, subscriptionId: string) {
  return { requestId: requireRequestId(requestId), subId: parseOrThrow(subscriptionIdSchema, subscriptionId) };
}

/**
 * Webhook subscriptions of a request (scheduler role): list them, rotate a secret, read the delivery
 * log, redeliver one event. Subscribing itself is ESS's `.../subscribe` (routes/scheduler.ts).
 */
export const subscriptionRoutes = new Hono<AppEnv>()
  .get(BASE, async (c) => {
    const requestId = requireRequestId(c.req.param("requestId"));
    const items = await webhookStore(c).list(requestId);
    return c.json({ requestId, items, count: items.length });
  })
  .all(BASE, methodNotAllowed("GET"))
  .post(`${ONE}/rotate`, async (c) => {
    const { requestId, subId } = ids(c.req.param("requestId"), c.req.param("subscriptionId"));
    requireJsonMediaType(c);
    const body = parseOrThrow(rotateSecretBodySchema, await readJson(c, c.get("deps").maxBodyBytes));
    const grace =
      body.graceSeconds !== undefined
        ? body.graceSeconds * 1000
        : (c.get("deps").scheduler?.webhookRotationGraceMs ?? DEFAULT_GRACE_MS);
    const r = await webhookStore(c).rotate(requestId, subId, grace, body.secret);
    return c.json({
      requestId,
      subscriptionId: subId,
      // answered once; stored only encrypted
      secret: r.secret,
      previousSecretValidUntil:
        r.previousSecretValidUntil === null ? null : new Date(r.previousSecretValidUntil).toISOString(),
    });
  })
  .all(`${ONE}/rotate`, methodNotAllowed("POST"))
  .get(`${ONE}/deliveries`, async (c) => {
    const { requestId, subId } = ids(c.req.param("requestId"), c.req.param("subscriptionId"));
    const q = parseOrThrow(deliveriesQuerySchema, c.req.query());
    const store = webhookStore(c);
    const subscription = await store.require(requestId, subId);
    const items = await store.deliveries(requestId, subId, q.limit ?? store.logLimit);
    return c.json({ subscription, items, count: items.length });
  })
  .all(`${ONE}/deliveries`, methodNotAllowed("GET"))
  .post(`${ONE}/redeliver`, async (c) => {
    const { requestId, subId } = ids(c.req.param("requestId"), c.req.param("subscriptionId"));
    requireJsonMediaType(c);
    const body = parseOrThrow(redeliverBodySchema, await readJson(c, c.get("deps").maxBodyBytes));
    const { queues } = c.get("deps");
    const r = await webhookStore(c).redeliver(requestId, subId, body.eventId, (p) => queues.queue(p, WEBHOOK_QUEUE));
    return c.json({ requestId, subscriptionId: subId, eventId: body.eventId, seq: r.seq, jobId: r.jobId }, 202);
  })
  .all(`${ONE}/redeliver`, methodNotAllowed("POST"))
  .get(ONE, async (c) => {
    const { requestId, subId } = ids(c.req.param("requestId"), c.req.param("subscriptionId"));
    return c.json(await webhookStore(c).require(requestId, subId));
  })
  .all(ONE, methodNotAllowed("GET"));
