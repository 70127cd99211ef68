/**
 * `npm start`: the gateway and one worker, as separate processes, on a local Redis. Run compiled
 * (dist/scripts/start.js, after `npm run build`) it starts the compiled apps with plain node; run from
 * source (`npm run dev`, through tsx) it starts the apps' sources through tsx.
 * - REDIS_URL set: use it.
 * - else redis-server on PATH: start a private one with AOF on, data under .data/redis.
 * - else: say exactly what to install or run, and exit 1.
 * `npm start -- --cluster` (or REDIS_CLUSTER=1): a local Redis Cluster instead, 3 masters and 3 replicas
 * from redis-server and redis-cli (fresh, in a temp dir), and every process on it (REDIS_CLUSTER_NODES).
 * Ctrl-C (or SIGTERM) stops everything this script started.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { findRedisServer, nodeFlags, type RedisCluster, RedisServer, startLocalCluster } from "@ess/testing";

const fromSource = import.meta.url.endsWith(".ts");
// scripts/start.ts, or dist/scripts/start.js once compiled
const root = fileURLToPath(new URL(fromSource ? "../" : "../../", import.meta.url));
const children: ChildProcess[] = [];
let redis: RedisServer | RedisCluster | null = null;
let stopping = false;

async function stopAll(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once("exit", () => resolve());
            c.kill("SIGTERM");
          }),
      ),
    );
    if (redis) await redis.stop();
  }
  process.exit(code);
}

/** Starts apps/<app>: its compiled main with plain node, or its source through tsx (with the source condition). */
function run(app: "gateway" | "worker", env: NodeJS.ProcessEnv): ChildProcess {
  const name = app;
  // the production node flags (node-flags.json: V8's young generation of the gateway, see BENCHMARKS.md)
  const flags = nodeFlags(app, root);
  const args = fromSource
    ? [...flags, "--conditions=ess-source", "--import", "tsx", `apps/${app}/src/main.ts`]
    : [...flags, `apps/${app}/dist/main.js`];
  const child = spawn(process.execPath, args, {
    cwd: root,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const prefix = `[${name}] `;
  const pipe = (stream: NodeJS.ReadableStream | null, out: NodeJS.WriteStream) =>
    stream?.on("data", (d: Buffer) => {
      for (const line of d.toString().split("\n")) if (line) out.write(`${prefix + line}\n`);
    });
  pipe(child.stdout, process.stdout);
  pipe(child.stderr, process.stderr);
  child.on("exit", (code, signal) => {
    if (!stopping) {
      console.error(`${prefix}exited (${signal ?? code}); stopping everything`);
      void stopAll(code ?? 1);
    }
  });
  children.push(child);
  return child;
}

process.on("SIGINT", () => void stopAll(0));
process.on("SIGTERM", () => void stopAll(0));

let redisUrl = process.env.REDIS_URL;
const clusterEnv: NodeJS.ProcessEnv = {};
if (process.argv.includes("--cluster") || process.env.REDIS_CLUSTER === "1") {
  const started = await startLocalCluster();
  if (!started.cluster) {
    console.error(`No local Redis Cluster: ${started.reason}`);
    process.exit(1);
  }
  redis = started.cluster;
  redisUrl = started.cluster.url;
  clusterEnv.REDIS_CLUSTER_NODES = started.cluster.seeds.join(",");
  console.log(`[redis] Redis Cluster, 3 masters + 3 replicas: ${clusterEnv.REDIS_CLUSTER_NODES}`);
  console.log(
    `[redis] partition map: REDIS_URL=${redisUrl} REDIS_CLUSTER_NODES=${clusterEnv.REDIS_CLUSTER_NODES} npm run cli -- partitions`,
  );
} else if (!redisUrl) {
  const bin = findRedisServer();
  if (!bin) {
    console.error(
      [
        "No Redis to run against: REDIS_URL is not set and redis-server is not on PATH. Either",
        "  - install Redis:   sudo apt-get install -y redis-server   (Debian/Ubuntu)",
        "                     brew install redis                      (macOS)",
        "    then run `npm start` again (it starts a private redis-server with AOF under .data/redis), or",
        "  - start one with Docker:  docker compose up -d redis",
        "    then run:  REDIS_URL=redis://127.0.0.1:6379 npm start",
        "  - or run the whole stack in Docker:  docker compose up",
      ].join("\n"),
    );
    process.exit(1);
  }
  const dir = join(root, ".data", "redis");
  mkdirSync(dir, { recursive: true });
  redis = await new RedisServer(bin, { appendonly: true, fsync: "everysec", dir }).start();
  redisUrl = redis.url;
  console.log(`[redis] redis-server on ${redisUrl} (AOF on, data in ${dir})`);
}

const port = process.env.PORT ?? "8080";
// local use: no credentials needed unless AUTH_USERS / AUTH_TOKENS are set (the gateway logs a warning)
const env = { ALLOW_ANONYMOUS: "true", ...process.env, ...clusterEnv, REDIS_URL: redisUrl, PORT: port };
run("gateway", env);
run("worker", env);

const base = `http://localhost:${port}`;
const sampleId = 1000 + (Date.now() % 1_000_000_000); // a fresh request id for the sample
setTimeout(() => {
  if (stopping) return;
  console.log(
    [
      "",
      `ESS callback gateway: ${base}   (Ctrl-C stops the gateway, the worker and the Redis this started)`,
      `Admin listener:       http://localhost:${process.env.ADMIN_PORT ?? "8081"}   (/console, /metrics, /admin/queues)`,
      `API reference:        ${base}/docs`,
      "Try it:",
      `  H=$(curl -s -X POST ${base}/gateway/v1/requests/${sampleId}/executions | sed -E 's/.*"requestHandle":"([^"]+)".*/\\1/')`,
      `  curl -i -X POST ${base}/ess/rest/scheduler/v1/requests/${sampleId}/executionStatus \\`,
      `       -H 'Content-Type: application/json' -d "{\\"requestHandle\\":\\"$H\\",\\"status\\":\\"SUCCESS\\"}"`,
      `  curl -s ${base}/ess/rest/scheduler/v1/requests/${sampleId}`,
      "",
    ].join("\n"),
  );
}, 1500);
