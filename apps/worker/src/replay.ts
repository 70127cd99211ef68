import type { DeadLetters, ReplayOperation } from "@ess/store";

/** One batch of a bulk replay per this period: `rate` entries a second, so replays never starve live callbacks. */
export const REPLAY_BATCH_PERIOD_MS = 1000;

/**
 * Runs bulk replays, as the ops queue's jobs (so a worker that dies mid-replay hands it to another,
 * which resumes from the progress in Redis). Its own object so that tracing can wrap `run`.
 */
export class BulkReplayRunner {
  constructor(
    private readonly deadLetters: DeadLetters,
    private readonly sleep = (ms: number) => new Promise((r) => setTimeout(r, ms)),
  ) {}

  /** Replays batches of `rate` entries a second until none match, or until cancelled; progress in Redis. */
  async run(id: string): Promise<ReplayOperation | null> {
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
      if (wait > 0) await this.sleep(wait);
    }
  }
}
