// A client that calls again as soon as it is answered, with few connections: accepted calls/s and
// latency of the compiled gateway with a batch window against the same gateway without one (every
// batch at its event-loop turn's end), over the same Redis and worker, in alternating rounds. A batch
// waits for its window only while some connection could still send, so such a client is not held back.
// Usage: NODE_OPTIONS=--conditions=ess-source tsx bench/closed-loop.ts [--connections 1,2,4,8,32]
//   [--seconds 3] [--rounds 2] [--window 2]
import { parseArgs } from "node:util";
import { discardOutput, findRedisServer, RedisServer, ROOT, type RunningProcess, startApp } from "@ess/testing";
import { buildMix, drive, makeTargets, registrationCalls } from "./load.js";

const { values } = parseArgs({
  options: {
    connections: { type: "string", default: "1,2,4,8,32" },
    seconds: { type: "string", default: "3" },
    rounds: { type: "string", default: "2" },
    window: { type: "string", default: "2" },
  },
});
const server = new RedisServer(findRedisServer() ?? "redis-server");
await server.start();
const env = { REDIS_URL: server.url, KEY_PREFIX: "closed", PARTITIONS: "16", LOG_LEVEL: "info" };
const contenders: Record<string, RunningProcess> = {
  "window 0": await startApp("gateway", { ...env, ADMIT_BATCH_WINDOW_MS: "0" }, [], ROOT, true),
  [`window ${values.window}`]: await startApp(
    "gateway",
    { ...env, ADMIT_BATCH_WINDOW_MS: values.window },
    [],
    ROOT,
    true,
  ),
};
const worker = await startApp("worker", env, [], ROOT, true);
const all = [...Object.values(contenders), worker];
discardOutput(...all);
let base = 7_000_000;
try {
  for (const connections of (values.connections ?? "").split(",").map(Number)) {
    for (let round = 1; round <= Number(values.rounds); round++) {
      for (const [name, gateway] of Object.entries(contenders)) {
        const targets = makeTargets(base, 400);
        base += 400;
        await drive(gateway.url, registrationCalls(targets), { connections: 20 });
        const r = await drive(gateway.url, buildMix(targets, 4, 0), { connections, duration: Number(values.seconds) });
        console.log(
          `${connections} connections, round ${round}, ${name}: ${Math.round(r.requests.total / r.seconds)} calls/s, latency p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms`,
        );
      }
    }
  }
} finally {
  await Promise.all(all.map((p) => p.kill()));
  await server.stop();
}
process.exit(0);
