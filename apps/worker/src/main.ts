import { hostname } from "node:os";
import {
  armShutdownDeadline,
  configOrExit,
  createLogger,
  lineWriter,
  loadConfig,
  parsePartitionList,
  perRequestLogger,
  storeLimits,
} from "@ess/config";
import { WebhookAddressPolicy } from "@ess/contract";
import {
  AuditLog,
  CallbackQueues,
  createRedis,
  DeadLetters,
  Keys,
  RequestStore,
  SecretBox,
  WebhookStore,
  waitReady,
} from "@ess/store";
import { replaySpan, startTracing } from "@ess/telemetry";
import { applyMetrics, observeRedis, observeWebhooks, observeWorkers, serveMetrics, WorkerMetrics } from "./observe.js";
import { BulkReplayRunner } from "./replay.js";
import { startTimeoutSweeper } from "./timeouts.js";
import { applyTracing, bulkReplaySpan, traceDelivery } from "./tracing.js";
import { startWebhooks } from "./webhooks.js";
import { createWorker, observeAll } from "./worker.js";

/**
 * Entry point: config, Redis, one BullMQ worker per partition. SIGTERM drains and exits 0; a shutdown that
 * cannot finish within SHUTDOWN_TIMEOUT_SECONDS (Redis down) exits 1 at that deadline.
 */
async function main(): Promise<void> {
  const { config, partitions } = configOrExit("worker", () => {
    const c = loadConfig();
    return { config: c, partitions: parsePartitionList(c.WORKER_PARTITIONS, c.PARTITIONS) };
  });
  const log = createLogger(config, "worker");
  // off unless OTEL_* variables ask for it (see @ess/telemetry); loads nothing when off
  const tracing = await startTracing("ess-worker");
  if (tracing) log.info({}, "OpenTelemetry tracing on");
  const connection = createRedis(config.REDIS_URL, "worker", {
    clusterNodes: config.REDIS_CLUSTER_NODES,
    clusterFailoverMs: config.REDIS_CLUSTER_FAILOVER_MS,
  });
  connection.on("error", (err) => log.warn({ err: err.message }, "redis connection error"));
  await waitReady(connection, 30000).catch((err: Error) => {
    log.fatal({ err: err.message }, "cannot reach Redis");
    process.exit(1);
  });
  const keys = new Keys(config.KEY_PREFIX, config.PARTITIONS);
  const store = new RequestStore(connection, keys, storeLimits(config));
  const queues = new CallbackQueues(connection, keys, {
    attempts: config.JOB_ATTEMPTS,
    backoffMs: config.JOB_BACKOFF_MS,
  });
  const deadLetters = new DeadLetters(
    connection,
    keys,
    (p, name) => queues.queue(p, name),
    tracing ? replaySpan(tracing) : undefined,
  );
  const metrics = new WorkerMetrics();
  observeRedis(connection, metrics);
  const replays = new BulkReplayRunner(deadLetters, {
    audit: new AuditLog(connection, keys, config.AUDIT_MAX_ENTRIES),
    ...(tracing ? { around: bulkReplaySpan(tracing) } : {}),
  });
  let stopping = false;
  const ready = () => !stopping && connection.status === "ready";
  const metricsServer = await serveMetrics(
    metrics,
    config.WORKER_METRICS_PORT,
    config.WORKER_METRICS_HOST,
    ready,
  ).catch((err: Error) => {
    log.fatal({ err: err.message, port: config.WORKER_METRICS_PORT }, "cannot open the metrics port");
    process.exit(1);
  });
  log.info({ port: metricsServer.port, host: config.WORKER_METRICS_HOST }, "metrics listening");
  // the job log: one line per applied callback
  const jobLog = config.ACCESS_LOG ? perRequestLogger(log) : undefined;
  const worker = createWorker({
    connection,
    store,
    queues,
    deadLetters,
    replays,
    partitions,
    concurrency: config.WORKER_CONCURRENCY,
    gapTimeoutMs: config.GAP_TIMEOUT_MS,
    lockMs: config.WORKER_LOCK_MS,
    stalledIntervalMs: config.WORKER_STALLED_INTERVAL_MS,
    name: `${hostname()}:${process.pid}`,
    sweepIntervalMs: config.DLQ_SWEEP_INTERVAL_MS,
    deadLetterRetentionMs: config.DLQ_RETENTION_SECONDS * 1000,
    log,
    observe: observeAll(
      tracing && applyTracing(tracing, keys),
      applyMetrics(metrics, jobLog, jobLog && lineWriter(jobLog, "info", "job processed")),
    ),
  });
  observeWorkers(worker, metrics);
  // scheduler side: requestTimeout sweep and webhook deliveries
  const sweeper = startTimeoutSweeper({
    store,
    partitions,
    policy: config.TIMEOUT_POLICY,
    intervalMs: config.TIMEOUT_SWEEP_MS,
    log,
  });
  const webhooks = config.WEBHOOK_SECRET
    ? startWebhooks({
        connection,
        store,
        partitions,
        webhooks: new WebhookStore(
          store,
          SecretBox.fromKeyEncryptionKey(config.WEBHOOK_SECRET),
          config.WEBHOOK_LOG_LIMIT,
        ),
        gapTimeoutMs: config.GAP_TIMEOUT_MS,
        attempts: config.WEBHOOK_ATTEMPTS,
        backoffMs: config.WEBHOOK_BACKOFF_MS,
        timeoutMs: config.WEBHOOK_TIMEOUT_MS,
        concurrency: config.WEBHOOK_CONCURRENCY,
        log,
        consumer: `${hostname()}-${process.pid}`,
        deadLetters,
        policy: new WebhookAddressPolicy(config.WEBHOOK_ALLOW_HOSTS),
        ...(tracing ? { around: traceDelivery(tracing) } : {}),
      })
    : undefined;
  if (webhooks) observeWebhooks(webhooks, metrics);
  if (!webhooks) log.warn({}, "WEBHOOK_SECRET is not set: webhook deliveries are off (their secrets cannot be opened)");
  log.info({ partitions: partitions.length, concurrency: config.WORKER_CONCURRENCY }, "worker started");

  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping: finishing active jobs");
    armShutdownDeadline(config.SHUTDOWN_TIMEOUT_SECONDS, log);
    // active jobs get three quarters of the time; the rest is for handing back what still runs and closing
    await worker.close(config.SHUTDOWN_TIMEOUT_SECONDS * 750);
    await sweeper.stop();
    // exiting anyway: a close that fails (Redis gone) is logged and the next one still runs
    const closing = (what: string) => (err: Error) => log.warn({ err: err.message }, `${what} did not close cleanly`);
    await webhooks?.close().catch(closing("webhook worker"));
    metricsServer.server.close();
    await queues.close().catch(closing("queues"));
    await connection.quit().catch(closing("redis connection"));
    await tracing?.shutdown().catch(closing("tracing"));
    log.info({}, "stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

await main();
