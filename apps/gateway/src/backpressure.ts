import { EssError, parseRequestId } from "@ess/domain";
import type { Keys } from "@ess/store";
import type { MiddlewareHandler } from "hono";
import type { Redis } from "ioredis";
import type { AppEnv } from "./context.js";
import type { GatewayMetrics } from "./metrics.js";

/**
 * The backlog of every partition queue (waiting + delayed jobs), refreshed in the background every
 * `intervalMs` with one pipelined round trip. Callbacks consult the cached numbers: no Redis call
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
        const pipe = this.redis.pipeline();
        for (let p = 0; p < this.keys.partitions; p++) {
          const base = this.keys.jobPrefix(p);
          pipe.llen(`${base}wait`);
          pipe.zcard(`${base}delayed`);
        }
        const replies = (await pipe.exec()) ?? [];
        const next = this.counts.slice();
        for (let p = 0; p < this.keys.partitions; p++) {
          const wait = replies[2 * p];
          const delayed = replies[2 * p + 1];
          if (!wait || wait[0] || !delayed || delayed[0]) continue;
          next[p] = Number(wait[1]) + Number(delayed[1]);
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

/** Per-credential token buckets, in memory (per gateway process). */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  readonly burst: number;

  constructor(
    readonly perSecond: number,
    burst = 0,
  ) {
    this.burst = burst > 0 ? burst : perSecond;
  }

  /** Takes one token for `key`; false when the bucket is empty. */
  take(key: string, now = Date.now()): boolean {
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size > 10000) this.buckets.clear();
      b = { tokens: this.burst, at: now };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

/** What the backpressure middleware consults; all in memory. */
export interface BackpressureDeps {
  redis: Redis;
  keys: Keys;
  backlog?: BacklogMonitor | undefined;
  rateLimit?: RateLimiter | undefined;
  retryAfterSeconds: number;
  metrics?: GatewayMetrics | undefined;
}

const NO_REDIS = new Set(["healthz", "readyz", "openapi", "docs"]);
const CALLBACK = /\/requests\/([^/]+)\/executionStatus$/;

/**
 * Refuses work early, from memory only: 429 past the caller's rate, 503 while Redis is not
 * connected (instead of waiting for it), 503 for a callback whose partition's backlog is past the
 * limit. Runs after authentication (the rate limit is per credential).
 */
export function backpressureMiddleware(d: BackpressureDeps): MiddlewareHandler<AppEnv> {
  const retryAfter = d.retryAfterSeconds;
  return async (c, next) => {
    const operation = c.get("operation") ?? "other";
    if (NO_REDIS.has(operation)) return next();
    if (d.rateLimit) {
      const who = c.get("principal")?.name ?? "anonymous";
      if (!d.rateLimit.take(who)) {
        d.metrics?.rejections.inc({ reason: "rate_limit" });
        throw new EssError("RATE_LIMITED", `more than ${d.rateLimit.perSecond} requests per second for '${who}'`, {
          retryAfter,
        });
      }
    }
    if (d.redis.status !== "ready") {
      d.metrics?.rejections.inc({ reason: "redis_unavailable" });
      throw new EssError("UNAVAILABLE", "the scheduling store is unreachable; retry later", { retryAfter });
    }
    if (d.backlog && operation === "executionStatus" && c.req.method === "POST") {
      const raw = CALLBACK.exec(c.req.path)?.[1];
      const id = raw === undefined ? null : parseRequestId(raw);
      if (id !== null && d.backlog.over(d.keys.partition(id))) {
        d.metrics?.rejections.inc({ reason: "backlog" });
        throw new EssError("OVERLOADED", "too many callbacks are waiting to be applied; retry later", { retryAfter });
      }
    }
    return next();
  };
}
