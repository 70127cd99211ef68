import type { RequestStore, TimeoutPolicy } from "@ess/store";
import { SchedulerStore } from "@ess/store";
import type { WorkerLogger } from "./worker.js";

export interface TimeoutSweeperDeps {
  store: RequestStore;
  /** partitions this process serves; every worker may sweep the same ones (the claim is atomic) */
  partitions: number[];
  policy: TimeoutPolicy;
  intervalMs: number;
  log: WorkerLogger;
}

/** A running sweep loop. */
export interface TimeoutSweeper {
  /** One pass over the partitions; resolves with the number of requests timed out. */
  sweepOnce(): Promise<number>;
  /** Stops the loop and waits (at most waitMs) for a pass in progress. */
  stop(waitMs?: number): Promise<void>;
}

/**
 * Sweeps the served partitions for requests past their requestTimeout every intervalMs. Each pass
 * reads only the due members of each partition's deadline set, so its cost follows the number due.
 */
export function startTimeoutSweeper(deps: TimeoutSweeperDeps): TimeoutSweeper {
  const scheduler = new SchedulerStore(deps.store);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();

  async function sweepOnce(): Promise<number> {
    let total = 0;
    for (const p of deps.partitions) {
      for (;;) {
        const r = await scheduler.sweepTimeouts(p, deps.policy);
        total += r.timedOut;
        if (r.timedOut > 0) deps.log.info({ partition: p, timedOut: r.timedOut }, "requests timed out");
        if (!r.more || stopped) break;
      }
    }
    return total;
  }

  const tick = () => {
    running = sweepOnce()
      .catch((err: Error) => deps.log.warn({ err: err.message }, "timeout sweep failed; retrying next interval"))
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, deps.intervalMs);
      });
  };
  timer = setTimeout(tick, deps.intervalMs);

  return {
    sweepOnce,
    async stop(waitMs = 5000) {
      stopped = true;
      clearTimeout(timer);
      // a pass stuck on an unreachable Redis must not hold the shutdown
      let cap: NodeJS.Timeout | undefined;
      await Promise.race([running, new Promise((r) => (cap = setTimeout(r, waitMs)))]);
      clearTimeout(cap);
    },
  };
}
