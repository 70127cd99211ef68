import { verifyWebhook, WEBHOOK_HEADERS, WebhookAddressPolicy } from "@ess/contract";
import { createRedis, SchedulerStore, WEBHOOK_QUEUE } from "@ess/store";
import { eventually, type RecordingServer, startRecordingServer } from "@ess/testing";
import { newRequestId, useTestContext } from "@ess/testing/context";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWebhooks, WEBHOOK_GROUP, type Webhooks } from "./webhooks.js";

const ctx = useTestContext({ partitions: 2 });
const SECRET = "test-secret-0123456789";
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

let receiver: RecordingServer;
let base: string;
/** path → statuses to answer, in order (then 200) */
const script = new Map<string, number[]>();
let webhooks: Webhooks;
const connection = createRedis(ctx.url, "worker");

beforeAll(async () => {
  receiver = await startRecordingServer((r) => script.get(r.path)?.shift() ?? 200);
  base = receiver.url;
  webhooks = startWebhooks({
    connection,
    store: ctx.store,
    partitions: [0, 1],
    secret: SECRET,
    attempts: 2,
    backoffMs: 50,
    timeoutMs: 2000,
    concurrency: 4,
    log: quiet,
    consumer: "test",
    deadLetters: ctx.deadLetters,
    // the receiver is on loopback, which the default policy refuses: opened explicitly
    policy: new WebhookAddressPolicy("127.0.0.1"),
  });
  // the dispatcher's consumer groups exist before the first event of the tests
  await eventually(async () => {
    for (const p of [0, 1]) {
      const groups = (await ctx.redis.xinfo("GROUPS", ctx.keys.events(p)).catch(() => [])) as unknown[][];
      if (!groups.some((g) => g.includes(WEBHOOK_GROUP))) return false;
    }
    return true;
  });
});

afterAll(async () => {
  await webhooks.close();
  await connection.quit();
  await receiver.close();
});

const scheduler = new SchedulerStore(ctx.store);

describe("webhook subscriptions", () => {
  it("POSTs each state change of a subscribed request, signed over timestamp and body", async () => {
    const id = newRequestId();
    await ctx.store.register(id, "h", {});
    await scheduler.subscribe(id, `${base}/a/${id}`);
    await scheduler.cancel(id);
    await scheduler.forceCancel(id, 0);
    const got = await eventually(async () => {
      const mine = receiver.received.filter((r) => r.path === `/a/${id}`);
      return mine.length >= 2 && mine;
    });
    expect(got.map((r) => JSON.parse(r.body).event)).toEqual(["REQUEST_CANCELLING", "REQUEST_CANCELLED"]);
    for (const r of got) {
      const ts = String(r.headers[WEBHOOK_HEADERS.timestamp.toLowerCase()]);
      const sig = String(r.headers[WEBHOOK_HEADERS.signature.toLowerCase()]);
      expect(sig).toMatch(/^sha256=[0-9a-f]{64}$/);
      expect(verifyWebhook(SECRET, ts, r.body, sig)).toBe(true);
      expect(verifyWebhook("another-secret-000000", ts, r.body, sig)).toBe(false);
      expect(verifyWebhook(SECRET, String(Number(ts) + 1), r.body, sig)).toBe(false);
      expect(r.headers["content-type"]).toBe("application/json");
    }
    expect(JSON.parse(got[0]?.body ?? "{}")).toMatchObject({ requestId: Number(id), state: "CANCELLING" });
  });

  it("retries after the receiver failed once, with the same delivery id", async () => {
    const id = newRequestId();
    await ctx.store.register(id, "h", {});
    script.set(`/flaky/${id}`, [503]);
    await scheduler.subscribe(id, `${base}/flaky/${id}`);
    await scheduler.cancel(id);
    const got = await eventually(async () => {
      const mine = receiver.received.filter((r) => r.path === `/flaky/${id}`);
      return mine.length >= 2 && mine;
    });
    expect(got.map((r) => r.answered)).toEqual([503, 200]);
    expect(got[0]?.headers[WEBHOOK_HEADERS.id.toLowerCase()]).toBe(got[1]?.headers[WEBHOOK_HEADERS.id.toLowerCase()]);
    expect(got[0]?.body).toBe(got[1]?.body);
  });

  it("dead-letters a delivery that failed all its attempts; a replay delivers it again", async () => {
    const id = newRequestId();
    await ctx.store.register(id, "h", {});
    script.set(`/down/${id}`, [500, 500, 500]);
    await scheduler.subscribe(id, `${base}/down/${id}`);
    await scheduler.cancel(id);
    const dead = await eventually(async () => {
      const page = await ctx.deadLetters.list({ partition: ctx.keys.partition(id) });
      return page.items.find((e) => (e.payload as { url?: string }).url === `${base}/down/${id}`);
    });
    expect(dead).toMatchObject({ queue: WEBHOOK_QUEUE, attempts: 2, reason: "attempts-exhausted" });
    expect(dead.error).toMatch(/500/);
    expect(receiver.received.filter((r) => r.path === `/down/${id}`)).toHaveLength(2);
    // the receiver is back: the replay delivers the same body again
    expect(await ctx.deadLetters.replay(dead.id)).toBe("replayed");
    await eventually(
      async () => receiver.received.filter((r) => r.path === `/down/${id}` && r.answered === 200).length === 1,
    );
  });

  it("sends nothing for requests without subscribers, and nothing after unsubscribe", async () => {
    const id = newRequestId();
    await ctx.store.register(id, "h", {});
    await scheduler.subscribe(id, `${base}/gone/${id}`);
    await scheduler.unsubscribe(id, `${base}/gone/${id}`);
    const marker = newRequestId();
    await ctx.store.register(marker, "h", {});
    await scheduler.subscribe(marker, `${base}/marker/${marker}`);
    await scheduler.cancel(id);
    await scheduler.cancel(marker);
    // the marker's delivery comes after the dispatcher has read the earlier event
    await eventually(async () => receiver.received.some((r) => r.path === `/marker/${marker}`));
    expect(receiver.received.filter((r) => r.path === `/gone/${id}`)).toEqual([]);
  });
});
