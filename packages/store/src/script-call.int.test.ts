import type { CallbackJob } from "@ess/contract";
import { RedisServer, requireRedisServer } from "@ess/testing";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Keys } from "./keys.js";
import { CallbackQueues } from "./queues.js";
import { createRedis } from "./redis.js";
import { DEFAULT_LIMITS, RequestStore } from "./store.js";

// apply-batch and admit-enqueue-batch are called by their SHA alone (callScriptFlat): a Redis that does not hold the script must
// still apply. On a private server: SCRIPT FLUSH must not reach other suites.
let server: RedisServer;
let redis: Redis;
let store: RequestStore;
let queues: CallbackQueues;

const bin = requireRedisServer("script call suite");

beforeAll(async () => {
  if (!bin) return;
  server = await new RedisServer(bin).start();
  redis = createRedis(server.url, "tool");
  store = new RequestStore(redis, new Keys("sc", 2), DEFAULT_LIMITS);
  queues = new CallbackQueues(redis, store.keys, { attempts: 3, backoffMs: 10 });
});

afterAll(async () => {
  if (!bin) return;
  await queues?.close();
  await redis?.quit();
  await server?.stop();
});

async function admitted(id: string): Promise<CallbackJob> {
  const a = await store.admit(id, "h", "UPDATE");
  if (a.kind !== "admitted") throw new Error("not admitted");
  return { v: 1, requestId: id, seq: a.seq, execution: a.execution, status: "UPDATE", acceptedAt: Date.now() };
}

describe.skipIf(!bin)("apply-batch on a Redis without the script cached", () => {
  it("applies on a server that never saw the script, and again after SCRIPT FLUSH", async () => {
    await store.register("7", "h", {});
    await store.register("8", "h", {});
    expect(await redis.script("EXISTS", "0000000000000000000000000000000000000000")).toEqual([0]);
    const first = await store.applyBatch([await admitted("7"), await admitted("8")]);
    expect(first.map((r) => r.result)).toEqual(["applied", "applied"]);
    await redis.script("FLUSH");
    const second = await store.applyBatch([await admitted("7")]);
    expect(second.map((r) => r.result)).toEqual(["applied"]);
    expect(await redis.hget(store.keys.request(store.keys.partition("7"), "7"), "applied")).toBe("2");
  });

  it("admit-enqueue-batch admits on a server that never saw the script, and again after SCRIPT FLUSH", async () => {
    await store.register("9", "h", {});
    const cb = (status: "UPDATE" | "SUCCESS") => ({ cb: { requestId: "9", handle: "h", status, acceptedAt: 1 } });
    expect(await store.admitAndEnqueueBatch(queues, [cb("UPDATE")])).toMatchObject([{ kind: "admitted", seq: 1 }]);
    await redis.script("FLUSH");
    expect(await store.admitAndEnqueueBatch(queues, [cb("SUCCESS")])).toMatchObject([{ kind: "admitted", seq: 2 }]);
  });
});
