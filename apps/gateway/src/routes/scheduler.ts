import {
  checkInBodySchema,
  parseExecutionContext,
  parseOrThrow,
  refusalMessage,
  subscribeBodySchema,
  unsubscribeBodySchema,
  WebhookAddressPolicy,
} from "@ess/contract";
import { EssError } from "@ess/domain";
import { SchedulerStore, WebhookStore } from "@ess/store";
import { type Context, Hono } from "hono";
import { acceptCallback } from "../accept.js";
import { readJson, requireJsonMediaType, requireRequestId } from "../body.js";
import type { AppEnv } from "../env.js";
import { CANCEL_HEADER } from "./callback.js";
import { methodNotAllowed } from "./method.js";

/** ESS's default quiet period before forceCancel: 30 minutes. */
export const DEFAULT_FORCE_CANCEL_QUIET_MS = 30 * 60000;

const BASE = "/ess/rest/scheduler/v1/requests/:requestId";

/** Without a configured allowlist: every inward address refused. */
const DEFAULT_WEBHOOK_POLICY = new WebhookAddressPolicy();

/** The webhook subscriptions of the deps; without a configured store, one that refuses new subscriptions (503). */
export function webhookStore(c: Context<AppEnv>): WebhookStore {
  const deps = c.get("deps");
  return deps.webhooks ?? new WebhookStore(deps.store, undefined);
}

/** The ESS answer to a successful state-changing POST: 200 with a `link` to the request. */
function linkAnswer(c: Context<AppEnv>, requestId: string, extra: Record<string, unknown>) {
  const href = new URL(`/ess/rest/scheduler/v1/requests/${requestId}`, c.req.url).href;
  // requestId written by hand: an exact JSON integer past 2^53
  const rest = JSON.stringify({ ...extra, link: { href, rel: "self" } }).slice(1);
  return c.body(`{"requestId":${requestId},${rest}`, 200, { "content-type": "application/json" });
}

async function jsonBody<T>(c: Context<AppEnv>, schema: Parameters<typeof parseOrThrow>[0]): Promise<T> {
  requireJsonMediaType(c);
  return parseOrThrow(schema, await readJson(c, c.get("deps").maxBodyBytes)) as T;
}

/**
 * The scheduler side of ESS REST v1 that touches execution: cancel, forceCancel, the job's
 * checkInCancelling, and webhook subscriptions (ess-semantics §4).
 */
export const schedulerRoutes = new Hono<AppEnv>()
  .post(`${BASE}/cancel`, async (c) => {
    const requestId = requireRequestId(c.req.param("requestId"));
    const result = await new SchedulerStore(c.get("deps").store).cancel(requestId);
    return linkAnswer(c, requestId, { state: result.to, previousState: result.from });
  })
  .all(`${BASE}/cancel`, methodNotAllowed("POST"))
  .post(`${BASE}/forceCancel`, async (c) => {
    const { store, scheduler } = c.get("deps");
    const requestId = requireRequestId(c.req.param("requestId"));
    const quiet = scheduler?.forceCancelQuietMs ?? DEFAULT_FORCE_CANCEL_QUIET_MS;
    const result = await new SchedulerStore(store).forceCancel(requestId, quiet);
    return linkAnswer(c, requestId, { state: result.to, previousState: result.from });
  })
  .all(`${BASE}/forceCancel`, methodNotAllowed("POST"))
  .post(`${BASE}/checkInCancelling`, async (c) => {
    const requestId = requireRequestId(c.req.param("requestId"));
    const body = await jsonBody<{ requestExecutionContext: string }>(c, checkInBodySchema);
    const context = parseExecutionContext(body.requestExecutionContext);
    if (context.requestId !== requestId) {
      throw new EssError(
        "INVALID_EXECUTION_CONTEXT",
        `requestExecutionContext names request ${context.requestId}, not ${requestId}`,
      );
    }
    // The check-in goes through the very admit script of executionStatus (same 404/403 rules, one
    // copy of them) as an UPDATE: the worker applies it in order and records lastCheckInTime.
    const admit = await acceptCallback(c.get("deps"), {
      requestId,
      handle: context.requestHandle,
      status: "UPDATE",
      message: "checkInCancelling",
    });
    if (admit.cancelling) c.header(CANCEL_HEADER, "true");
    return c.body(admit.cancelling ? "true" : "false", 200, { "content-type": "application/json" });
  })
  .all(`${BASE}/checkInCancelling`, methodNotAllowed("POST"))
  .post(`${BASE}/subscribe`, async (c) => {
    const requestId = requireRequestId(c.req.param("requestId"));
    const body = await jsonBody<{ callbackUrl: string; secret?: string }>(c, subscribeBodySchema);
    // a URL aimed inward is refused here; a name is checked again on the address the worker connects to
    const refused = (c.get("deps").scheduler?.webhookPolicy ?? DEFAULT_WEBHOOK_POLICY).checkUrl(body.callbackUrl);
    if (refused) throw new EssError("INVALID_BODY", refusalMessage("callbackUrl", refused));
    const result = await webhookStore(c).subscribe(requestId, body.callbackUrl, body.secret);
    // the secret is answered once, when the subscription is made; it is stored only encrypted
    return linkAnswer(c, requestId, {
      callbackUrl: body.callbackUrl,
      subscribed: true,
      added: result.added,
      subscriptionId: result.subscription.id,
      ...(result.secret === undefined ? {} : { secret: result.secret }),
    });
  })
  .delete(`${BASE}/subscribe`, async (c) => {
    const requestId = requireRequestId(c.req.param("requestId"));
    const body = await jsonBody<{ callbackUrl: string }>(c, unsubscribeBodySchema);
    const removed = await webhookStore(c).unsubscribe(requestId, body.callbackUrl);
    return linkAnswer(c, requestId, { callbackUrl: body.callbackUrl, subscribed: false, removed });
  })
  .all(`${BASE}/subscribe`, methodNotAllowed("POST, DELETE"));
