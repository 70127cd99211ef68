import type { CallbackJob } from "@ess/contract";
import type { CallbackStatus } from "@ess/domain";
import { eventually, failedJob } from "@ess/testing";
import { newRequestId, useTestContext } from "@ess/testing/context";
import { Worker } from "bullmq";
import { afterAll, describe, expect, it } from "vitest";
import { startTestWorker } from "./test-worker.js";

const ctx = useTestContext({ partitions: 2, attempts: 3, backoffMs: 100, limits: { gapTimeoutMs: 300 } });

/** seq → failures still to inject (transient unless `permanent`) */
const faults = new Map<string, { left: number; permanent?: boolean }>();
const { worker, deadLetters } = startTestWorker(ctx, {
  beforeApply: (job) => {
    const f = faults.get(String(job.id));
    if (f && f.left > 0) {
      f.left--;
      if (f.permanent) throw new TypeError("injected programming error");
      throw new Error("Connection is closed."); // what ioredis says when Redis went away
    }
  },
});
afterAll(() => worker.close(5000));

async function registered(): Promise<string> {
  const id = newRequestId();
  await ctx.store.register(id, "h", {});
  return id;
}

/** Admits and enqueues like the gateway does (seq from the admit script). */
async function accept(id: string, status: CallbackStatus, message?: string): Promise<CallbackJob> {
  const a = await ctx.store.admit(id, "h", status);
  if (a.kind !== "admitted") throw new Error("not admitted");
  const job: CallbackJob = { v: 1, requestId: id, seq: a.seq, execution: a.execution, status, acceptedAt: Date.now() };
  if (message) job.message = message;
  await ctx.queues.add(a.partition, job);
  return job;
}

async function history(id: string) {
  const stored = await ctx.store.read(id);
  return (stored?.history ?? []).filter((h) => h.outcome !== "registered").reverse();
}

describe("worker: retries, ordering, dead letters, replay", () => {
  it("a callback being retried is not overtaken: later ones wait, then all apply in seq order", async () => {
    const id = await registered();
    faults.set(`${id}-1`, { left: 2 });
    await accept(id, "UPDATE", "first");
    await accept(id, "UPDATE", "second");
    await accept(id, "WARNING", "third");
    const h = await eventually(async () => {
      const got = await history(id);
      return got.length === 3 && got;
    }, 20000);
    expect(h.map((e) => [e.seq, e.outcome])).toEqual([
      [1, "applied"],
      [2, "applied"],
      [3, "applied"],
    ]);
    expect(await ctx.store.state(id)).toBe("WARNING");
    expect(faults.get(`${id}-1`)?.left).toBe(0);
  });

  it("a permanent failure is dead-lettered at once, with the reason, attempts and the payload", async () => {
    const id = await registered();
    faults.set(`${id}-1`, { left: 99, permanent: true });
    const job = await accept(id, "SUCCESS");
    const dl = await eventually(async () => (await deadLetters.list({ requestId: id })).items[0]);
    expect(dl).toMatchObject({ reason: "permanent-error", attempts: 1, payload: job, seq: 1, status: "SUCCESS" });
    expect(dl.error).toMatch(/injected programming error/);
  });

  it("an invalid payload is dead-lettered as invalid-payload", async () => {
    const p = ctx.keys.partition("31337");
    await ctx.queues.queue(p).add("cb", { v: 1, requestId: "31337", seq: "one" }, { jobId: "31337-x", attempts: 3 });
    const dl = await eventually(async () => (await deadLetters.list({ requestId: "31337" })).items[0]);
    expect(dl).toMatchObject({ reason: "invalid-payload", attempts: 1 });
  });

  it("out of attempts → dead letter; the gap is skipped; replayed, it applies as late under the same rules", async () => {
    const id = await registered();
    faults.set(`${id}-1`, { left: 3 }); // JOB_ATTEMPTS = 3
    await accept(id, "WARNING", "disk full");
    await accept(id, "UPDATE", "later");
    const dl = await eventually(async () => (await deadLetters.list({ requestId: id })).items[0], 20000);
    expect(dl).toMatchObject({ reason: "attempts-exhausted", attempts: 3, seq: 1 });
    // seq 2 waited for seq 1 while it was retried; once dead-lettered the gap is skipped after GAP_TIMEOUT_MS
    await eventually(async () => (await history(id)).some((h) => h.seq === 2 && h.outcome === "applied"), 20000);
    expect(await ctx.store.state(id)).toBe("RUNNING");

    expect(await deadLetters.replay(dl.id)).toBe("replayed");
    await eventually(async () => (await ctx.store.state(id)) === "WARNING", 20000);
    expect((await history(id)).map((h) => [h.seq, h.outcome])).toEqual([
      [1, "skipped"],
      [2, "applied"],
      [1, "late"],
    ]);
    const stored = await ctx.store.read(id);
    expect(stored?.fields.errorWarningMessage).toBe("disk full");
    expect(await deadLetters.get(dl.id)).toBeNull();
  });

  it("replaying a callback that was already applied changes nothing", async () => {
    const id = await registered();
    const job = await accept(id, "SUCCESS");
    await eventually(async () => (await ctx.store.state(id)) === "SUCCEEDED");
    const p = ctx.keys.partition(id);
    await deadLetters.record(p, failedJob(id, 1, "SUCCESS", { data: job }));
    expect(await deadLetters.replay(`${p}.${id}-1`)).toBe("replayed");
    await eventually(async () => !(await ctx.queues.queue(p).getJob(`${id}-1`)));
    expect((await history(id)).map((h) => h.seq)).toEqual([1]);
  });

  it("the sweep moves jobs that failed outside the normal path into the dead letters", async () => {
    const p = 0;
    const q = ctx.queues.queue(p, "sweep-test");
    await q.add("cb", { requestId: "4242", seq: 1, status: "UPDATE" }, { jobId: "4242-1", attempts: 1 });
    const failing = new Worker(
      "sweep-test",
      async () => {
        throw new Error("boom");
      },
      { connection: ctx.workerRedis, prefix: ctx.keys.tag(p) },
    );
    await eventually(async () => (await q.getFailedCount()) === 1);
    await failing.close();
    // our worker sweeps its own callback queue; a failed callback job left behind is moved the same way
    const cbq = ctx.queues.queue(p);
    await cbq.add("cb", { v: 1 }, { jobId: "sweep-1", attempts: 1 });
    await eventually(async () => (await deadLetters.get(`${p}.sweep-1`)) !== null);
    expect(await cbq.getFailedCount()).toBe(0);
    expect(await worker.sweep()).toBe(0);
  });

  it("a callback job added twice is one job, applied once", async () => {
    const id = await registered();
    const job = await accept(id, "UPDATE");
    await ctx.queues.add(ctx.keys.partition(id), job); // the same job id while the first still exists, or after
    await eventually(async () => (await history(id)).length === 1);
    await ctx.queues.add(ctx.keys.partition(id), job);
    await new Promise((r) => setTimeout(r, 300));
    expect((await history(id)).map((h) => [h.seq, h.outcome])).toEqual([[1, "applied"]]);
  });

  it("dead letters past their retention are purged, by one worker at a time", async () => {
    const p = 1;
    await deadLetters.record(p, failedJob("1", 1, "UPDATE", { id: "purge-1" }), Date.now() - 2 * 86400_000);
    await deadLetters.record(p, failedJob("1", 2, "UPDATE", { id: "purge-2" }), Date.now());
    await ctx.redis.set(ctx.keys.lock("dlq-purge"), "1", "EX", 5);
    expect(await worker.purgeExpired()).toBe(0); // another worker holds the lock
    await ctx.redis.del(ctx.keys.lock("dlq-purge"));
    expect(await worker.purgeExpired()).toBeGreaterThanOrEqual(1);
    expect(await deadLetters.get(`${p}.purge-1`)).toBeNull();
    expect(await deadLetters.get(`${p}.purge-2`)).not.toBeNull();
  });

  it("bulk replay runs in rate-limited batches, reports progress, and can be cancelled", async () => {
    // 30 dead letters of an already-SUCCEEDED request: replays are harmless no-ops
    const id = await registered();
    await accept(id, "SUCCESS");
    await eventually(async () => (await ctx.store.state(id)) === "SUCCEEDED");
    const p = ctx.keys.partition(id);
    for (let i = 0; i < 30; i++) {
      await deadLetters.record(p, failedJob(id, 100 + i, "UPDATE"));
    }
    const op = await deadLetters.startReplay({ requestId: id }, 10, ctx.queues.ops());
    expect(op).toMatchObject({ state: "running", total: 30, replayed: 0 });
    const progressed = await eventually(async () => {
      const o = await deadLetters.getReplay(op.id);
      return o && o.replayed >= 10 && o;
    }, 20000);
    expect(progressed.state).toBe("running");
    await deadLetters.cancelReplay(op.id);
    const final = await eventually(async () => {
      const o = await deadLetters.getReplay(op.id);
      return o?.state === "cancelled" && o;
    }, 20000);
    expect(final.replayed).toBeLessThan(30);
    expect(await deadLetters.countMatching({ requestId: id })).toBe(30 - final.replayed);

    const rest = await deadLetters.startReplay({ requestId: id }, 1000, ctx.queues.ops());
    const done = await eventually(async () => {
      const o = await deadLetters.getReplay(rest.id);
      return o?.state === "done" && o;
    }, 20000);
    expect(done.replayed).toBe(30 - final.replayed);
    expect(await deadLetters.countMatching({ requestId: id })).toBe(0);
  });
});
