import "@ess/testing/provided";
import { eventually, ROOT, type RunningProcess, startApp } from "@ess/testing";
import { uniquePrefix } from "@ess/testing/context";
import { afterAll, describe, expect, inject, it } from "vitest";
import { callback, details, registerRequest } from "../support/http.js";

// What a process loads is memory it holds for good (module sources, compiled code). The gateway's
// callback path, its queue counts (metrics, console, backpressure) and its readiness read BullMQ's keys
// with the project's own scripts: bullmq (171 modules, with cron-parser and luxon) is loaded only for a
// replay, a webhook redelivery or the dashboard; nor msgpackr (the admit scripts take the job options as
// JSON). The worker, which runs BullMQ's Worker, loads its
// Queue and Worker classes from their own modules, not the package's index (which also evaluates the
// PostgreSQL backend, flows, sandboxes and the relay that the project never runs).

const HOOK = `${ROOT}test/support/loaded-modules.cjs`;
const BULLMQ_DIST = "/node_modules/bullmq/dist/cjs/";
/** bullmq's Queue and Worker classes. */
const BULLMQ = /\/node_modules\/bullmq\/dist\/cjs\/(index|classes\/queue|classes\/worker)\.js$/;
/** What only bullmq's index loads: the index itself and its PostgreSQL backend. */
const BULLMQ_INDEX_ONLY = /\/node_modules\/bullmq\/dist\/cjs\/(index\.js|postgres\/)/;

const started: RunningProcess[] = [];
afterAll(async () => {
  await Promise.all(started.map((p) => p.stop()));
});

async function start(app: "gateway" | "worker", env: Record<string, string>): Promise<RunningProcess> {
  const p = await startApp(app, env, ["--require", HOOK]);
  started.push(p);
  return p;
}

/** Stops the process and returns the node_modules files it had loaded. */
async function loadedAtExit(p: RunningProcess): Promise<string[]> {
  expect(await p.stop()).toBe(0);
  const line = p
    .output()
    .split("\n")
    .find((l) => l.startsWith("LOADED_MODULES "));
  if (!line) throw new Error(`no module list in the output:\n${p.output()}`);
  return JSON.parse(line.slice("LOADED_MODULES ".length)) as string[];
}

describe("modules a process loads", () => {
  it("the gateway serves callbacks, metrics, the console and readiness without loading bullmq; the worker loads its classes, not its index", async () => {
    const env = { REDIS_URL: inject("redisUrl"), KEY_PREFIX: uniquePrefix(), PARTITIONS: "2" };
    const [gateway, worker] = await Promise.all([start("gateway", env), start("worker", env)]);
    const id = "5150";
    const { requestHandle } = await registerRequest(gateway.url, id);
    expect(await callback(gateway.url, id, requestHandle, "UPDATE")).toBe(200);
    expect(await callback(gateway.url, id, requestHandle, "SUCCESS")).toBe(200);
    await eventually(
      async () => (await details(gateway.url, id)).state === "SUCCEEDED",
      15000,
      "the callbacks applied",
    );
    const metrics = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
    // the queue gauges were read (by the counting script)
    expect(metrics).toMatch(/ess_queue_jobs\{queue="p0",state="wait"\} \d/);
    expect((await fetch(`${gateway.adminUrl}/console`)).status).toBe(200);
    expect((await fetch(`${gateway.adminUrl}/readyz`)).status).toBe(200);

    const gatewayLoaded = await loadedAtExit(gateway);
    expect(gatewayLoaded.some((f) => f.includes("/node_modules/ioredis/"))).toBe(true);
    expect(gatewayLoaded.filter((f) => BULLMQ.test(f))).toEqual([]);
    expect(gatewayLoaded.filter((f) => f.includes("/node_modules/msgpackr/"))).toEqual([]);
    const workerLoaded = await loadedAtExit(worker);
    expect(
      workerLoaded.filter((f) => BULLMQ.test(f)).map((f) => f.slice(f.indexOf(BULLMQ_DIST) + BULLMQ_DIST.length)),
    ).toEqual(expect.arrayContaining(["classes/queue.js", "classes/worker.js"]));
    expect(workerLoaded.filter((f) => BULLMQ_INDEX_ONLY.test(f))).toEqual([]);
  });

  it("the gateway loads bullmq when the dashboard is opened", async () => {
    const env = { REDIS_URL: inject("redisUrl"), KEY_PREFIX: uniquePrefix(), PARTITIONS: "2" };
    const gateway = await start("gateway", env);
    expect((await fetch(`${gateway.adminUrl}/admin/queues`)).status).toBe(200);
    expect((await loadedAtExit(gateway)).filter((f) => BULLMQ.test(f)).length).toBeGreaterThan(0);
  });
});
