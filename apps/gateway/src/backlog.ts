import { fanOut, type Keys } from "@ess/store";
import type { Redis } from "ioredis";
import type { GatewayMetrics } from "./metrics.js";

/**
 * The backlog of every partition queue in callbacks: waiting + delayed jobs, plus the callbacks queued
 * inside batch jobs (their in-flight markers; a batch job is then counted once more than its callbacks,
 * and its callbacks until each is applied, also while the job is active), refreshed in the background every
 * `intervalMs` with one round trip (the commands issued together). Callbacks consult the cached numbers: no Redis call
 * per request. When a refresh fails (Redis away) the last numbers stay; the Redis check catches that.
 */
export class BacklogMonitor {
  private counts: number[];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    readonly limit: number,
    private readonly intervalMs: number,
    private readonly metrics?: GatewayMetrics,
  ) {
    this.counts = new Array<number>(keys.partitions).fill(0);
  }

  /** Starts the periodic refresh (first one at once). */
  start(): this {
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Reads the backlog of every partition now; never throws. */
  async refresh(): Promise<void> {
    if (this.running) return this.running;
    this.running = (async () => {
      try {
        if (this.redis.status !== "ready") return;
        // one command pair per partition, together (a Cluster refuses a pipeline across slots)
        const all = Array.from({ length: this.keys.partitions }, (_, p) => p);
        const replies = await fanOut(all, (p) => {
          const base = this.keys.jobPrefix(p);
          return Promise.all([
            this.redis.llen(`${base}wait`),
            this.redis.zcard(`${base}delayed`),
            this.redis.hlen(this.keys.inflight(p)),
          ]);
        });
        const next = this.counts.slice();
        for (let p = 0; p < this.keys.partitions; p++) {
          const [err, counts] = replies[p] ?? [null, null];
          if (err || !counts) continue;
          next[p] = counts[0] + counts[1] + counts[2];
          this.metrics?.backlogCached.set({ queue: `p${p}` }, next[p] as number);
        }
        this.counts = next;
      } catch {
        // keep the last numbers
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  /** The cached backlog of partition p. */
  backlog(p: number): number {
    return this.counts[p] ?? 0;
  }

  /** True when partition p's cached backlog is past the limit (limit 0: never). */
  over(p: number): boolean {
    return this.limit > 0 && this.backlog(p) > this.limit;
  }
}
