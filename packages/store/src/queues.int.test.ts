import { dropPrefix, testRedis, uniquePrefix } from "@ess/testing/context";
import { afterAll, describe, expect, it } from "vitest";
import { Keys } from "./keys.js";
import { CallbackQueues } from "./queues.js";
import { waitReady } from "./redis.js";

const redis = testRedis("gateway");
const keys = new Keys(uniquePrefix(), 2);
const queues = new CallbackQueues(redis, keys, { attempts: 1, backoffMs: 10 });
afterAll(async () => {
  await queues.close();
  await dropPrefix(redis, keys.prefix);
  await redis.quit();
});

describe("CallbackQueues", () => {
  it("a queue whose connection setup failed is built anew on the next call, not kept failing", async () => {
    await waitReady(redis);
    // the gateway profile refuses commands on a closed connection: BullMQ's one-time setup fails
    const ended = new Promise((resolve) => redis.once("end", resolve));
    redis.disconnect();
    await ended;
    const broken = queues.queue(0);
    await expect(broken.waitUntilReady()).rejects.toThrow();
    await redis.connect();
    await waitReady(redis);
    const fresh = queues.queue(0);
    expect(fresh).not.toBe(broken);
    await fresh.add("probe", { n: 1 });
    expect((await fresh.getJobs(["waiting"])).map((j) => j.data)).toEqual([{ n: 1 }]);
    expect(queues.queue(0)).toBe(fresh);
  });
});
