import { createLogger, lineWriter, perRequestLogger } from "@ess/config";
import type { CallbackJob } from "@ess/contract";
import type { ApplyResult } from "@ess/store";
import { describe, expect, it } from "vitest";
import { applyMetrics, WorkerMetrics } from "./observe.js";
import { type ApplyCall, observeAll } from "./worker.js";

/** A metrics observer with its own registry and the job log lines it writes. */
function observed() {
  const metrics = new WorkerMetrics({ defaultMetrics: false });
  const lines: unknown[] = [];
  const log = {
    debug: () => {},
    info: (o: object, msg?: string) => lines.push({ ...o, msg }),
    warn: () => {},
    error: () => {},
  };
  return { metrics, lines, observer: applyMetrics(metrics, log) };
}

const job = (requestId: string, seq: number, status: CallbackJob["status"] = "UPDATE"): ApplyCall => ({
  requestId,
  mode: "cb",
  // accepted in the future: a lag of 0, the same whenever each side runs
  arg: { v: 1, requestId, seq, execution: 1, status, acceptedAt: Date.now() + 3_600_000 },
});
const res = (result: ApplyResult["result"], n = 0, missing = 0): ApplyResult => ({ result, missing, n });

describe("applyMetrics: a batch observed whole", () => {
  it("counts and logs exactly what observing each callback on its own does", async () => {
    const calls = [job("7", 2), job("7", 1), job("8", 1), job("9", 4, "SUCCESS"), job("10", 1), job("11", 3)];
    const results = [
      res("buffered", 0, 1),
      res("applied", 1),
      res("applied"),
      res("late"),
      res("duplicate"),
      res("gone"),
    ];
    const one = observed();
    for (const [i, call] of calls.entries()) await one.observer.apply(call, async () => results[i] as ApplyResult);
    const batch = observed();
    expect(await batch.observer.applyBatch?.(calls, async () => results)).toEqual(results);
    expect(await batch.metrics.registry.metrics()).toBe(await one.metrics.registry.metrics());
    expect(batch.lines).toEqual(one.lines);
    expect(one.lines).toHaveLength(6);
  });
});

describe("observeAll", () => {
  it("observes batches whole only when every observer does", async () => {
    const seen: string[] = [];
    const perCallback = {
      apply: (call: ApplyCall, work: () => Promise<ApplyResult>) => {
        seen.push(`one ${call.requestId}`);
        return work();
      },
    };
    const whole = {
      apply: perCallback.apply,
      applyBatch: (calls: readonly ApplyCall[], work: () => Promise<ApplyResult[]>) => {
        seen.push(`batch of ${calls.length}`);
        return work();
      },
    };
    expect(observeAll(perCallback, whole).applyBatch).toBeUndefined();
    const both = observeAll(whole, whole);
    expect(await both.applyBatch?.([job("7", 1), job("8", 1)], async () => [res("applied"), res("applied")])).toEqual([
      res("applied"),
      res("applied"),
    ]);
    expect(seen).toEqual(["batch of 2", "batch of 2"]);
  });
});

describe("applyMetrics: the job line", () => {
  it("written by lineWriter, is the line log.info writes", async () => {
    const run = async (fast: boolean) => {
      const writes: string[] = [];
      const log = perRequestLogger(
        createLogger({ LOG_LEVEL: "info" }, "worker", { write: (s: string) => writes.push(s) }),
      );
      const observer = applyMetrics(
        new WorkerMetrics({ defaultMetrics: false }),
        log,
        fast ? lineWriter(log, "info", "job processed") : undefined,
      );
      await observer.apply(job("7", 1), async () => res("applied", 2));
      await observer.apply({ requestId: "8", mode: "gap", arg: 3 }, async () => res("skipped", 0, 4));
      await observer.applyBatch?.([job("9", 2, "SUCCESS"), job("10", 5)], async () => [res("late"), res("buffered")]);
      return writes
        .join("")
        .split("\n")
        .filter(Boolean)
        .map((l) => l.replace(/"time":"[^"]*"/, '"time":"T"'));
    };
    const plain = await run(false);
    expect(plain).toHaveLength(4);
    expect(await run(true)).toEqual(plain);
  });
});
