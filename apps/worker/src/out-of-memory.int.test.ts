import type { CallbackJob } from "@ess/contract";
import { CallbackQueues, createRedis, DEFAULT_LIMITS, DeadLetters, Keys, RequestStore } from "@ess/store";
import { eventually, RedisServer, requireRedisServer } from "@ess/testing";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CallbackWorker, createWorker } from "./worker.js";

// A private redis-server: the test sets maxmemory, which must not reach any other suite.
let server: RedisServer;
let redis: Redis;
let workerRedis: Redis;
let admin: Redis;
let store: RequestStore;
let queues: CallbackQueues;
let deadLetters: DeadLetters;
let worker: CallbackWorker;
const warnings: string[] = [];
let fillOnApply = 0;

// its own redis-server (CONFIG SET maxmemory or a restart must not reach other suites)
const bin = requireRedisServer("worker out-of-memory suite");

beforeAll(async () => {
  if (!bin) return;
  server = await new RedisServer(bin).start();
  redis = createRedis(server.url, "tool");
  workerRedis = createRedis(server.url, "worker");
  admin = createRedis(server.url, "tool");
  const keys = new Keys("oom", 1);
  store = new RequestStore(redis, keys, DEFAULT_LIMITS);
  // two attempts only: an OOM that spent attempts would dead-letter the callback at once
  queues = new CallbackQueues(redis, keys, { attempts: 2, backoffMs: 50 });
  deadLetters = new DeadLetters(redis, keys, (p, name) => queues.queue(p, name));
  worker = createWorker({
    connection: workerRedis,
    store,
    queues,
    deadLetters,
    partitions: [0],
    concurrency: 1,
    gapTimeoutMs: 60000,
    lockMs: 5000,
    stalledIntervalMs: 2000,
    sweepIntervalMs: 200,
    deadLetterRetentionMs: 86400_000,
    log: { debug() {}, info() {}, warn: (_o, msg) => warnings.push(msg ?? ""), error() {} },
    // Redis fills up between the job's fetch and its apply
    beforeApply: async () => {
      if (fillOnApply-- > 0) await admin.config("SET", "maxmemory", "1");
    },
  });
});

afterAll(async () => {
  if (!bin) return;
  await admin?.config("SET", "maxmemory", "0");
  await worker?.close(5000);
  await queues?.close();
  await Promise.all([redis?.quit(), workerRedis?.quit(), admin?.quit()]);
  await server?.stop();
});

describe.skipIf(!bin)("worker: Redis at maxmemory during apply", () => {
  it("delays the job without spending its attempts, and applies it once memory is freed", async () => {
    const id = "424242";
    await store.register(id, "h", {});
    const a = await store.admit(id, "h", "UPDATE");
    if (a.kind !== "admitted") throw new Error("not admitted");
    fillOnApply = 1;
    const job: CallbackJob = {
      v: 1,
      requestId: id,
      seq: a.seq,
      execution: a.execution,
      status: "UPDATE",
      acceptedAt: 1,
    };
    await queues.add(a.partition, job);

    // refused whole: the job is delayed with no attempt spent, nothing applied
    const queue = queues.queue(a.partition);
    const delayedMsg = "Redis is full (maxmemory); job delayed, will retry";
    await eventually(async () => warnings.includes(delayedMsg), 15000, "job delayed");
    const jobId = `${id}-${a.seq}`;
    expect((await queue.getJob(jobId))?.attemptsMade).toBe(0);
    expect((await store.read(id))?.fields.applied).toBe("0");
    // still full: it keeps coming back and being delayed, more often than its 2 attempts, never failing
    await eventually(async () => warnings.filter((w) => w === delayedMsg).length >= 4, 15000, "delayed again");
    const stillDelayed = await queue.getJob(jobId);
    expect(stillDelayed?.attemptsMade).toBe(0);
    expect(await stillDelayed?.isFailed()).toBe(false);
    expect(await queue.getFailedCount()).toBe(0);
    expect((await store.read(id))?.fields.applied).toBe("0");

    await admin.config("SET", "maxmemory", "0");
    await eventually(async () => (await store.read(id))?.fields.applied === "1", 20000, "applied after memory freed");
    const history = (await store.read(id))?.history.filter((h) => h.outcome !== "registered") ?? [];
    expect(history.map((h) => [h.seq, h.outcome])).toEqual([[1, "applied"]]);
    // the job finished by itself: removed on completion, nothing failed or dead-lettered
    expect(await queue.getFailedCount()).toBe(0);
    expect(await deadLetters.count()).toBe(0);
  });
});
