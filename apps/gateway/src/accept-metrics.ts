import type { AcceptObserver } from "./accept-observer.js";
import { isRedisUnavailable } from "./errors.js";
import type { GatewayMetrics } from "./metrics.js";

/**
 * Times the admit script and the enqueue, and counts the calls that failed because Redis was
 * unreachable. With ENQUEUE_MODE=script admit and enqueue are one script: its time is the admit
 * time of every call and the enqueue time of those admitted.
 */
export function acceptMetrics(metrics: GatewayMetrics): AcceptObserver {
  const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;
  return {
    async admit(_call, work, alsoEnqueues) {
      const start = process.hrtime.bigint();
      try {
        const result = await work();
        const s = seconds(start);
        metrics.admitSeconds.observe(s);
        if (alsoEnqueues && result.kind === "admitted") metrics.enqueueSeconds.observe(s);
        return result;
      } catch (err) {
        metrics.admitSeconds.observe(seconds(start));
        if (isRedisUnavailable(err)) metrics.redisErrors.inc();
        throw err;
      }
    },
    batch(callbacks) {
      metrics.admitBatch.observe(callbacks);
    },
    async enqueue(_job, work) {
      const end = metrics.enqueueSeconds.startTimer();
      try {
        await work();
      } catch (err) {
        if (isRedisUnavailable(err)) metrics.redisErrors.inc();
        throw err;
      } finally {
        end();
      }
    },
  };
}
