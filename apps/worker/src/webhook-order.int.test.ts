import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { WebhookAddressPolicy } from "@ess/contract";
import { createRedis, deliveryJobId, SchedulerStore, WEBHOOK_QUEUE, WebhookStore } from "@ess/store";
import { eventually } from "@ess/testing";
import { newRequestId, testSecretBox, useTestContext } from "@ess/testing/context";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliveryOrder } from "./webhook-order.js";
import { startWebhooks, type Webhooks } from "./webhooks.js";

const ctx = useTestContext({ partitions: 1 });
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const hooks = new WebhookStore(ctx.store, testSecretBox);
const queue = ctx.queues.queue(0, WEBHOOK_QUEUE);
const GAP_MS = 5000;
const order = new DeliveryOrder(ctx.store, hooks, () => queue, { attempts: 3, backoffMs: 10, gapTimeoutMs: GAP_MS });
const body = (seq: number) => JSON.stringify({ id: `${seq}-0/0`, data: { seq } });

/** The seqs that have a delivery job for this subscription and request. */
async function jobSeqs(id: string, subId: string): Promise<number[]> {
  const out: number[] = [];
  for (let seq = 1; seq <= 10; seq++) if (await queue.getJob(deliveryJobId(id, subId, seq))) out.push(seq);
  return out;
}

async function subscribed(url: string) {
  const id = newRequestId();
  await ctx.store.register(id, "h", {});
  const { subscription } = await hooks.subscribe(id, url);
  return { id, subId: subscription.id };
}

describe("ordered delivery queue (per subscription, per request)", () => {
  it("only the head due next has a job: a later seq dispatched first waits for the earlier one", async () => {
    const { id, subId } = await subscribed("https://hooks.example/race");
    // two dispatchers raced: seq 3 arrives before seq 2
    await order.enqueue(0, id, subId, 3, body(3));
    expect(await jobSeqs(id, subId)).toEqual([]);
    await order.enqueue(0, id, subId, 2, body(2));
    expect(await jobSeqs(id, subId)).toEqual([2]);
    // a re-read of seq 2 adds nothing; a pump adds nothing
    await order.enqueue(0, id, subId, 2, body(2));
    await order.pump(0, id, subId);
    expect(await jobSeqs(id, subId)).toEqual([2]);
    await (await queue.getJob(deliveryJobId(id, subId, 2)))?.remove();
    await order.advance(0, id, subId, 2, body(2));
    expect(await jobSeqs(id, subId)).toEqual([3]);
    expect((await hooks.get(id, subId))?.next).toBe(3);
    // an event at or below `next` (already handled) is dropped, not delivered again
    await order.enqueue(0, id, subId, 1, body(1));
    expect(await ctx.redis.zrange(ctx.keys.deliveryQueue(0, id, subId), 0, "-1")).toEqual([body(3)]);
  });

  it("a missing seq holds back the later ones for GAP_TIMEOUT_MS, then is skipped and logged", async () => {
    const { id, subId } = await subscribed("https://hooks.example/gap");
    const t = Date.now();
    await order.enqueue(0, id, subId, 4, body(4));
    await order.pump(0, id, subId, t + GAP_MS - 1);
    expect(await jobSeqs(id, subId)).toEqual([]);
    await order.pump(0, id, subId, t + GAP_MS + 1000);
    expect(await jobSeqs(id, subId)).toEqual([4]);
    expect((await hooks.get(id, subId))?.next).toBe(4);
    const [logged] = await hooks.deliveries(id, subId);
    expect(logged).toMatchObject({ outcome: "skipped", seq: 2 });
    expect(logged?.error).toContain("events 2..3");
  });

  it("the sweep releases a head whose job was lost (a crash between advancing and adding the next job)", async () => {
    const { id, subId } = await subscribed("https://hooks.example/sweep");
    await ctx.redis.zadd(ctx.keys.deliveryQueue(0, id, subId), 2, body(2));
    await ctx.redis.sadd(ctx.keys.activeDeliveries(0), `${id} ${subId}`);
    expect(await jobSeqs(id, subId)).toEqual([]);
    await order.sweep(0);
    expect(await jobSeqs(id, subId)).toEqual([2]);
  });
});

describe("ordered delivery across a worker restart", () => {
  let server: Server;
  let base: string;
  let failing = true;
  const got: { seq: number; status: number }[] = [];
  const connection = createRedis(ctx.url, "worker");
  let running: Webhooks | undefined;
  const start = (consumer: string) =>
    startWebhooks({
      connection,
      store: ctx.store,
      partitions: [0],
      webhooks: hooks,
      gapTimeoutMs: 30000,
      attempts: 20,
      backoffMs: 200,
      timeoutMs: 2000,
      concurrency: 4,
      log: quiet,
      consumer,
      deadLetters: ctx.deadLetters,
      policy: new WebhookAddressPolicy("127.0.0.1"),
    });

  beforeAll(async () => {
    server = createServer((req, res) => {
      let text = "";
      req.on("data", (d: Buffer) => {
        text += d.toString();
      });
      req.on("end", () => {
        const status = failing ? 500 : 204;
        got.push({ seq: (JSON.parse(text) as { data: { seq: number } }).data.seq, status });
        res.statusCode = status;
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await running?.close();
    await connection.quit();
    await new Promise((r) => server.close(r));
  });

  it("a worker stopped while the head event is being retried: the next worker delivers it, then the rest, in order", async () => {
    running = start("first");
    const { id } = await subscribed(`${base}/restart`);
    const scheduler = new SchedulerStore(ctx.store);
    await ctx.store.register(id, "h", {});
    await ctx.store.register(id, "h", {});
    await scheduler.cancel(id);
    await eventually(async () => got.length >= 1, 15000, "the first failed attempt");
    await running.close();
    running = undefined;
    // nothing of the later events went out while the first one failed
    expect(new Set(got.map((g) => g.seq))).toEqual(new Set([2]));
    failing = false;
    running = start("second");
    const ok = await eventually(async () => {
      const delivered = got.filter((g) => g.status === 204);
      return delivered.length >= 3 && delivered;
    }, 30000);
    expect(ok.map((g) => g.seq)).toEqual([2, 3, 4]);
    // every failed attempt was of seq 2, before its success
    const firstOk = got.findIndex((g) => g.status === 204);
    expect(got.slice(0, firstOk).every((g) => g.seq === 2 && g.status === 500)).toBe(true);
  });
});
