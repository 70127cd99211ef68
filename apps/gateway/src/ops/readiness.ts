import { ensureScriptsLoaded, isOutOfMemory } from "@ess/store";
import type { Redis } from "ioredis";

/**
 * /readyz: Redis connected and answering, the project's scripts in its cache, Redis accepting
 * writes, and not shutting down. Costs a PING, a SCRIPT EXISTS and, given a probe key, one small
 * SET with a short expiry per probe (never on the callback path).
 *
 * A full Redis (maxmemory under noeviction) answers reads but refuses writes, so every callback and
 * registration would get 503: the probe is a write, refused by the very check that refuses them
 * (used memory minus replication and AOF buffers, against maxmemory). Comparing `INFO memory`
 * figures would only approximate that check; a flag set on the last refused write would need a
 * refused request first and a probe to clear it anyway. The write probe needs no state, is right
 * before any traffic, and turns ready again by itself once memory is freed.
 */
export class Readiness {
  stopping = false;

  constructor(
    private readonly redis: Redis,
    private readonly timeoutMs = 1000,
    private readonly probeKey?: string,
  ) {}

  async check(): Promise<{ ready: boolean; checks: Record<string, string> }> {
    if (this.stopping) return { ready: false, checks: { shutdown: "stopping" } };
    if (this.redis.status !== "ready") return { ready: false, checks: { redis: this.redis.status } };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      await Promise.race([this.redis.ping(), timeout]);
    } catch (err) {
      clearTimeout(timer);
      return { ready: false, checks: { redis: (err as Error).message } };
    }
    try {
      await Promise.race([ensureScriptsLoaded(this.redis), timeout]);
    } catch (err) {
      clearTimeout(timer);
      // SCRIPT LOAD is refused too while Redis is full (after a restart the cache is empty)
      if (isOutOfMemory(err)) return { ready: false, checks: { redis: "ok", memory: OUT_OF_MEMORY } };
      return { ready: false, checks: { redis: "ok", scripts: (err as Error).message } };
    }
    if (this.probeKey === undefined) {
      clearTimeout(timer);
      return { ready: true, checks: { redis: "ok", scripts: "ok" } };
    }
    try {
      await Promise.race([this.redis.set(this.probeKey, String(Date.now()), "PX", 10000), timeout]);
      return { ready: true, checks: { redis: "ok", scripts: "ok", memory: "ok" } };
    } catch (err) {
      const memory = isOutOfMemory(err) ? OUT_OF_MEMORY : (err as Error).message;
      return { ready: false, checks: { redis: "ok", scripts: "ok", memory } };
    } finally {
      clearTimeout(timer);
    }
  }
}

const OUT_OF_MEMORY = "full: Redis refuses writes (maxmemory reached, noeviction)";
