// `npx tsx bench/admit-cost.ts [--requests N] [--batch B] [--inflight F] [--rounds R] [--baseline DIR]`: what
// one admitted callback costs in the admit-enqueue-batch call, on a private redis-server. Each round
// registers N fresh requests, then admits the bench's mix (UPDATE ×4 with a message, then SUCCESS, per
// request) in calls of B callbacks of distinct requests, F calls in flight: Redis CPU µs per callback
// (INFO cpu), the commands the script runs per callback (INFO commandstats), and this process's CPU µs per
// callback (building the call, ioredis, the reply). Both sides run compiled (`npm run build` first): this
// checkout's packages/store/dist and, with --baseline (a built checkout), its own, in alternating rounds on
// the same server.
import { parseArgs } from "node:util";
import type { CallbackQueues, Keys, RequestStore } from "@ess/store";
import { findRedisServer, RedisServer } from "@ess/testing";
import { Redis } from "ioredis";
import { commandStats, redisCpuSeconds, registerFresh } from "./measure.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "2000" },
    batch: { type: "string", default: "4" },
    inflight: { type: "string", default: "16" },
    rounds: { type: "string", default: "3" },
    baseline: { type: "string" },
  },
});
const REQUESTS = Number(values.requests);
const BATCH = Number(values.batch);
const INFLIGHT = Number(values.inflight);
const ROUNDS = Number(values.rounds);
const UPDATES = 4;

type Store = Pick<RequestStore, "register" | "admitAndEnqueueBatch">;
interface Contender {
  store: Store;
  queues: CallbackQueues;
  redis: Redis;
}

const bin = findRedisServer();
if (!bin) throw new Error("redis-server not found");
const server = await new RedisServer(bin).start();
const admin = new Redis(server.url);
const policy = { attempts: 3, backoffMs: 1000 };

function contender(
  mod: {
    RequestStore: new (redis: Redis, keys: Keys) => Store;
    Keys: new (prefix: string, partitions: number) => Keys;
    CallbackQueues: new (redis: Redis, keys: Keys, policy: unknown) => CallbackQueues;
  },
  prefix: string,
): Contender {
  const redis = new Redis(server.url);
  const keys = new mod.Keys(prefix, 16);
  return { store: new mod.RequestStore(redis, keys), queues: new mod.CallbackQueues(redis, keys, policy), redis };
}

const contenders: Record<string, Contender> = {
  this: contender((await import(new URL("../packages/store/dist/index.js", import.meta.url).href)) as never, "cur"),
};
if (values.baseline) {
  contenders.baseline = contender((await import(`${values.baseline}/packages/store/dist/index.js`)) as never, "base");
}

let nextId = 1_000_000;
async function round({ store, queues }: Contender) {
  const ids = await registerFresh(store, nextId, REQUESTS);
  nextId += REQUESTS;
  const cbs = [];
  for (let seq = 1; seq <= UPDATES + 1; seq++) {
    for (const id of ids) {
      const final = seq > UPDATES;
      cbs.push({
        cb: {
          requestId: id,
          handle: "h",
          status: final ? ("SUCCESS" as const) : ("UPDATE" as const),
          message: final ? undefined : `step ${seq} of ${UPDATES}`,
          acceptedAt: Date.now(),
        },
      });
    }
  }
  await admin.config("RESETSTAT");
  const cpu0 = await redisCpuSeconds(admin);
  const js0 = process.cpuUsage();
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < cbs.length; i += BATCH) {
    pending.push(
      store.admitAndEnqueueBatch(queues, cbs.slice(i, i + BATCH)).then((r) => {
        for (const x of r) if (x instanceof Error || x.kind !== "admitted") throw new Error(`result ${String(x)}`);
      }),
    );
    if (pending.length >= INFLIGHT) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  const js = process.cpuUsage(js0);
  const cpu = (await redisCpuSeconds(admin)) - cpu0;
  const stats = await commandStats(admin);
  const n = cbs.length;
  const inner = Object.entries(stats).filter(([k]) => !/^(evalsha|eval|config.*|info|script.*)$/.test(k));
  const script = (stats.evalsha?.usec ?? 0) / n;
  const innerUsec = inner.reduce((s, [, v]) => s + v.usec, 0) / n;
  return {
    usec: (cpu * 1e6) / n,
    script,
    innerUsec,
    js: (js.user + js.system) / n,
    commands: inner.reduce((s, [, v]) => s + v.calls, 0) / n,
    byCommand: Object.fromEntries(
      inner.sort(([, a], [, b]) => b.calls - a.calls).map(([k, v]) => [k, +(v.calls / n).toFixed(2)]),
    ),
  };
}

try {
  const usec: Record<string, number[]> = {};
  const js: Record<string, number[]> = {};
  for (const name of Object.keys(contenders)) await round(contenders[name] as Contender); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    const names = Object.keys(contenders);
    if (r % 2 === 1) names.reverse();
    for (const name of names) {
      const got = await round(contenders[name] as Contender);
      usec[name] = [...(usec[name] ?? []), got.usec];
      js[name] = [...(js[name] ?? []), got.js];
      console.log(
        `round ${r + 1} ${name}: Redis ${got.usec.toFixed(1)} µs/callback, client ${got.js.toFixed(1)} µs/callback, EVALSHA ${got.script.toFixed(1)} µs/callback of which commands ${got.innerUsec.toFixed(1)}, ${got.commands.toFixed(2)} commands/callback ${JSON.stringify(got.byCommand)}`,
      );
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const med = (m: Record<string, number[]>) =>
    Object.fromEntries(Object.entries(m).map(([k, v]) => [k, +median(v).toFixed(1)]));
  console.log(JSON.stringify({ redis: med(usec), client: med(js) }));
} finally {
  admin.disconnect();
  for (const c of Object.values(contenders)) {
    await c.queues.close();
    c.redis.disconnect();
  }
  process.exitCode = process.exitCode ?? 0;
  await server.stop();
  process.exit();
}
