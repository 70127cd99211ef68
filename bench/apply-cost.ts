// `npx tsx bench/apply-cost.ts [--requests N] [--batch B] [--rounds R] [--baseline DIR]`: the Redis
// commands and CPU of the apply-batch script per applied callback, on a private redis-server. Each round
// registers N fresh requests, then applies the bench's mix (UPDATE ×4 with a message, then SUCCESS, per
// request) in batch jobs of B callbacks of distinct requests, 32 jobs in flight: Redis CPU µs per applied
// callback (INFO cpu) and the commands the script runs per callback (INFO commandstats). With
// --baseline (a built checkout), rounds alternate between its store and this one on the same server.
import { parseArgs } from "node:util";
import { Keys, RequestStore } from "@ess/store";
import { findRedisServer, RedisServer } from "@ess/testing";
import { Redis } from "ioredis";
import { commandStats, redisCpuSeconds, registerFresh } from "./measure.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "2000" },
    batch: { type: "string", default: "20" },
    rounds: { type: "string", default: "3" },
    baseline: { type: "string" },
  },
});
const REQUESTS = Number(values.requests);
const BATCH = Number(values.batch);
const ROUNDS = Number(values.rounds);
const UPDATES = 4;

type Store = Pick<RequestStore, "register" | "applyBatch">;
type StoreClass = new (redis: Redis, keys: Keys) => Store;

const bin = findRedisServer();
if (!bin) throw new Error("redis-server not found");
const server = await new RedisServer(bin).start();
const admin = new Redis(server.url);
const contenders: Record<string, Store> = { this: new RequestStore(new Redis(server.url), new Keys("cur", 16)) };
if (values.baseline) {
  const base = (await import(`${values.baseline}/packages/store/dist/index.js`)) as {
    RequestStore: StoreClass;
    Keys: new (prefix: string, partitions: number) => Keys;
  };
  contenders.baseline = new base.RequestStore(new Redis(server.url), new base.Keys("base", 16));
}

let nextId = 1_000_000;
async function round(store: Store) {
  const ids = await registerFresh(store, nextId, REQUESTS);
  nextId += REQUESTS;
  const jobs = [];
  for (let seq = 1; seq <= UPDATES + 1; seq++) {
    for (const id of ids) {
      jobs.push({
        v: 1 as const,
        requestId: id,
        seq,
        execution: 1,
        status: seq > UPDATES ? ("SUCCESS" as const) : ("UPDATE" as const),
        ...(seq > UPDATES ? {} : { message: `step ${seq}` }),
        acceptedAt: Date.now(),
      });
    }
  }
  await admin.config("RESETSTAT");
  const cpu0 = await redisCpuSeconds(admin);
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < jobs.length; i += BATCH) {
    pending.push(
      store.applyBatch(jobs.slice(i, i + BATCH)).then((r) => {
        for (const x of r) if (x.result !== "applied") throw new Error(`result ${x.result}`);
      }),
    );
    if (pending.length >= 32) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  const cpu = (await redisCpuSeconds(admin)) - cpu0;
  const stats = await commandStats(admin);
  const n = jobs.length;
  const inner = Object.entries(stats).filter(([k]) => !/^(evalsha|eval|config.*|info|script.*)$/.test(k));
  return {
    usec: (cpu * 1e6) / n,
    commands: inner.reduce((s, [, v]) => s + v.calls, 0) / n,
    byCommand: Object.fromEntries(
      inner.sort(([, a], [, b]) => b.calls - a.calls).map(([k, v]) => [k, +(v.calls / n).toFixed(2)]),
    ),
  };
}

try {
  const usec: Record<string, number[]> = {};
  for (const name of Object.keys(contenders)) await round(contenders[name] as Store); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    const names = Object.keys(contenders);
    if (r % 2 === 1) names.reverse();
    for (const name of names) {
      const got = await round(contenders[name] as Store);
      usec[name] = [...(usec[name] ?? []), got.usec];
      console.log(
        `round ${r + 1} ${name}: ${got.usec.toFixed(1)} µs/callback, ${got.commands.toFixed(2)} commands/callback ${JSON.stringify(got.byCommand)}`,
      );
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  console.log(JSON.stringify(Object.fromEntries(Object.entries(usec).map(([k, v]) => [k, +median(v).toFixed(1)]))));
} finally {
  admin.disconnect();
  process.exitCode = process.exitCode ?? 0;
  await server.stop();
  process.exit();
}
