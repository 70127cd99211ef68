// What a node process's RSS is under the bench's load when it does nothing: the floors under the RSS
// target. Three servers, each driven through the same sequence, with the gateway's node flags
// (node-flags.json), one after the other:
//   raw      node:http answering 200 and nothing else
//   hono     the bare Hono app of bench/bare.ts, as plain JavaScript (no TypeScript loader)
//   gateway  the compiled gateway, with a compiled worker applying as it goes and a private Redis
// The sequence: a closed loop of 12 000 requests' callbacks (UPDATE ×4 then SUCCESS, one call in 20 a 4xx)
// at 100 connections, then two paced phases at --rate calls/s (the raw driver, 100 connections).
// Per server, in MiB: VmRSS before the callbacks (for the gateway, 10 s after its registrations), after the
// closed loop and after each paced phase, the high-water mark (VmHWM), and at the end the anonymous and
// file-backed parts (RssAnon, RssFile).
// Then a BullMQ worker that does nothing (an empty processor on every partition's queue), fed jobs of 4
// callbacks at about 1 000 a second for 12 s: its RSS before, at the end, its peak, and its parts.
// Usage: NODE_OPTIONS=--conditions=ess-source tsx bench/rss-floor.ts [--rate 3500]
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { loadConfig } from "@ess/config";
import { CALLBACK_QUEUE, Keys, loadBullmq, OPS_QUEUE } from "@ess/store";
import { discardOutput, findRedisServer, nodeFlags, RedisServer, ROOT, startApp } from "@ess/testing";
import { buildMix, drive, drivePacedRaw, makeTargets, registrationCalls, type Target } from "./load.js";

const { values } = parseArgs({ options: { rate: { type: "string", default: "3500" } } });
const rate = Number(values.rate);
const MAX_TARGETS = 12_000;
const PACED_TARGETS = Math.ceil((rate * 6) / 5);

const SERVERS = {
  raw: `import { createServer } from "node:http";
const s = createServer((q, r) => { q.resume(); q.on("end", () => { r.writeHead(200); r.end(); }); });
s.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ port: s.address().port })));`,
  hono: `import { serve } from "@hono/node-server";
import { Hono } from "hono";
const app = new Hono();
app.post("/ess/rest/scheduler/v1/requests/:requestId/executionStatus", (c) => c.body(null, 200));
serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info) => console.log(JSON.stringify({ port: info.port })));`,
};

const mib = (pid: number, field: string) =>
  Math.round(Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 102.4) /
  10;
/** A process's high-water mark and its resident memory's anonymous and file-backed parts now, in MiB. */
const parts = (pid: number) => ({ peak: mib(pid, "VmHWM"), anon: mib(pid, "RssAnon"), file: mib(pid, "RssFile") });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Drives the sequence against url; targets() gives the requests of each phase (registered, for the gateway). */
async function sequence(name: string, pid: number, url: string, targets: (n: number) => Promise<Target[]>) {
  const phases = [await targets(MAX_TARGETS), await targets(PACED_TARGETS), await targets(PACED_TARGETS)];
  // settled: for the gateway, 10 s after its registrations
  await sleep(name === "gateway" ? 10_000 : 2_000);
  const before = mib(pid, "VmRSS");
  await drive(url, buildMix(phases[0] as Target[], 4, 20), { connections: 100 });
  const afterMax = mib(pid, "VmRSS");
  const afterPaced: number[] = [];
  for (const t of phases.slice(1)) {
    await drivePacedRaw(url, buildMix(t, 4, 20), rate, 100);
    afterPaced.push(mib(pid, "VmRSS"));
  }
  console.log(JSON.stringify({ server: name, before, afterMax, afterPaced, ...parts(pid) }));
}

for (const [name, code] of Object.entries(SERVERS)) {
  const child = spawn(process.execPath, [...nodeFlags("gateway"), "--input-type=module", "-e", code], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve) =>
    child.stdout?.on("data", (d: Buffer) => {
      const m = /"port":(\d+)/.exec(d.toString());
      if (m) resolve(`http://127.0.0.1:${m[1]}`);
    }),
  );
  let base = 1;
  await sequence(name, child.pid as number, url, async (n) => {
    base += n + 10;
    return makeTargets(base, n);
  });
  child.kill();
}

const server = new RedisServer(findRedisServer() ?? "redis-server");
await server.start();
const PARTITIONS = 16;
const env = { REDIS_URL: server.url, PARTITIONS: String(PARTITIONS) };
const gateway = await startApp("gateway", env, [], ROOT, true);
const worker = await startApp("worker", env, [], ROOT, true);
discardOutput(gateway, worker);
let base = 1;
await sequence("gateway", gateway.child.pid as number, gateway.url, async (n) => {
  const t = makeTargets(base, n);
  base += n + 10;
  await drive(gateway.url, registrationCalls(t), { connections: 20 });
  return t;
});
console.log(JSON.stringify({ server: "worker (beside the gateway)", ...parts(worker.child.pid as number) }));
await gateway.stop();
await worker.stop();

// A worker that does nothing: BullMQ's Worker class (loaded as the worker loads it) on every partition's
// queue and on the ops queue, with the worker's concurrency and node flags and an empty processor, fed
// about 1 000 jobs a second of 4 callbacks each (what the worker takes at 3 500 callbacks/s) for 12 s.
const { hostname, port } = new URL(server.url);
const connection = { host: hostname, port: Number(port), maxRetriesPerRequest: null };
const floorKeys = new Keys("floor", PARTITIONS);
const tags = Array.from({ length: PARTITIONS }, (_, p) => floorKeys.tag(p));
const { WORKER_CONCURRENCY } = loadConfig({ REDIS_URL: server.url });
const floor = spawn(
  process.execPath,
  [
    ...nodeFlags("worker"),
    "--input-type=module",
    "-e",
    `import { createRequire } from "node:module";
const { Worker } = createRequire(process.cwd() + "/")("bullmq/dist/cjs/classes/worker.js");
const connection = ${JSON.stringify(connection)};
for (const prefix of ${JSON.stringify(tags)})
  new Worker(${JSON.stringify(CALLBACK_QUEUE)}, async () => {}, { connection, prefix, concurrency: ${WORKER_CONCURRENCY} });
new Worker(${JSON.stringify(OPS_QUEUE)}, async () => {}, { connection, prefix: ${JSON.stringify(floorKeys.opsTag())}, concurrency: 2 });
console.log("ready");`,
  ],
  { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
);
await new Promise((resolve) => floor.stdout?.once("data", resolve));
await sleep(3_000);
const fpid = floor.pid as number;
const before = mib(fpid, "VmRSS");
const { Queue } = loadBullmq();
const queues = tags.map((prefix) => new Queue(CALLBACK_QUEUE, { connection, prefix }));
const callback = { v: 1, requestId: "10000001", seq: 3, execution: 1, status: "UPDATE", message: "progress 42 %" };
const data = { v: 1, callbacks: [callback, callback, callback, callback] };
let id = 0;
const t0 = performance.now();
for (let tick = 1; tick <= 120; tick++) {
  // every 100 ms: about 100 jobs over the partitions
  await Promise.all(
    queues.map((q) =>
      q.addBulk(
        Array.from({ length: Math.round(100 / PARTITIONS) }, () => ({
          name: "batch",
          data: { ...data, acceptedAt: Date.now() },
          opts: { jobId: `j${id++}`, removeOnComplete: true },
        })),
      ),
    ),
  );
  await sleep(Math.max(0, t0 + tick * 100 - performance.now()));
}
while ((await Promise.all(queues.map((q) => q.getJobCountByTypes("waiting", "active")))).some((n) => n > 0))
  await sleep(200);
console.log(
  JSON.stringify({
    server: "a BullMQ worker that does nothing",
    jobs: id,
    before,
    end: mib(fpid, "VmRSS"),
    ...parts(fpid),
  }),
);
floor.kill();
for (const q of queues) await q.close();
await server.kill();
