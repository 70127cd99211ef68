import { AuditLog, type DeadLetter } from "@ess/store";
import { eventually, failedJob } from "@ess/testing";
import { newRequestId, useTestContext } from "@ess/testing/context";
import { UnrecoverableError } from "bullmq";
import { describe, expect, it } from "vitest";
import { BulkReplayRunner } from "./replay.js";
import { startTestWorker } from "./test-worker.js";

const ctx = useTestContext({ partitions: 4 });
const audit = new AuditLog(ctx.redis, ctx.keys);
const { bulk } = ctx.deadLetters;
const noSleep = { sleep: async () => {} };
const who = { actor: "ada", reason: "upstream fixed" };

let seq = 0;
async function seed(requestId: string, n: number, at = Date.now() - 60000): Promise<DeadLetter[]> {
  const out: DeadLetter[] = [];
  for (let i = 0; i < n; i++) {
    seq++;
    out.push(await ctx.deadLetters.record(ctx.keys.partition(requestId), failedJob(requestId, seq, "ERROR"), at + i));
  }
  return out;
}

/** Creates and confirms a bulk action over one request's dead letters; `rate` ids per batch. */
async function confirmed(kind: "replay" | "purge", requestId: string, rate: number) {
  const created = await bulk.create(kind, { requestId }, "ada");
  return bulk.confirm(created.id, created.estimate, who, ctx.queues.ops(), rate);
}

const present = async (ids: string[]) =>
  (await Promise.all(ids.map((id) => ctx.deadLetters.get(id)))).filter((e) => e !== null).length;

describe("console bulk actions in the worker", () => {
  it("replays exactly the ids snapshotted at confirmation, then ends done with results and an audit entry", async () => {
    const rid = newRequestId();
    const seeded = await seed(rid, 6);
    const action = await confirmed("replay", rid, 2);
    expect(action).toMatchObject({ state: "running", estimate: 6, rate: 2 });
    // matches the filter (same request, dead-lettered within its time bound) but came after the snapshot
    const [late] = await seed(rid, 1, Date.now() - 30000);
    const end = await new BulkReplayRunner(ctx.deadLetters, { ...noSleep, audit }).runBulk(action.id);
    expect(end).toMatchObject({ state: "done", processed: 6, succeeded: 6, failed: 0, results: { replayed: 6 } });
    expect(end?.finishedAt).toBeTypeOf("number");
    expect(await present(seeded.map((e) => e.id))).toBe(0);
    expect(await ctx.deadLetters.get(late?.id ?? "")).not.toBeNull();
    for (const e of seeded) expect(await ctx.queues.queue(e.partition).getJob(e.jobId)).toBeTruthy();
    const [finish] = (await audit.list({ target: `bulk/${action.id}` })).items;
    expect(finish).toMatchObject({ action: "bulk.finish", actor: "ada", count: 6, reason: "upstream fixed" });
  });

  it("an abort stops it after the current batch: the rest stay untouched", async () => {
    const rid = newRequestId();
    const seeded = await seed(rid, 6);
    const action = await confirmed("purge", rid, 2);
    let batches = 0;
    const runner = new BulkReplayRunner(ctx.deadLetters, {
      ...noSleep,
      audit,
      afterBatch: async (id) => {
        batches++;
        if (batches === 1) await bulk.abort(id, { actor: "ada", reason: "wrong filter" });
      },
    });
    const end = await runner.runBulk(action.id);
    expect(end).toMatchObject({ state: "aborted", processed: 2, succeeded: 2, results: { purged: 2 } });
    expect(end).toMatchObject({ abortedBy: "ada", abortReason: "wrong filter" });
    expect(await present(seeded.map((e) => e.id))).toBe(4);
    const [last] = (await audit.list({ target: `bulk/${action.id}` })).items;
    expect(last).toMatchObject({ action: "bulk.aborted", reason: "wrong filter" });
  });

  it("a worker that dies mid-way hands over: the next run resumes after the last counted id", async () => {
    const rid = newRequestId();
    await seed(rid, 5);
    const action = await confirmed("purge", rid, 2);
    const dying = new BulkReplayRunner(ctx.deadLetters, {
      ...noSleep,
      afterBatch: () => {
        throw new Error("worker killed");
      },
    });
    await expect(dying.runBulk(action.id)).rejects.toThrow("worker killed");
    expect(await bulk.get(action.id)).toMatchObject({ state: "running", processed: 2 });
    const end = await new BulkReplayRunner(ctx.deadLetters, noSleep).runBulk(action.id);
    expect(end).toMatchObject({ state: "done", processed: 5, succeeded: 5, failed: 0 });
  });

  it("an id gone before its turn is counted not-found; nothing outside the snapshot is touched", async () => {
    const rid = newRequestId();
    const seeded = await seed(rid, 3);
    const other = await seed(newRequestId(), 2);
    const action = await confirmed("purge", rid, 10);
    await ctx.deadLetters.remove(seeded[1]?.id ?? "");
    const end = await new BulkReplayRunner(ctx.deadLetters, noSleep).runBulk(action.id);
    expect(end).toMatchObject({ processed: 3, succeeded: 2, failed: 1, results: { purged: 2, "not-found": 1 } });
    expect(await present(other.map((e) => e.id))).toBe(2);
  });

  it("leaves an action that was never confirmed alone", async () => {
    const rid = newRequestId();
    await seed(rid, 2);
    const created = await bulk.create("purge", { requestId: rid }, "ada");
    expect(await new BulkReplayRunner(ctx.deadLetters, noSleep).runBulk(created.id)).toMatchObject({
      state: "estimated",
      processed: 0,
    });
    expect(await ctx.deadLetters.countMatching({ requestId: rid })).toBe(2);
  });

  it("the ops worker runs a confirmed action, and marks it failed when its job fails for good", async () => {
    const rid = newRequestId();
    await seed(rid, 3);
    const ok = await confirmed("purge", rid, 10);
    const { worker } = startTestWorker(ctx);
    try {
      const done = await eventually(async () => {
        const cur = await bulk.get(ok.id);
        return cur?.state === "done" ? cur : null;
      }, 20000);
      expect(done).toMatchObject({ processed: 3, succeeded: 3 });
    } finally {
      await worker.close();
    }
    class Broken extends BulkReplayRunner {
      override async runBulk(): Promise<undefined> {
        throw new UnrecoverableError("snapshot unreadable");
      }
    }
    const rid2 = newRequestId();
    await seed(rid2, 1);
    const doomed = await confirmed("purge", rid2, 10);
    const broken = startTestWorker(ctx, { replays: new Broken(ctx.deadLetters) });
    try {
      const failed = await eventually(async () => {
        const cur = await bulk.get(doomed.id);
        return cur?.state === "failed" ? cur : null;
      }, 20000);
      expect(failed?.error).toContain("snapshot unreadable");
    } finally {
      await broken.worker.close();
    }
  });
});
