import { dropPrefix, testRedis, uniquePrefix } from "@ess/testing/context";
import { afterAll, describe, expect, it } from "vitest";
import { Keys } from "./keys.js";
import { defineScripts } from "./scripts.js";

const redis = defineScripts(testRedis("worker"));
const keys = new Keys(uniquePrefix(), 2);
const q = (name: string) => `${keys.jobPrefix(1)}${name}`;
afterAll(async () => {
  await dropPrefix(redis, keys.prefix);
  await redis.quit();
});

async function take(): Promise<unknown> {
  return redis.ess_takeIdleMarker(q("wait"), q("prioritized"), q("marker"));
}

describe("takeIdleMarker: a partition queue's wake-up marker, taken back only while no job waits", () => {
  it("takes the base marker of an empty queue and leaves the delayed jobs' marker", async () => {
    await redis.zadd(q("marker"), "0", "0", "1796000000000", "1");
    expect(await take()).toBe(1);
    expect(await redis.zrange(q("marker"), "0", "-1")).toEqual(["1"]);
    expect(await take()).toBe(0);
  });

  it("leaves it while a job waits, plain or prioritized", async () => {
    await redis.del(q("marker"));
    await redis.zadd(q("marker"), "0", "0");
    await redis.lpush(q("wait"), "job-1");
    expect(await take()).toBe(0);
    await redis.del(q("wait"));
    await redis.zadd(q("prioritized"), "1", "job-2");
    expect(await take()).toBe(0);
    expect(await redis.zrange(q("marker"), "0", "-1")).toEqual(["0"]);
    await redis.del(q("prioritized"));
    expect(await take()).toBe(1);
  });
});
