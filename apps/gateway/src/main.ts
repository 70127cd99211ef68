import { ConfigError, createLogger, loadConfig } from "@ess/config";
import { CallbackQueues, createRedis, Keys, RequestStore, waitReady } from "@ess/store";
import { serve } from "@hono/node-server";
import { createApp } from "./app.js";

/** Entry point: reads config, opens Redis, serves, and shuts down cleanly on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`gateway: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config, "gateway");
  const redis = createRedis(config.REDIS_URL, "gateway", { commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS });
  redis.on("error", (err) => log.warn({ err: err.message }, "redis connection error"));
  await waitReady(redis, 30000).catch((err: Error) => {
    log.fatal({ err: err.message, redis: config.REDIS_URL.replace(/\/\/[^@]*@/, "//***@") }, "cannot reach Redis");
    process.exit(1);
  });
  const keys = new Keys(config.KEY_PREFIX, config.PARTITIONS);
  const store = new RequestStore(redis, keys, {
    historyLimit: config.HISTORY_LIMIT,
    eventsMaxLen: config.EVENTS_MAXLEN,
    retentionSeconds: config.RETENTION_SECONDS,
    gapTimeoutMs: config.GAP_TIMEOUT_MS,
    idempotencyTtlSeconds: config.IDEMPOTENCY_TTL_SECONDS,
  });
  const queues = new CallbackQueues(redis, keys, { attempts: config.JOB_ATTEMPTS, backoffMs: config.JOB_BACKOFF_MS });
  const app = createApp({
    store,
    queues,
    maxBodyBytes: config.MAX_BODY_BYTES,
    enqueueTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
    logError: (err, context) => log.error({ err, ...context }, "unexpected error"),
  });

  const server = serve({ fetch: app.fetch, port: config.PORT, hostname: config.HOST }, (info) => {
    log.info({ port: info.port, host: config.HOST }, "gateway listening");
  });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping: no new connections, finishing in-flight requests");
    const force = setTimeout(() => {
      log.error("shutdown timed out");
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT_SECONDS * 1000);
    force.unref();
    server.close(async () => {
      await queues.close().catch(() => {});
      await redis.quit().catch(() => {});
      log.info("stopped");
      process.exit(0);
    });
    // idle keep-alive connections would hold close() open
    if ("closeIdleConnections" in server) (server as { closeIdleConnections(): void }).closeIdleConnections();
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

await main();
