import { newWebhookSecret } from "@ess/contract";
import { newRequestId, testSecretBox, useTestContext } from "@ess/testing/context";
import { describe, expect, it } from "vitest";
import { SchedulerStore } from "./scheduler.js";
import { subscriptionId, WebhookStore } from "./webhooks.js";

const ctx = useTestContext({ partitions: 2 });
const hooks = new WebhookStore(ctx.store, testSecretBox, 3);
const URL_A = "https://hooks.example/a";

describe("WebhookStore", () => {
  it("subscribe starts after the request's current event seq, answers the secret once; 404 for an unknown request", async () => {
    const id = newRequestId();
    await ctx.store.register(id, "h", {});
    await new SchedulerStore(ctx.store).cancel(id);
    const first = await hooks.subscribe(id, URL_A);
    expect(first).toMatchObject({ added: true, subscription: { id: subscriptionId(URL_A), since: 2, next: 3 } });
    expect(first.secret).toMatch(/^whsec_/);
    const again = await hooks.subscribe(id, URL_A, newWebhookSecret());
    expect(again.added).toBe(false);
    expect(again.secret).toBeUndefined();
    expect((await hooks.signingSecrets(id, first.subscription.id))?.secrets).toEqual([first.secret]);
    await expect(hooks.subscribe(newRequestId(), URL_A)).rejects.toMatchObject({ code: "REQUEST_NOT_FOUND" });
  });

  it("rotation: both secrets (newest first) within the window, only the new one after it; window 0 retires at once", async () => {
    const id = newRequestId();
    await ctx.store.register(id, "h", {});
    const { subscription, secret: s1 } = await hooks.subscribe(id, URL_A);
    const t = Date.now();
    const r = await hooks.rotate(id, subscription.id, 60000, undefined, t);
    expect(r.previousSecretValidUntil).toBe(t + 60000);
    expect((await hooks.signingSecrets(id, subscription.id, t + 59999))?.secrets).toEqual([r.secret, s1]);
    expect((await hooks.signingSecrets(id, subscription.id, t + 60000))?.secrets).toEqual([r.secret]);
    const given = newWebhookSecret();
    const r2 = await hooks.rotate(id, subscription.id, 0, given, t);
    expect(r2).toEqual({ secret: given, previousSecretValidUntil: null });
    expect((await hooks.signingSecrets(id, subscription.id, t))?.secrets).toEqual([given]);
    expect((await hooks.get(id, subscription.id))?.previousSecretValidUntil).toBeNull();
    await expect(hooks.rotate(id, "0123456789abcdef", 0)).rejects.toMatchObject({ code: "ROUTE_NOT_FOUND" });
  });

  it("the delivery log keeps the newest N attempts, newest first", async () => {
    const id = newRequestId();
    await ctx.store.register(id, "h", {});
    const { subscription } = await hooks.subscribe(id, URL_A);
    for (let seq = 1; seq <= 5; seq++) {
      await hooks.record(id, subscription.id, {
        at: seq,
        eventId: `${seq}-0/0`,
        seq,
        type: "REQUEST_RUNNING",
        kind: "ordered",
        attempt: 1,
        outcome: "delivered",
        status: 204,
        latencyMs: 1,
        error: null,
      });
    }
    expect((await hooks.deliveries(id, subscription.id)).map((a) => a.seq)).toEqual([5, 4, 3]);
    expect(await ctx.redis.llen(ctx.keys.deliveryLog(ctx.keys.partition(id), id, subscription.id))).toBe(3);
  });

  it("without a key-encryption key, subscribe and rotate answer 503 (no secret is ever stored in plain text)", async () => {
    const id = newRequestId();
    await ctx.store.register(id, "h", {});
    const keyless = new WebhookStore(ctx.store, undefined);
    await expect(keyless.subscribe(id, URL_A)).rejects.toMatchObject({ code: "UNAVAILABLE" });
    expect(await ctx.redis.exists(ctx.keys.subscriptions(ctx.keys.partition(id), id))).toBe(0);
  });
});
