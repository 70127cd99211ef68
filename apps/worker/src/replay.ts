import { type AuditLog, type BulkAction, type DeadLetters, isBulkFinished, type ReplayOperation } from "@ess/store";

/** One batch of a bulk replay per this period: `rate` entries a second, so replays never starve live callbacks. */
export const REPLAY_BATCH_PERIOD_MS = 1000;

/** Runs around one bulk replay (tracing); gets the replay's id and the replay itself. */
export type AroundBulkReplay = (
  id: string,
  run: () => Promise<ReplayOperation | null>,
) => Promise<ReplayOperation | null>;

/**
 * Runs bulk replays, and the operator console's bulk replays and purges, as the ops queue's jobs (so
 * a worker that dies mid-way hands it to another, which resumes from the progress in Redis).
 */
export class BulkReplayRunner {
  constructor(
    private readonly deadLetters: DeadLetters,
    private readonly opts: {
      sleep?: (ms: number) => Promise<unknown>;
      /** runs around each bulk replay (a tracing span); absent: the replay runs as it is */
      around?: AroundBulkReplay;
      /** where the end of a console bulk action is recorded; absent: not audited */
      audit?: AuditLog | undefined;
      /** test seam: runs after each batch of a console bulk action */
      afterBatch?: (id: string) => void | Promise<void>;
    } = {},
  ) {}

  /** Replays batches of `rate` entries a second until none match, or until cancelled; progress in Redis. */
  run(id: string): Promise<ReplayOperation | null> {
    const run = () => this.loop(id);
    return this.opts.around ? this.opts.around(id, run) : run();
  }

  private async loop(id: string): Promise<ReplayOperation | null> {
    const sleep = this.opts.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
    const { replays, queries } = this.deadLetters;
    for (;;) {
      const op = await replays.getReplay(id);
      if (!op || op.state === "done" || op.state === "cancelled" || op.state === "failed") return op;
      if (op.state === "cancelling") {
        await replays.setReplayState(id, "cancelled");
        return replays.getReplay(id);
      }
      const started = Date.now();
      const page = await queries.list(op.filter, { limit: Math.max(1, op.rate) });
      if (page.items.length === 0) {
        await replays.setReplayState(id, "done");
        return replays.getReplay(id);
      }
      let n = 0;
      for (const e of page.items) if ((await this.deadLetters.replay(e.id)) === "replayed") n++;
      await replays.addReplayed(id, n);
      const wait = REPLAY_BATCH_PERIOD_MS - (Date.now() - started);
      if (wait > 0) await sleep(wait);
    }
  }

  /**
   * Runs a console bulk action (replay or purge) over exactly the ids snapshotted at its confirmation,
   * from where its progress stands, `rate` ids a second, until the list ends or an operator aborts it
   * (checked between batches). Each id's result is counted as it is done: a resumed run starts after
   * the last counted id (an id done but not yet counted when a worker died is found gone: not-found).
   */
  async runBulk(id: string): Promise<BulkAction | undefined> {
    const sleep = this.opts.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
    const { bulk } = this.deadLetters;
    for (;;) {
      const op = await bulk.get(id);
      if (!op || isBulkFinished(op.state) || op.state === "estimated") return op;
      if (op.state === "aborting") return this.endBulk(op, "aborted");
      const started = Date.now();
      const ids = await bulk.snapshotIds(id, op.processed, Math.max(1, op.rate ?? 1));
      if (ids.length === 0) return this.endBulk(op, "done");
      for (const entry of ids) {
        if (op.kind === "replay") {
          const result = await this.deadLetters.replay(entry);
          await bulk.addResult(id, result, result === "replayed");
        } else {
          const removed = await this.deadLetters.remove(entry);
          await bulk.addResult(id, removed ? "purged" : "not-found", removed);
        }
      }
      await this.opts.afterBatch?.(id);
      const wait = REPLAY_BATCH_PERIOD_MS - (Date.now() - started);
      if (wait > 0) await sleep(wait);
    }
  }

  private async endBulk(op: BulkAction, state: "done" | "aborted"): Promise<BulkAction | undefined> {
    const { bulk } = this.deadLetters;
    await bulk.finish(op.id, state);
    const end = (await bulk.get(op.id)) ?? op;
    await this.opts.audit?.record({
      actor: end.actor ?? end.createdBy,
      role: "admin",
      action: `bulk.${state === "done" ? "finish" : "aborted"}`,
      target: `bulk/${op.id}`,
      reason: (state === "aborted" ? end.abortReason : end.reason) ?? "",
      filter: end.filter,
      count: end.succeeded,
      outcome: "succeeded",
      detail: `${op.kind}: ${end.processed} of ${end.estimate} processed, ${end.succeeded} succeeded, ${end.failed} not found`,
    });
    return end;
  }
}
