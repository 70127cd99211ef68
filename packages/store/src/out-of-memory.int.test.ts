import { RedisServer, requireRedisServer } from "@ess/testing";
import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Keys } from "./keys.js";
import { createRedis, isOutOfMemory } from "./redis.js";
import { DEFAULT_LIMITS, RequestStore } from "./store.js";

// Real replies of a Redis at maxmemory (noeviction), on a private server: maxmemory must not reach
// any other suite.
let server: RedisServer;
let redis: Redis;
let store: RequestStore;
let queue: Queue;

// its own redis-server (CONFIG SET maxmemory or a restart must not reach other suites)
const bin = requireRedisServer("store out-of-memory suite");

beforeAll(async () => {
  if (!bin) return;
  server = await new RedisServer(bin).start();
  redis = createRedis(server.url, "tool");
  store = new RequestStore(redis, new Keys("full", 1), DEFAULT_LIMITS);
  queue = new Queue("q", { connection: createRedis(server.url, "worker"), prefix: "full:{p0}" });
  await store.register("7", "h", {});
  await queue.add("warm", {}, { jobId: "warm" });
  await redis.config("SET", "maxmemory", "1");
});

afterAll(async () => {
  if (!bin) return;
  await redis?.config("SET", "maxmemory", "0");
  await queue?.close();
  await redis?.quit();
  await server?.stop();
});

async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected a refusal");
}

describe.skipIf(!bin)("isOutOfMemory on real replies of a full Redis", () => {
  it("a plain write", async () => {
    expect(isOutOfMemory(await failure(redis.set("full:x", "1")))).toBe(true);
  });

  it("one of the project's scripts (flagged: refused before it runs)", async () => {
    expect(isOutOfMemory(await failure(store.admit("7", "h", "UPDATE")))).toBe(true);
    expect(await redis.hget("full:{p0}:req:7", "seq")).toBe("0");
  });

  it("BullMQ's add (its own script, without flags)", async () => {
    expect(isOutOfMemory(await failure(queue.add("cb", { a: 1 }, { jobId: "j1" })))).toBe(true);
  });

  it("a MULTI (every queued command is refused, reads too)", async () => {
    expect(isOutOfMemory(await failure(redis.multi().get("full:x").set("full:y", "1").exec()))).toBe(true);
  });

  it("reads outside a MULTI and the no-writes read script still work", async () => {
    expect((await store.read("7"))?.fields.state).toBe("RUNNING");
  });

  it("not for other errors", async () => {
    expect(isOutOfMemory(new Error("Connection is closed."))).toBe(false);
    expect(isOutOfMemory(await failure(redis.call("NOSUCHCOMMAND")))).toBe(false);
  });
});
