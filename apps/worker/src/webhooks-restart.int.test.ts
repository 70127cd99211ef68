import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { newWebhookSecret, WebhookAddressPolicy } from "@ess/contract";
import {
  CallbackQueues,
  createRedis,
  DeadLetters,
  Keys,
  RequestStore,
  SecretBox,
  secretAad,
  subscriptionId,
  WebhookStore,
} from "@ess/store";
import { eventually, RedisServer, requireRedisServer } from "@ess/testing";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWebhooks, WEBHOOK_GROUP, type Webhooks } from "./webhooks.js";

// The dispatcher's consumer group is lost while it runs (Redis restarted without its data, or the group
// dropped): events written before the group is back must still be delivered (at least once).
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const keys = new Keys("restart", 1);
const box = SecretBox.fromKeyEncryptionKey("restart-test-kek-0123456789");

let redis: RedisServer;
let tool: Redis;
let connection: Redis;
let webhooks: Webhooks;
let queues: CallbackQueues;
let server: Server;
let base: string;
/** request id → deliveries received */
const received = new Map<string, number>();

// its own redis-server (CONFIG SET maxmemory or a restart must not reach other suites)
const bin = requireRedisServer("webhook restart suite");

beforeAll(async () => {
  if (!bin) return;
  redis = await new RedisServer(bin).start();
  tool = createRedis(redis.url, "tool");
  connection = createRedis(redis.url, "worker");
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => {
      body += d.toString();
    });
    req.on("end", () => {
      const id = (JSON.parse(body) as { subject: string }).subject;
      received.set(id, (received.get(id) ?? 0) + 1);
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const store = new RequestStore(connection, keys);
  queues = new CallbackQueues(connection, keys, { attempts: 1, backoffMs: 1 });
  webhooks = startWebhooks({
    connection,
    store,
    partitions: [0],
    webhooks: new WebhookStore(store, box),
    gapTimeoutMs: 30000,
    attempts: 3,
    backoffMs: 50,
    timeoutMs: 2000,
    concurrency: 4,
    log: quiet,
    consumer: "restart-test",
    deadLetters: new DeadLetters(connection, keys, (p, name) => queues.queue(p, name)),
    policy: new WebhookAddressPolicy("127.0.0.1"),
  });
  await groupExists();
});

afterAll(async () => {
  if (!bin) return;
  await webhooks?.close();
  await queues?.close();
  connection?.disconnect();
  tool?.disconnect();
  await new Promise((r) => server?.close(r));
  await redis?.stop();
});

async function groupExists() {
  await eventually(async () => {
    const groups = (await tool.xinfo("GROUPS", keys.events(0)).catch(() => [])) as unknown[][];
    return groups.some((g) => g.includes(WEBHOOK_GROUP));
  }, 30000);
}

let next = 5000;

/**
 * Writes `n` subscribed requests' events in one MULTI that starts with `lose` (the loss of the group):
 * whatever the dispatcher does meanwhile, every event is in the stream before its group is back.
 */
async function writeEventsAfter(lose: (m: ReturnType<Redis["multi"]>) => void, n: number): Promise<string[]> {
  const ids = Array.from({ length: n }, () => String(++next));
  const m = tool.multi();
  lose(m);
  for (const id of ids) {
    // a subscription as subscribe writes it (since 0: every event of the request), and the request's first event
    const url = `${base}/hook/${id}`;
    const sub = subscriptionId(url);
    const sealed = box.seal(newWebhookSecret(), secretAad(id, sub, "secret"));
    m.hset(keys.subscriptions(0, id), url, sub);
    m.hset(keys.subscription(0, id, sub), "url", url, "secret", sealed, "createdAt", "0", "since", "0", "next", "1");
    m.xadd(keys.events(0), "*", "event", "REQUEST_CANCELLED", "requestId", id, "state", "CANCELLED", "eventSeq", "1");
  }
  await m.exec();
  return ids;
}

/** One request subscribed and one event delivered the ordinary way (the dispatcher knows an entry). */
async function deliveredOnce(): Promise<string> {
  const [id] = await writeEventsAfter(() => {}, 1);
  await eventually(async () => received.get(id as string) === 1, 15000, "the first delivery");
  return id as string;
}

describe.skipIf(!bin)("webhook dispatcher after its consumer group is lost", () => {
  it("the group dropped (stream kept): the events written meanwhile are delivered, the earlier ones not again", async () => {
    const before = await deliveredOnce();
    const ids = await writeEventsAfter((m) => m.xgroup("DESTROY", keys.events(0), WEBHOOK_GROUP), 5);
    await eventually(async () => ids.every((id) => received.get(id) === 1), 15000, "deliveries after the drop");
    expect(received.get(before)).toBe(1);
  });

  it("FLUSHALL (Redis without its data): nothing written after it is skipped", async () => {
    await deliveredOnce();
    const ids = await writeEventsAfter((m) => m.flushall(), 5);
    await eventually(async () => ids.every((id) => received.get(id) === 1), 15000, "deliveries after FLUSHALL");
  });

  it("redis-server restarted without data: events written right after the restart are all delivered", async () => {
    await deliveredOnce();
    await redis.restart();
    const ids = await writeEventsAfter(() => {}, 5);
    await eventually(async () => ids.every((id) => (received.get(id) ?? 0) >= 1), 15000, "deliveries after restart");
    await groupExists();
  });
});
