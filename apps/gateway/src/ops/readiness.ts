import { ensureScriptsLoaded } from "@ess/store";
import type { Redis } from "ioredis";

/**
 * /readyz: Redis connected and answering, the project's scripts in its cache, and not shutting
 * down. Costs a PING and a SCRIPT EXISTS per probe (never on the callback path).
 */
export class Readiness {
  stopping = false;

  constructor(
    private readonly redis: Redis,
    private readonly timeoutMs = 1000,
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
      return { ready: true, checks: { redis: "ok", scripts: "ok" } };
    } catch (err) {
      return { ready: false, checks: { redis: "ok", scripts: (err as Error).message } };
    } finally {
      clearTimeout(timer);
    }
  }
}
