import type { CallbackJob } from "@ess/contract";
import { newRequestId, useTestContext } from "@ess/testing/context";
import { type Job, Worker } from "bullmq";
import { afterAll, describe, expect, it } from "vitest";
import { CALLBACK_QUEUE, callbackJobId } from "./keys.js";

// admit-enqueue-11 folds BullMQ's addStandardJob into the admit script. These tests pin that a job it
// adds is the job Queue.add would add, and that a real BullMQ Worker treats both the same way.
const ctx = useTestContext({ partitions: 2 });
const workers: Worker[] = [];
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
});

async function registered(): Promise<string> {
  const id = newRequestId();
  await ctx.store.register(id, "handle", {});
  return id;
}

/** Admits and enqueues seq 1 of a request the old way: admit script, then BullMQ's Queue.add. */
async function viaQueueAdd(id: string, status: CallbackJob["status"], message?: string): Promise<CallbackJob> {
  const admit = await ctx.store.admit(id, "handle", status);
  if (admit.kind !== "admitted") throw new Error("not admitted");
  const job: CallbackJob = { v: 1, requestId: id, seq: admit.seq, execution: admit.execution, status, acceptedAt: 1 };
  if (message !== undefined) job.message = message;
  await ctx.queues.add(admit.partition, job);
  return job;
}

async function viaScript(id: string, status: CallbackJob["status"], message?: string) {
  return ctx.store.admitAndEnqueue(ctx.queues, { requestId: id, handle: "handle", status, message, acceptedAt: 1 });
}

async function jobHash(id: string, seq: number): Promise<Record<string, string>> {
  const p = ctx.keys.partition(id);
  return ctx.redis.hgetall(`${ctx.keys.jobPrefix(p)}${callbackJobId(id, seq)}`);
}

/** Both ids in partition 0 (so they share one queue), each registered. */
async function pairInPartition0(): Promise<[string, string]> {
  const ids: string[] = [];
  while (ids.length < 2) {
    const id = newRequestId();
    if (ctx.keys.partition(id) === 0) ids.push(id);
  }
  for (const id of ids) await ctx.store.register(id, "handle", {});
  return [ids[0]!, ids[1]!];
}

describe("admit-enqueue-11 adds the job Queue.add adds", () => {
  it("stores the same job hash fields, data and options (only ids and timestamps differ)", async () => {
    const [a, b] = await pairInPartition0();
    await viaQueueAdd(a, "WARNING", 'disk "almost" full\n');
    const res = await viaScript(b, "WARNING", 'disk "almost" full\n');
    expect(res).toMatchObject({ kind: "admitted", seq: 1, execution: 1 });

    const fromQueue = await jobHash(a, 1);
    const fromScript = await jobHash(b, 1);
    expect(Object.keys(fromScript).sort()).toEqual(Object.keys(fromQueue).sort());
    for (const field of ["name", "delay", "priority"]) expect(fromScript[field]).toBe(fromQueue[field]);
    expect(JSON.parse(fromScript.opts!)).toEqual({ ...JSON.parse(fromQueue.opts!), jobId: callbackJobId(b, 1) });
    expect(JSON.parse(fromScript.data!)).toEqual({ ...JSON.parse(fromQueue.data!), requestId: b });
    expect(fromScript.timestamp).toBe("1");

    // both waiting in the partition queue, with BullMQ's 'added' and 'waiting' events
    const waiting = await ctx.queues.queue(0).getJobs(["waiting"]);
    expect(waiting.map((j) => j.id)).toEqual(expect.arrayContaining([callbackJobId(a, 1), callbackJobId(b, 1)]));
    const events = await ctx.redis.xrange(`${ctx.keys.jobPrefix(0)}events`, "-", "+");
    for (const jobId of [callbackJobId(a, 1), callbackJobId(b, 1)]) {
      const kinds = events.filter(([, kv]) => kv.includes(jobId)).map(([, kv]) => kv[1]);
      expect(kinds).toEqual(["added", "waiting"]);
    }
  });

  it("assigns consecutive seqs as job ids and answers refusals without adding a job", async () => {
    const id = await registered();
    await viaScript(id, "UPDATE");
    const second = await viaScript(id, "UPDATE", "x");
    expect(second).toMatchObject({ kind: "admitted", seq: 2 });
    expect(JSON.parse((await jobHash(id, 2)).data!)).toEqual({
      v: 1,
      requestId: id,
      seq: 2,
      execution: 1,
      status: "UPDATE",
      message: "x",
      acceptedAt: 1,
    });
    await expect(
      ctx.store.admitAndEnqueue(ctx.queues, { requestId: id, handle: "wrong", status: "UPDATE", acceptedAt: 1 }),
    ).rejects.toMatchObject({ code: "STALE_HANDLE" });
    await expect(
      ctx.store.admitAndEnqueue(ctx.queues, {
        requestId: newRequestId(),
        handle: "h",
        status: "UPDATE",
        acceptedAt: 1,
      }),
    ).rejects.toMatchObject({ code: "REQUEST_NOT_FOUND" });
    expect(await jobHash(id, 3)).toEqual({});
  });
});

describe("a real BullMQ Worker processes script-added jobs exactly like Queue.add ones", () => {
  it("same options seen by the processor, same retries with backoff, removed on completion", async () => {
    const [a, b] = await pairInPartition0();
    await viaQueueAdd(a, "UPDATE");
    await viaScript(b, "UPDATE");
    interface Seen {
      attempts: number[];
      opts: Job["opts"];
      data: unknown;
      at: number[];
    }
    const seen = new Map<string, Seen>();
    const done = new Map<string, () => void>();
    const finished = [a, b].map((id) => new Promise<void>((resolve) => done.set(callbackJobId(id, 1), resolve)));
    const worker = new Worker(
      CALLBACK_QUEUE,
      async (job: Job) => {
        const s: Seen = seen.get(job.id!) ?? { attempts: [], opts: job.opts, data: job.data, at: [] };
        s.attempts.push(job.attemptsMade);
        s.at.push(Date.now());
        seen.set(job.id!, s);
        // fail the first two attempts: the third (of the 3 the policy allows) succeeds
        if (job.attemptsMade < 2) throw new Error("transient");
        return "ok";
      },
      { connection: ctx.redis.duplicate({ maxRetriesPerRequest: null }), prefix: ctx.keys.tag(0), concurrency: 4 },
    );
    workers.push(worker);
    worker.on("completed", (job) => done.get(job.id!)?.());
    await Promise.all(finished);

    const q = seen.get(callbackJobId(a, 1))!;
    const s = seen.get(callbackJobId(b, 1))!;
    expect(s.attempts).toEqual([0, 1, 2]);
    expect(s.attempts).toEqual(q.attempts);
    const { jobId: _q, ...qOpts } = q.opts;
    const { jobId: _s, ...sOpts } = s.opts;
    expect(sOpts).toEqual(qOpts);
    expect(sOpts).toMatchObject({
      attempts: 3,
      backoff: { type: "exponential", delay: 10, jitter: 0.5 },
      removeOnComplete: true,
      removeOnFail: false,
    });
    expect(s.opts.jobId).toBe(callbackJobId(b, 1));
    expect(s.data).toEqual({ ...(q.data as object), requestId: b, acceptedAt: 1 });
    // exponential backoff with jitter: some delay before each retry
    expect(s.at[2]! - s.at[0]!).toBeGreaterThanOrEqual(5);

    // removeOnComplete: neither job hash survives completion
    await new Promise((r) => setTimeout(r, 50));
    expect(await jobHash(a, 1)).toEqual({});
    expect(await jobHash(b, 1)).toEqual({});
  });
});
