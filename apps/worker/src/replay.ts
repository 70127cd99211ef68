import type { DeadLetters, ReplayOperation } from "@ess/store";

/** One batch of a bulk replay per this period: `rate` entries a second, so replays never starve live callbacks. */
export const REPLAY_BATCH_PERIOD_MS = 1000;

/** Runs around one bulk replay (tracing); gets the replay's id and the replay itself. */
export type AroundBulkReplay = (
  id: string,
  run: () => Promise<ReplayOperation | null>,
) => Promise<ReplayOperation | null>;

/**
 * Runs bulk replays, as the ops queue's jobs (so a worker that dies mid-replay hands it to another,
 * which resumes from the progress in Redis).
 */
export class BulkReplayRunner {
  constructor(
    private readonly deadLetters: DeadLetters,
    private readonly opts: {
      sleep?: (ms: number) => Promise<unknown>;
      /** runs around each bulk replay (a tracing span); absent: the replay runs as it is */
      around?: AroundBulkReplay;
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
}
