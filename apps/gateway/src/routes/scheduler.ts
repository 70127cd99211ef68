import { type API_ROUTES, parseExecutionContext, refusalMessage, WebhookAddressPolicy } from "@ess/contract";
import { EssError } from "@ess/domain";
import { SchedulerStore, WebhookStore } from "@ess/store";
import type { Context } from "hono";
import { acceptCallback } from "../accept.js";
import type { AppEnv } from "../context.js";
import { requestHref } from "../details.js";
import type { RouteHandlers } from "./bind.js";
import { CANCEL_HEADER } from "./callback.js";

/** ESS's default quiet period before forceCancel: 30 minutes. */
export const DEFAULT_FORCE_CANCEL_QUIET_MS = 30 * 60000;

/** Without a configured allowlist: every inward address refused. */
const DEFAULT_WEBHOOK_POLICY = new WebhookAddressPolicy();

/** The webhook subscriptions of the deps; without a configured store, one that refuses new subscriptions (503). */
export function webhookStore(c: Context<AppEnv>): WebhookStore {
  const deps = c.get("deps");
  return deps.webhooks ?? new WebhookStore(deps.store, undefined);
}

/** The ESS answer to a successful state-changing POST: 200 with a `link` to the request. */
function linkAnswer(c: Context<AppEnv>, requestId: string, extra: Record<string, unknown>) {
  const href = requestHref(c, requestId);
  // requestId written by hand: an exact JSON integer past 2^53
  const rest = JSON.stringify({ ...extra, link: { href, rel: "self" } }).slice(1);
  return c.body(`{"requestId":${requestId},${rest}`, 200, { "content-type": "application/json" });
}

/**
 * The scheduler side of ESS REST v1 that touches execution: cancel, forceCancel, the job's
 * checkInCancelling, and webhook subscriptions (ess-semantics §4).
 */
export const schedulerHandlers: RouteHandlers<
  Pick<typeof API_ROUTES, "cancelRequest" | "forceCancelRequest" | "checkInCancelling" | "subscribe" | "unsubscribe">
> = {
  cancelRequest: async (c, { params: { requestId } }) => {
    const result = await new SchedulerStore(c.get("deps").store).cancel(requestId);
    return linkAnswer(c, requestId, { state: result.to, previousState: result.from });
  },
  forceCancelRequest: async (c, { params: { requestId } }) => {
    const { store, scheduler } = c.get("deps");
    const quiet = scheduler?.forceCancelQuietMs ?? DEFAULT_FORCE_CANCEL_QUIET_MS;
    const result = await new SchedulerStore(store).forceCancel(requestId, quiet);
    return linkAnswer(c, requestId, { state: result.to, previousState: result.from });
  },
  checkInCancelling: async (c, { params: { requestId }, body }) => {
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
  },
  subscribe: async (c, { params: { requestId }, body }) => {
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
  },
  unsubscribe: async (c, { params: { requestId }, body }) => {
    const removed = await webhookStore(c).unsubscribe(requestId, body.callbackUrl);
    return linkAnswer(c, requestId, { callbackUrl: body.callbackUrl, subscribed: false, removed });
  },
};
