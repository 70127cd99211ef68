import {
  armShutdownDeadline,
  configOrExit,
  createLogger,
  httpTimeouts,
  loadConfig,
  perRequestLogger,
  storeLimits,
} from "@ess/config";
import { WebhookAddressPolicy } from "@ess/contract";
import {
  CallbackQueues,
  createRedis,
  DeadLetters,
  Keys,
  RequestStore,
  SecretBox,
  WebhookStore,
  waitReady,
} from "@ess/store";
import { startTracing } from "@ess/telemetry";
import { acceptMetrics } from "./accept-metrics.js";
import { observeAll } from "./accept-observer.js";
import { createAdminApp } from "./admin.js";
import { createApp } from "./app.js";
import { Authenticator, CredentialsError } from "./auth/authenticator.js";
import { BacklogMonitor } from "./backlog.js";
import type { OperationsDeps } from "./context.js";
import { GatewayMetrics, QueueCatalog } from "./metrics.js";
import { Readiness } from "./ops/readiness.js";
import { registerProbes } from "./probes.js";
import { RateLimiter } from "./rate-limit.js";
import { serveApp } from "./server.js";
import { acceptTracing, traceDeadLetters } from "./tracing.js";

/** Entry point: reads config, opens Redis, serves, and shuts down cleanly on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  const { config, timeouts } = configOrExit("gateway", () => {
    const config = loadConfig();
    return { config, timeouts: httpTimeouts(config) };
  });
  const log = createLogger(config, "gateway");
  // off unless OTEL_* variables ask for it (see @ess/telemetry); loads nothing when off
  const tracing = await startTracing("ess-gateway");
  if (tracing) log.info({}, "OpenTelemetry tracing on");
  let auth: Authenticator;
  try {
    auth = await Authenticator.fromConfig(config);
  } catch (err) {
    if (err instanceof CredentialsError) {
      log.fatal({ err: err.message }, "refusing to start");
      console.error(`gateway: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  if (auth.anonymous) log.warn("ALLOW_ANONYMOUS=true and no credentials: every caller has every role (local use only)");
  const metrics = new GatewayMetrics();
  const redis = createRedis(config.REDIS_URL, "gateway", {
    commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
    autoPipelining: config.REDIS_AUTO_PIPELINING,
  });
  redis.on("error", (err) => {
    metrics.redisErrors.inc();
    log.warn({ err: err.message }, "redis connection error");
  });
  await waitReady(redis, 30000).catch((err: Error) => {
    log.fatal({ err: err.message, redis: config.REDIS_URL.replace(/\/\/[^@]*@/, "//***@") }, "cannot reach Redis");
    process.exit(1);
  });
  const keys = new Keys(config.KEY_PREFIX, config.PARTITIONS);
  const store = new RequestStore(redis, keys, storeLimits(config));
  const queues = new CallbackQueues(redis, keys, { attempts: config.JOB_ATTEMPTS, backoffMs: config.JOB_BACKOFF_MS });
  const deadLetters = new DeadLetters(redis, keys, (p, name) => queues.queue(p, name));
  if (tracing) traceDeadLetters(tracing, deadLetters);
  const readiness = new Readiness(redis, 1000, keys.readinessProbe());
  registerProbes(metrics.registry, redis, readiness);
  const backlog =
    config.BACKLOG_LIMIT > 0
      ? new BacklogMonitor(redis, keys, config.BACKLOG_LIMIT, config.BACKLOG_CHECK_MS, metrics).start()
      : undefined;
  const ops: OperationsDeps = {
    auth,
    metrics,
    catalog: QueueCatalog.ofPartitions(queues),
    backlog,
    rateLimit:
      config.RATE_LIMIT_PER_SECOND > 0
        ? new RateLimiter(config.RATE_LIMIT_PER_SECOND, config.RATE_LIMIT_BURST)
        : undefined,
    accessLog: config.ACCESS_LOG ? perRequestLogger(log) : undefined,
    readiness,
    retryAfterSeconds: config.RETRY_AFTER_SECONDS,
  };
  // ends open SSE streams on SIGTERM, or server.close() would wait for them
  const sseShutdown = new AbortController();
  const deps = {
    ops,
    observe: observeAll(tracing && acceptTracing(tracing, keys), acceptMetrics(metrics)),
    store,
    queues,
    deadLetters,
    replayRate: config.DLQ_REPLAY_RATE,
    maxBodyBytes: config.MAX_BODY_BYTES,
    enqueueTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
    enqueue: config.ENQUEUE_MODE,
    logError: (err: unknown, context: Record<string, unknown>) => log.error({ err, ...context }, "unexpected error"),
    logDebug: (context: Record<string, unknown>, message: string) => log.debug(context, message),
    publicBaseUrl: config.PUBLIC_BASE_URL,
    logWarn: (message: string, context: Record<string, unknown>) => log.warn(context, message),
    // the subscriptions' secrets are sealed under WEBHOOK_SECRET; without it subscribe answers 503
    webhooks: new WebhookStore(
      store,
      config.WEBHOOK_SECRET ? SecretBox.fromKeyEncryptionKey(config.WEBHOOK_SECRET) : undefined,
      config.WEBHOOK_LOG_LIMIT,
    ),
    scheduler: {
      webhookRotationGraceMs: config.WEBHOOK_ROTATION_GRACE_SECONDS * 1000,
      forceCancelQuietMs: config.FORCE_CANCEL_QUIET_MS,
      ssePollMs: config.SSE_POLL_MS,
      shutdown: sseShutdown.signal,
      webhookPolicy: new WebhookAddressPolicy(config.WEBHOOK_ALLOW_HOSTS),
    },
  };
  const app = createApp(deps);
  const adminApp = createAdminApp(deps);

  const server = serveApp(
    { fetch: app.fetch, port: config.PORT, hostname: config.HOST, timeouts, logError: deps.logError },
    (info) => log.info({ port: info.port, host: config.HOST }, "gateway listening"),
  );
  const adminServer = serveApp(
    { fetch: adminApp.fetch, port: config.ADMIN_PORT, hostname: config.ADMIN_HOST, timeouts, logError: deps.logError },
    (info) => log.info({ port: info.port, host: config.ADMIN_HOST }, "admin listening"),
  );

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    readiness.stopping = true;
    backlog?.stop();
    log.info({ signal }, "stopping: no new connections, finishing in-flight requests");
    armShutdownDeadline(config.SHUTDOWN_TIMEOUT_SECONDS, log);
    sseShutdown.abort();
    adminServer.close();
    server.close(async () => {
      // exiting anyway: a close that fails (Redis gone) is logged and the next one still runs
      const closing = (what: string) => (err: Error) => log.warn({ err: err.message }, `${what} did not close cleanly`);
      await queues.close().catch(closing("queues"));
      await redis.quit().catch(closing("redis connection"));
      await tracing?.shutdown().catch(closing("tracing"));
      log.info("stopped");
      process.exit(0);
    });
    // idle keep-alive connections would hold close() open
    for (const s of [server, adminServer]) s.closeIdleConnections();
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

await main();
