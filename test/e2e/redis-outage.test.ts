import "@ess/testing/provided";
import { eventually, RedisServer, type RunningProcess, requireRedisServer, startApp } from "@ess/testing";
import { uniquePrefix } from "@ess/testing/context";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Redis goes away under load and comes back: the gateway answers 503 + Retry-After quickly (no
// hanging request), /readyz says not ready, and everything recovers without a restart.
let redis: RedisServer;
let gateway: RunningProcess;
let worker: RunningProcess;
const bin = requireRedisServer("Redis outage suite");

beforeAll(async () => {
  if (!bin) return;
  // AOF with fsync always: the registered request survives the kill
  redis = await new RedisServer(bin, { appendonly: true, fsync: "always" }).start();
  const env = {
    REDIS_URL: redis.url,
    KEY_PREFIX: uniquePrefix(),
    PARTITIONS: "2",
    ALLOW_ANONYMOUS: "true",
    REDIS_COMMAND_TIMEOUT_MS: "500",
    RETRY_AFTER_SECONDS: "2",
    GAP_TIMEOUT_MS: "500",
    ACCESS_LOG: "false",
  };
  [gateway, worker] = await Promise.all([startApp("gateway", env), startApp("worker", env)]);
});

afterAll(async () => {
  await Promise.all([gateway?.stop(), worker?.stop()]);
  await redis?.stop();
});

interface Outcome {
  status: number;
  retryAfter: string | null;
  errorCode?: string;
}

describe.skipIf(!bin)("Redis outage under load", () => {
  it("answers 503 with Retry-After while Redis is down and recovers by itself", async () => {
    const reg = await fetch(`${gateway.url}/gateway/v1/requests/777/executions`, { method: "POST" });
    const { requestHandle } = (await reg.json()) as { requestHandle: string };
    const outcomes: Outcome[] = [];
    const hung: string[] = [];
    let running = true;

    async function sender() {
      while (running) {
        try {
          const res = await fetch(`${gateway.url}/ess/rest/scheduler/v1/requests/777/executionStatus`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ requestHandle, status: "UPDATE" }),
            // far above the gateway's bound (command timeout 500 ms): only a hanging request trips it
            signal: AbortSignal.timeout(15000),
          });
          const text = await res.text();
          const o: Outcome = { status: res.status, retryAfter: res.headers.get("retry-after") };
          if (res.status !== 200) o.errorCode = (JSON.parse(text) as { errorCode: string }).errorCode;
          outcomes.push(o);
        } catch (err) {
          hung.push(String(err));
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    const load = [sender(), sender(), sender()];
    try {
      await eventually(async () => outcomes.filter((o) => o.status === 200).length >= 10, 30000, "load running");

      await redis.kill();
      const downFrom = outcomes.length;
      await eventually(async () => outcomes.slice(downFrom).some((o) => o.status === 503), 30000, "503 while down");
      const ready = await fetch(`${gateway.url}/readyz`);
      expect(ready.status).toBe(503);
      expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
      // keep it down a moment under load
      await new Promise((r) => setTimeout(r, 1500));

      await redis.start();
      const upFrom = outcomes.length;
      await eventually(async () => outcomes.slice(upFrom).some((o) => o.status === 200), 60000, "200 after restart");
      await eventually(async () => (await fetch(`${gateway.url}/readyz`)).status === 200, 30000, "ready again");
    } finally {
      running = false;
      await Promise.all(load);
    }

    expect(hung).toEqual([]);
    const refused = outcomes.filter((o) => o.status !== 200);
    expect(refused.length).toBeGreaterThan(0);
    for (const o of refused) {
      expect(o).toMatchObject({ status: 503, retryAfter: expect.stringMatching(/^[12]$/), errorCode: "ESS-50301" });
    }

    // the worker recovers too: a callback after the outage is applied
    const metrics = await eventually(async () => {
      const text = await (await fetch(`${worker.metricsUrl}/metrics`)).text();
      return /ess_worker_callbacks_total\{result="applied"\} [1-9]/.test(text) && text;
    });
    expect(metrics).toContain("ess_redis_errors_total");
    const gw = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
    expect(gw).toMatch(/ess_redis_errors_total [1-9]/);
  });
});
