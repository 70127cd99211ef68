import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { cloudEventSchema, newWebhookSecret, WEBHOOK_HEADERS, WebhookAddressPolicy } from "@ess/contract";
import { createRedis, SchedulerStore, WEBHOOK_QUEUE, WebhookStore } from "@ess/store";
import { eventually } from "@ess/testing";
import { newRequestId, testSecretBox, useTestContext } from "@ess/testing/context";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWebhooks, WEBHOOK_GROUP, type Webhooks } from "./webhooks.js";

const ctx = useTestContext({ partitions: 2 });
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const hooks = new WebhookStore(ctx.store, testSecretBox);

interface Received {
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
  answered: number;
}

let server: Server;
let base: string;
const received: Received[] = [];
/** path → statuses to answer, in order (then 200) */
const script = new Map<string, number[]>();
let webhooks: Webhooks;
const connection = createRedis(ctx.url, "worker");

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => {
      body += d.toString();
    });
    req.on("end", () => {
      const path = req.url ?? "";
      const answered = script.get(path)?.shift() ?? 200;
      received.push({ path, headers: req.headers, body, answered });
      res.statusCode = answered;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  webhooks = startWebhooks({
    connection,
    store: ctx.store,
    partitions: [0, 1],
    webhooks: hooks,
    gapTimeoutMs: 30000,
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
  await new Promise((r) => server.close(r));
});

const scheduler = new SchedulerStore(ctx.store);

/** Every value under the test's prefix, as raw strings: hashes, lists, sets, sorted sets, streams, strings. */
async function everythingInRedis(): Promise<string> {
  const out: string[] = [];
  let cursor = "0";
  do {
    const [next, keys] = await ctx.redis.scan(cursor, "MATCH", `${ctx.prefix}:*`, "COUNT", 1000);
    cursor = next;
    for (const key of keys) {
      const type = await ctx.redis.type(key);
      if (type === "hash") out.push(JSON.stringify(await ctx.redis.hgetall(key)));
      else if (type === "list") out.push(...(await ctx.redis.lrange(key, 0, -1)));
      else if (type === "set") out.push(...(await ctx.redis.smembers(key)));
      else if (type === "zset") out.push(...(await ctx.redis.zrange(key, 0, "-1")));
      else if (type === "stream") out.push(JSON.stringify(await ctx.redis.xrange(key, "-", "+")));
      else if (type === "string") out.push((await ctx.redis.get(key)) ?? "");
    }
  } while (cursor !== "0");
  return out.join("\n");
}

describe("webhook deliveries", () => {
  it("POSTs each state change as a CloudEvent signed the Standard Webhooks way with the subscription's secret", async () => {
    const id = newRequestId();
    await ctx.store.register(id, "h", {});
    const { secret, subscription } = await hooks.subscribe(id, `${base}/a/${id}`);
    expect(secret).toMatch(/^whsec_/);
    await scheduler.cancel(id);
    await scheduler.forceCancel(id, 0);
    const got = await eventually(async () => {
      const mine = received.filter((r) => r.path === `/a/${id}`);
      return mine.length >= 2 && mine;
    });
    const verifier = new Webhook(secret ?? "");
    const events = got.map((r) => {
      // the reference library verifies id, timestamp (seconds, within 5 minutes) and signature
      const payload = verifier.verify(r.body, r.headers as Record<string, string>);
      expect(() => new Webhook(newWebhookSecret()).verify(r.body, r.headers as Record<string, string>)).toThrow();
      expect(r.headers["content-type"]).toBe("application/cloudevents+json");
      expect(r.headers[WEBHOOK_HEADERS.timestamp]).toMatch(/^[0-9]{10}$/);
      return cloudEventSchema.parse(payload);
    });
    expect(events.map((e) => e.data.event)).toEqual(["REQUEST_CANCELLING", "REQUEST_CANCELLED"]);
    // register was seq 1, before the subscription: the subscription hears of 2 and 3
    expect(subscription.since).toBe(1);
    expect(events.map((e) => e.data.seq)).toEqual([2, 3]);
    expect(events[0]).toMatchObject({ subject: id, type: "ess.request.cancelling", data: { state: "CANCELLING" } });
    expect(got[0]?.headers[WEBHOOK_HEADERS.id]).toBe(events[0]?.id);
  });

  it("uses the caller's secret; stores it only encrypted (no secret readable in Redis)", async () => {
    const id = newRequestId();
    await ctx.store.register(id, "h", {});
    const mine = newWebhookSecret();
    const generated = await hooks.subscribe(id, `${base}/own-gen/${id}`);
    const given = await hooks.subscribe(id, `${base}/own/${id}`, mine);
    expect(given.secret).toBe(mine);
    // a second subscribe of the same URL does not answer the secret again
    expect((await hooks.subscribe(id, `${base}/own/${id}`)).secret).toBeUndefined();
    await scheduler.cancel(id);
    const got = await eventually(async () => received.find((r) => r.path === `/own/${id}`));
    expect(new Webhook(mine).verify(got.body, got.headers as Record<string, string>)).toBeTruthy();
    const raw = await everythingInRedis();
    for (const s of [mine, generated.secret ?? "-"]) {
      expect(raw).not.toContain(s);
      expect(raw).not.toContain(s.slice("whsec_".length));
      expect(raw).not.toContain(Buffer.from(s.slice("whsec_".length), "base64").toString("hex"));
    }
    expect(raw).toMatch(/"secret":"v1\./);
  });

  it("retries after the receiver failed once, with the same webhook-id and body", async () => {
    const id = newRequestId();
    await ctx.store.register(id, "h", {});
    script.set(`/flaky/${id}`, [503]);
    await hooks.subscribe(id, `${base}/flaky/${id}`);
    await scheduler.cancel(id);
    const got = await eventually(async () => {
      const mine = received.filter((r) => r.path === `/flaky/${id}`);
      return mine.length >= 2 && mine;
    });
    expect(got.map((r) => r.answered)).toEqual([503, 200]);
    expect(got[0]?.headers[WEBHOOK_HEADERS.id]).toBe(got[1]?.headers[WEBHOOK_HEADERS.id]);
    expect(got[0]?.body).toBe(got[1]?.body);
  });

  it("dead-letters a delivery that failed all its attempts, then delivers the next event; a replay delivers it again", async () => {
    const id = newRequestId();
    await ctx.store.register(id, "h", {});
    script.set(`/down/${id}`, [500, 500]);
    const { subscription } = await hooks.subscribe(id, `${base}/down/${id}`);
    await scheduler.cancel(id);
    await scheduler.forceCancel(id, 0);
    const dead = await eventually(async () => {
      const page = await ctx.deadLetters.list({ partition: ctx.keys.partition(id) });
      return page.items.find((e) => (e.payload as { url?: string }).url === `${base}/down/${id}`);
    });
    expect(dead).toMatchObject({
      queue: WEBHOOK_QUEUE,
      attempts: 2,
      reason: "attempts-exhausted",
      requestId: id,
      seq: 2,
    });
    expect(dead.error).toMatch(/500/);
    // the dead-lettered seq 2 no longer holds back seq 3
    const after = await eventually(async () => received.find((r) => r.path === `/down/${id}` && r.answered === 200));
    expect(JSON.parse(after.body).data.seq).toBe(3);
    // the receiver is back: the replay delivers seq 2 again (late: the receiver tells by seq)
    expect(await ctx.deadLetters.replay(dead.id)).toBe("replayed");
    const replayed = await eventually(async () =>
      received.find((r) => r.path === `/down/${id}` && r.answered === 200 && JSON.parse(r.body).data.seq === 2),
    );
    expect(replayed.body).toBe(received.find((r) => r.path === `/down/${id}`)?.body);
    // the attempt is logged once its answer is in
    const log = await eventually(async () => {
      const entries = await hooks.deliveries(id, subscription.id);
      return entries.length >= 5 && entries;
    });
    expect(log.map((e) => [e.seq, e.outcome])).toEqual([
      [2, "delivered"],
      [3, "delivered"],
      [2, "dead-lettered"],
      [2, "failed"],
      [2, "failed"],
    ]);
  });

  it("sends nothing for requests without subscribers, and nothing after unsubscribe", async () => {
    const id = newRequestId();
    await ctx.store.register(id, "h", {});
    await hooks.subscribe(id, `${base}/gone/${id}`);
    await hooks.unsubscribe(id, `${base}/gone/${id}`);
    const marker = newRequestId();
    await ctx.store.register(marker, "h", {});
    await hooks.subscribe(marker, `${base}/marker/${marker}`);
    await scheduler.cancel(id);
    await scheduler.cancel(marker);
    // the marker's delivery comes after the dispatcher has read the earlier event
    await eventually(async () => received.some((r) => r.path === `/marker/${marker}`));
    expect(received.filter((r) => r.path === `/gone/${id}`)).toEqual([]);
  });
});
