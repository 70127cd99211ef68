import { pingSeconds } from "@ess/store";
import type { Redis } from "ioredis";
import { Gauge, type Registry } from "prom-client";
import type { Readiness } from "./ops/readiness.js";

/** Longest a scrape waits for Redis before it reports the probe as failed. */
const PROBE_TIMEOUT_MS = 1000;

/**
 * Gauges measured when Prometheus scrapes the admin listener:
 * - ess_redis_ping_seconds: one PING's round trip (absent while Redis does not answer);
 * - ess_ready: 1 when the /readyz check passes, else 0 (alerted on when it stays 0).
 */
export function registerProbes(registry: Registry, redis: Redis, readiness: Readiness): void {
  new Gauge({
    name: "ess_redis_ping_seconds",
    help: "Round trip of a PING to Redis, measured at scrape time (absent while Redis does not answer)",
    registers: [registry],
    async collect() {
      const s = await pingSeconds(redis, PROBE_TIMEOUT_MS).catch(() => undefined);
      if (s === undefined) this.reset();
      else this.set(s);
    },
  });
  new Gauge({
    name: "ess_ready",
    help: "1 when the gateway is ready for traffic (the /readyz check), else 0; measured at scrape time",
    registers: [registry],
    async collect() {
      const r = await readiness.check().catch(() => ({ ready: false }));
      this.set(r.ready ? 1 : 0);
    },
  });
}
