import type { CallbackJob } from "@ess/contract";
import { dropPrefix, testRedis, uniquePrefix } from "@ess/testing/context";
import { type Job, type JobType, Worker } from "bullmq";
import { unpack } from "msgpackr";
import { afterAll, describe, expect, it } from "vitest";
import { Keys } from "./keys.js";
import { CallbackQueues, callbackJobOptions, JOB_CALLBACK, type QueueState } from "./queues.js";
import { waitReady } from "./redis.js";

const redis = testRedis("gateway");
const keys = new Keys(uniquePrefix(), 2);
const queues = new CallbackQueues(redis, keys, { attempts: 1, backoffMs: 10 });
const workers: Worker[] = [];
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
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

/** Every state Queue.getJobCounts counts, "waiting" (its other name of "wait") and "paused" (a list, as "wait") included. */
const STATES: QueueState[] = [
  "waiting",
  "wait",
  "active",
  "delayed",
  "failed",
  "completed",
  "paused",
  "prioritized",
  "waiting-children",
];

describe("queue counts without a Queue object", () => {
  it("equal what BullMQ's Queue.getJobCounts reports for every state, and name the oldest waiting job", async () => {
    await waitReady(redis);
    const ref = queues.ref(1, "counted");
    const queue = queues.of(ref);
    const empty = await queues.counts(ref, STATES);
    expect(empty.counts).toEqual(await queue.getJobCounts(...(STATES as JobType[])));
    expect(empty.oldestWaitingAt).toBeUndefined();

    // a worker that fetches by hand: one job completed, one failed, one left active
    const worker = new Worker(ref.name, null, { connection: testRedis("worker"), prefix: ref.prefix, autorun: false });
    workers.push(worker);
    const token = "counting";
    const take = async (): Promise<Job> => {
      const job = (await worker.getNextJob(token, { block: false })) as Job | undefined;
      if (!job) throw new Error("no job to take");
      return job;
    };
    await queue.add("done", { n: 1 }, { removeOnComplete: false });
    await (await take()).moveToCompleted("ok", token, false);
    await queue.add("broken", { n: 2 }, { removeOnFail: false });
    await (await take()).moveToFailed(new Error("broken"), token, false);
    await queue.add("busy", { n: 3 });
    await take();
    // waiting (the oldest has the earlier timestamp), delayed, prioritized
    await queue.add("older", { n: 4 }, { timestamp: 1_000 });
    await queue.add("newer", { n: 5 }, { timestamp: 2_000 });
    await queue.add("later", { n: 6 }, { delay: 60_000 });
    await queue.add("urgent", { n: 7 }, { priority: 3 });

    const read = await queues.counts(ref, STATES);
    expect(read.counts).toEqual(await queue.getJobCounts(...(STATES as JobType[])));
    expect(read.counts).toMatchObject({
      wait: 2,
      waiting: 2,
      active: 1,
      delayed: 1,
      failed: 1,
      completed: 1,
      prioritized: 1,
    });
    const [oldest] = await queue.getJobs(["wait"], 0, 0, true);
    expect(oldest?.name).toBe("older");
    expect(read.oldestWaitingAt).toBe(oldest?.timestamp);

    // paused: what BullMQ reports for a paused queue, also for a job added while paused
    await queue.pause();
    await queue.add("while paused", { n: 8 });
    const paused = await queues.counts(ref, STATES);
    expect(paused.counts).toEqual(await queue.getJobCounts(...(STATES as JobType[])));
    // a subset, in any order, as getJobCounts answers it
    const some = ["failed", "delayed", "wait"] as const;
    expect((await queues.counts(ref, some)).counts).toEqual(await queue.getJobCounts(...some));
  });
});

describe("the enqueue template without bullmq", () => {
  /** The keys and the encoded options BullMQ's Queue.add sends to its addStandardJob script for a callback. */
  async function whatQueueAddSends(q: CallbackQueues, p: number): Promise<{ keys: string[]; opts: Buffer }> {
    const queue = q.queue(p);
    const backend = (queue as unknown as { backend: { execCommand(c: unknown, n: string, a: unknown[]): unknown } })
      .backend;
    const original = backend.execCommand;
    let sent: unknown[] = [];
    backend.execCommand = function (client, name, args) {
      if (name === "addStandardJob") sent = args;
      return original.call(this, client, name, args);
    };
    try {
      // the job id the template carries ("1-1"; the script replaces it with each job's own)
      const job: CallbackJob = { v: 1, requestId: "1", seq: 1, execution: 1, status: "UPDATE", acceptedAt: 5 };
      await queue.add(JOB_CALLBACK, job, callbackJobOptions(job, q.policy));
    } finally {
      backend.execCommand = original;
    }
    expect(sent).toHaveLength(12);
    return { keys: sent.slice(0, 9) as string[], opts: sent[11] as Buffer };
  }

  it.each([
    { attempts: 1, backoffMs: 10 },
    { attempts: 25, backoffMs: 1500 },
  ])("has the keys and the options Queue.add sends (policy %o)", async (policy) => {
    await waitReady(redis);
    const q = new CallbackQueues(redis, new Keys(keys.prefix, 4), policy);
    try {
      for (const p of [0, 3]) {
        const template = q.template(p);
        const sent = await whatQueueAddSends(q, p);
        expect(template.keys).toEqual(sent.keys);
        expect(template.jobPrefix).toBe(q.queue(p).keys[""]);
        // what the admit scripts take: the options Queue.add packs, as JSON
        expect(JSON.parse(template.jsonOpts)).toEqual(unpack(sent.opts));
      }
    } finally {
      await q.close();
    }
  });
});
